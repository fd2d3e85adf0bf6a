"""The demo: the main job on embedded defaults, through real Airflow, with no server.

It makes the simulated monitoring unit (a SQLite file), points the ``monre_monitoring`` connection at
it, prepares an Airflow home with a SQLite metadata database under ``var/airflow``, runs the
``air_quality_hourly`` DAG with ``dag.test()`` and prints the release it published. ``--next-day``
appends a day of observations first, so the next run publishes a new version; a run with nothing
new publishes nothing and says so.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from datashare.connections import connection_env_value
from datashare.settings import Settings

log = logging.getLogger(__name__)

DATASET = "air_quality_hourly"
CONN_ID = "monre_monitoring"
DERIVED = ("province_environment_indicators",)
"""Datasets built from the demo's releases, run after it (in Airflow they run on its Asset)."""


def airflow_env(settings: Settings, airflow_home: Path) -> dict[str, str]:
    """Environment of an embedded Airflow: SQLite metadata, our dags and plugins, no examples, small parallelism."""
    airflow_home.mkdir(parents=True, exist_ok=True)
    secret_file = airflow_home / "jwt_secret"
    if not secret_file.exists():
        secret_file.write_text(secrets.token_hex(48))
        secret_file.chmod(0o600)
    return {
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(settings.home / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(settings.home / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
        "AIRFLOW__API_AUTH__JWT_SECRET": secret_file.read_text().strip(),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": os.environ.get("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING"),
        "GX_ANALYTICS_ENABLED": "false",
        "DATASHARE_HOME": str(settings.home),
        "DATASHARE_RELEASE_ROOT": settings.release_uri,
    }


def migrate(env: dict[str, str]) -> None:
    """Create or upgrade the Airflow metadata database (about 5 s the first time)."""
    airflow = Path(sys.executable).with_name("airflow")
    result = subprocess.run(
        [str(airflow), "db", "migrate"], env={**os.environ, **env}, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")


def run_dag(dag_id: str) -> tuple[str, str]:
    """Run a DAG once with ``dag.test()`` in this process; returns (state, run id)."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {bag.import_errors}")
    dag = bag.get_dag(dag_id)
    if dag is None:
        raise RuntimeError(f"no DAG {dag_id!r}; spec errors are logged by the dag processor (datashare specs)")
    dr = dag.test()
    return str(dr.state), dr.run_id


def run_demo(settings: Settings, *, next_day: bool = False, reset: bool = False) -> int:
    """The README's first command: make the unit, run its DAG through Airflow, print the release."""
    from units import monitoring

    var = settings.home / "var"
    if reset and var.exists():
        shutil.rmtree(var)
    unit_db = var / "units" / "monitoring.sqlite"
    unit_url = f"sqlite:///{unit_db}"
    if not unit_db.exists():
        unit_db.parent.mkdir(parents=True, exist_ok=True)
        summary = monitoring.generate(unit_url)
        print(f"Generated the monitoring unit: {summary.stations} stations, {summary.rows:,} hourly rows -> {unit_db}")
    elif next_day:
        day = monitoring.append_day(unit_url)
        print(f"Appended observations of {day.isoformat()} to {unit_db}")
    import warnings

    warnings.filterwarnings("ignore", category=DeprecationWarning)  # Airflow's own, not actionable here
    env = airflow_env(settings, var / "airflow")
    env[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = connection_env_value(unit_url)
    os.environ.update(env)
    print("Preparing Airflow (metadata database in var/airflow) ...", flush=True)
    migrate(env)
    print(f"Running DAG {DATASET} with Airflow dag.test() ...", flush=True)
    state, run_id = run_dag(DATASET)
    status = report(settings, DATASET, state, run_id)
    for dataset_id in DERIVED if status == 0 else ():
        print(f"\nRunning DAG {dataset_id} (scheduled on the Asset datashare://{DATASET}) ...", flush=True)
        state, run_id = run_dag(dataset_id)
        status = max(status, report(settings, dataset_id, state, run_id, brief=True))
    return status


def report(settings: Settings, dataset_id: str, state: str, run_id: str, *, brief: bool = False) -> int:
    """Print what the run did, from the run summary the ``record`` task kept."""
    from datashare.cli import _print_release
    from datashare.pipeline import run_key_of
    from datashare.store import ReleaseStore

    store = ReleaseStore.open(settings.release_uri)
    key = f"{dataset_id}/_runs/{run_key_of(run_id)}.json"
    if state != "success" or not store.backend.exists(key):
        print(f"\nThe DAG run {run_id} ended in state {state!r}; nothing new was published.")
        failed = [e.body for e in _ledger_tail(store, dataset_id) if e.body["event"] == "validation_failed"]
        if failed:
            print(f"Validation report: {store.backend.describe(failed[-1]['report'])}")
        return 1
    import json

    summary: dict[str, Any] = json.loads(store.backend.get_bytes(key))
    if brief:
        what = "published" if summary["created"] else f"no new version ({summary['reason']})"
        rows = f"{summary['rows']:,} rows"
        print(f"{dataset_id}: v{summary['version']}, {rows}, validation {summary['validation']}: {what}")
        return 0
    if summary["created"]:
        print(f"\nPublished release v{summary['version']} of {dataset_id}:")
    else:
        print(f"\nNo new version of {dataset_id}: {summary['reason']}. The latest release stays v{summary['version']}:")
    summary["sql_target"] = (summary.get("sql") or {}).get("target")
    _print_release(summary)
    return 0


def _ledger_tail(store: Any, dataset_id: str) -> list[Any]:
    from datashare.ledger import Ledger

    return Ledger(store.backend).entries(dataset_id)[-5:]
