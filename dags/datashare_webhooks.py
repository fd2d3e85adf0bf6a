"""Retry of webhook deliveries: every ten minutes, each pending delivery that is due is attempted again.

A new release is delivered at once by its dataset's ``record`` task; a receiver that was down or
answered an error gets the next attempt here, after the backoff of :mod:`datashare.notify.webhooks`
(``DATASHARE_WEBHOOK_RETRY_BASE_S`` × 4^(n-1), at most 6 h; ``DATASHARE_WEBHOOK_MAX_ATTEMPTS``
attempts). A failed delivery never fails this DAG: the delivery log, readable by the subscribing
agency through the API, says what each attempt got. The task fails only when the store itself
cannot be read, and is retried then.

Parsing imports Airflow's SDK and the standard-library-only alert callback, nothing else.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

from airflow.sdk import DAG, task

from datashare.notify.alerts import on_failure_callback

with DAG(
    dag_id="datashare_webhooks",
    description="Retry due webhook deliveries of new releases",
    doc_md=__doc__,
    schedule="*/10 * * * *",
    start_date=datetime(2025, 7, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    default_args={
        "owner": "data-engineering",
        "retries": int(os.environ.get("DATASHARE_RETRIES", "3")),
        "retry_delay": timedelta(seconds=float(os.environ.get("DATASHARE_RETRY_DELAY_S", "30"))),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=5),
        "on_failure_callback": on_failure_callback,
    },
    tags=["webhooks", "datashare"],
    dagrun_timeout=timedelta(minutes=30),
):

    @task
    def deliver_pending() -> dict[str, int]:
        """Attempt every due pending delivery; counts by state afterwards."""
        from datashare.notify.webhooks import deliver_pending as deliver

        return deliver()

    deliver_pending()
