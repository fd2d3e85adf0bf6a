"""The webhook retry DAG in real Airflow: a delivery that failed at release time arrives on the next run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from datashare.access import Tokens, load_registry
from datashare.notify.webhooks import Webhooks, verify_signature
from datashare.pipeline.stages import run_dataset
from datashare.settings import Settings
from datashare.store import ReleaseStore
from units import monitoring

pytestmark = pytest.mark.airflow

REPO = Path(__file__).resolve().parents[2]
DATASET = "air_quality_hourly"


def test_retry_dag_delivers_what_failed_at_release_time(
    airflow_db: Path, project, tmp_path: Path, webhook, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.dag_processing.dagbag import DagBag

    port, received = webhook
    monkeypatch.setenv("DATASHARE_WEBHOOK_KEY", "w" * 48)
    monkeypatch.setenv("DATASHARE_WEBHOOK_ALLOWED_NETWORKS", "127.0.0.0/8")
    monkeypatch.setenv("DATASHARE_WEBHOOK_RETRY_BASE_S", "0")
    unit = f"sqlite:///{tmp_path / 'unit.sqlite'}"
    monitoring.generate(unit, stations=2, days=1)
    project("monre_monitoring", unit)
    settings = Settings.from_env()
    store = ReleaseStore.open(settings.release_uri)
    recipient = load_registry(settings.recipients_file).recipients[0]  # the repository's registry
    Tokens(store.backend).issue(recipient)
    sub, secret = Webhooks(store, settings).subscribe(recipient, f"http://127.0.0.1:{port}/flaky-dag", [DATASET])

    assert run_dataset(DATASET)["webhooks"] == {"pending": 1}  # the receiver answered 500
    dag = DagBag(dag_folder=str(REPO / "dags" / "datashare_webhooks.py")).get_dag("datashare_webhooks")
    run = dag.test()

    assert run.state == "success"
    first, second = received
    assert first["headers"]["X-Datashare-Delivery"] == second["headers"]["X-Datashare-Delivery"]
    stamp, signed = second["headers"]["X-Datashare-Timestamp"], second["headers"]["X-Datashare-Signature"]
    assert verify_signature(secret, second["body"], stamp, signed)
    assert json.loads(second["body"])["release"]["version"] == 1
    [delivery] = Webhooks(store, settings).log_of(sub)
    assert delivery["state"] == "delivered" and [a["status"] for a in delivery["attempts"]] == [500, 204]
