"""The auditor DAG in real Airflow: a tampered release fails it loudly, and both alerts reach a local webhook."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from datashare.pipeline.stages import run_dataset
from datashare.settings import Settings
from datashare.store import ReleaseStore
from units import monitoring

pytestmark = pytest.mark.airflow

REPO = Path(__file__).resolve().parents[2]
DATASET = "air_quality_hourly"


class _Hook(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.server.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict]]:
    """A local webhook set as the datashare_alerts connection; yields the payloads it received."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    server.received = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    monkeypatch.setenv("AIRFLOW_CONN_DATASHARE_ALERTS", json.dumps({"conn_type": "http", "host": url}))
    yield server.received
    server.shutdown()
    server.server_close()


ANCHOR = "datashare_ledger_anchor"


@pytest.fixture
def no_anchor(airflow_db: Path) -> Iterator[None]:
    """No ledger anchor left by another test's store (the Airflow metadata database is shared by the session)."""
    from airflow.models import Variable

    Variable.delete(ANCHOR)
    yield
    Variable.delete(ANCHOR)


def test_audit_dag_keeps_the_ledger_head_and_catches_an_edit_of_it(
    airflow_db: Path, no_anchor: None, project, tmp_path: Path, webhook
) -> None:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models import Variable

    unit = f"sqlite:///{tmp_path / 'unit.sqlite'}"
    monitoring.generate(unit, stations=2, days=1)
    project("monre_monitoring", unit)
    assert run_dataset(DATASET)["version"] == 1
    store = ReleaseStore.open(Settings.from_env().release_uri)
    dag = DagBag(dag_folder=str(REPO / "dags" / "datashare_audit.py")).get_dag("datashare_audit")

    first = dag.test()
    states = {ti.task_id: ti.state for ti in first.get_task_instances()}
    assert states["verify_releases"] == "success"
    head = Variable.get(ANCHOR)
    newest = int(head.split(":")[0])
    key = f"_ledger/{newest:012d}.json"
    assert head.split(":")[1] == hashlib.sha256(store.backend.get_bytes(key)).hexdigest()

    body = json.loads(store.backend.get_bytes(key))
    body["summary"] = {"success": True, "forged": True}
    Path(store.backend.describe(key)).write_text(json.dumps(body, sort_keys=True), encoding="utf-8")
    second = dag.test()

    states = {ti.task_id: ti.state for ti in second.get_task_instances()}
    assert second.state == "failed" and states["verify_releases"] == "failed"
    [failed] = [p for p in webhook if p["kind"] == "run_failed"]
    assert f"ledger: entry {newest} differs from its hash anchored in Airflow Variable {ANCHOR}" in failed["text"]
    assert Variable.get(ANCHOR) == head  # a failed audit does not move the anchor


def test_audit_dag_fails_on_a_tampered_release_and_alerts(
    airflow_db: Path, no_anchor: None, project, tmp_path: Path, webhook
) -> None:
    from airflow.dag_processing.dagbag import DagBag

    unit = f"sqlite:///{tmp_path / 'unit.sqlite'}"
    monitoring.generate(unit, stations=3, days=1)  # observations of early November 2026: stale by now
    project("monre_monitoring", unit)
    assert run_dataset(DATASET)["version"] == 1
    store = ReleaseStore.open(Settings.from_env().release_uri)
    path = Path(store.backend.describe(f"{DATASET}/v1/data/part-00000.parquet"))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))

    dag = DagBag(dag_folder=str(REPO / "dags" / "datashare_audit.py")).get_dag("datashare_audit")
    dr = dag.test()

    states = {ti.task_id: ti.state for ti in dr.get_task_instances()}
    assert dr.state == "failed" and states == {"verify_releases": "failed", "check_freshness": "success"}
    verify = next(ti for ti in dr.get_task_instances() if ti.task_id == "verify_releases")
    assert verify.try_number == 1  # AirflowFailException: no retry for a tampered store
    [failed] = [p for p in webhook if p["kind"] == "run_failed"]
    assert failed["dataset_id"] == "datashare_audit" and failed["numbers"]["task_id"] == "verify_releases"
    assert f"{DATASET} v1: data/part-00000.parquet sha256" in failed["text"]
    stale = {p["dataset_id"]: p for p in webhook if p["kind"] == "stale"}
    specs = sorted(p.stem for p in (REPO / "dags" / "datasets").glob("*.yaml"))
    assert sorted(stale) == specs  # the others have no release at all in this store
    stale = stale[DATASET]
    assert stale["rule"] == "freshness.max_age_hours"
    assert stale["numbers"]["max_age_hours"] == 36 and stale["numbers"]["age_hours"] > 36
