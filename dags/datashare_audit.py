"""Weekly audit of the release store: every release re-hashed, the ledger walked, stale datasets alerted.

``verify_releases`` runs :func:`datashare.store.audit.audit`: each data file against its manifest, each
manifest against its commit record, the hash chain of the ledger, and each release against its
``release_committed`` ledger entry. Any finding fails the task at once (no retry: a tampered store
does not heal) and lists every finding, so the failure alert says exactly what is wrong. A clean
audit keeps the newest ledger entry's hash in the Airflow Variable ``datashare_ledger_anchor`` (the
metadata database, not the store); the next audit checks that entry against it, so an edit of the
newest entries, which no later entry's link covers, is found too.

``check_freshness`` compares the newest release of every dataset with its spec's
``freshness.max_age_hours`` and sends one alert per stale dataset through the ``datashare_alerts``
connection (webhook or e-mail; logged when the connection is not defined).

Parsing imports Airflow's SDK and the standard-library-only alert callback, nothing else.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import DAG, task

from datashare.notify.alerts import on_failure_callback

ANCHOR_VARIABLE = "datashare_ledger_anchor"
"""Where the audit keeps the ledger head it verified, outside the release store: ``SEQ:SHA256``."""

with DAG(
    dag_id="datashare_audit",
    description="Re-verify every release and the ledger; alert on stale datasets",
    doc_md=__doc__,
    schedule="@weekly",
    start_date=datetime(2025, 7, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    default_args={
        "owner": "data-engineering",
        "retries": int(os.environ.get("DATASHARE_RETRIES", "3")),
        "retry_delay": timedelta(seconds=float(os.environ.get("DATASHARE_RETRY_DELAY_S", "30"))),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=10),
        "on_failure_callback": on_failure_callback,
    },
    tags=["audit", "datashare"],
    dagrun_timeout=timedelta(hours=6),
):

    @task
    def verify_releases() -> dict[str, Any]:
        """Re-hash every release and walk the ledger; fail loudly, listing every finding."""
        import logging

        from airflow.sdk import Variable
        from airflow.sdk.exceptions import AirflowFailException

        from datashare.settings import Settings
        from datashare.store import Anchor, ReleaseStore, audit, repair

        store = ReleaseStore.open(Settings.from_env().release_uri)
        for line in repair(store):  # what killed writers left half-done: completed, and said
            logging.getLogger("datashare.store.audit").warning("REPAIRED %s", line)
        source = f"Airflow Variable {ANCHOR_VARIABLE}"
        kept = Variable.get(ANCHOR_VARIABLE, default=None)
        anchors = [Anchor.parse(kept, source)] if kept else []
        findings = audit(store, anchors=anchors)
        releases = sum(len(store.versions(d)) for d in store.datasets())
        if findings:
            for finding in findings:
                logging.getLogger("datashare.store.audit").error("FINDING %s", finding)
            raise AirflowFailException(
                f"audit of {store.backend.describe()}: {len(findings)} finding(s):\n" + "\n".join(findings)
            )
        head = store.ledger.head()
        if head is not None:
            Variable.set(ANCHOR_VARIABLE, str(head), description="newest ledger entry the last clean audit verified")
        return {"releases": releases, "findings": 0, "ledger_head": str(head) if head else None}

    @task
    def check_freshness() -> list[str]:
        """Alert on every dataset whose newest release is older than its spec's freshness allows."""
        from airflow.sdk.exceptions import AirflowException

        from datashare.exceptions import ConfigError
        from datashare.notify.alerts import AlertDeliveryError, deliver, freshness_alerts
        from datashare.settings import Settings
        from datashare.spec import load_specs
        from datashare.store import ReleaseStore

        settings = Settings.from_env()
        specs, _errors = load_specs(settings.datasets_dir)  # malformed specs are reported by the factory
        stale, undelivered = [], []
        for message in freshness_alerts(ReleaseStore.open(settings.release_uri), specs.values()):
            stale.append(message.dataset_id)
            try:
                deliver(message)
            except (AlertDeliveryError, ConfigError) as exc:
                undelivered.append(f"{message.dataset_id}: {exc}")
        if undelivered:
            raise AirflowException("could not deliver freshness alerts: " + "; ".join(undelivered))
        return stale

    verify_releases()
    check_freshness()
