"""The demo: the main job on embedded defaults, through real Airflow, with no server.

It makes the simulated units (SQLite files under ``var/units``, small scale), points their connections
at them, keeps a demo-only pseudonymisation key in ``var/`` (never committed), prepares an Airflow home
with a SQLite metadata database under ``var/airflow``, runs the ``air_quality_hourly`` DAG with
``dag.test()`` and prints the release it published, then runs every other dataset's DAG in dependency
order (database datasets first, the derived ``province_environment_indicators`` last) and prints one
line each. ``--next-day`` appends a day to the units first (and re-surveys some parcels), so the
incremental datasets publish a new version; a run with nothing new publishes nothing and says so.
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

from datashare.settings import Settings
from datashare.source.connections import connection_env_value
from datashare.tools.seed import UNITS, advance_unit, generate_unit

log = logging.getLogger(__name__)

DATASET = "air_quality_hourly"
OTHERS = (
    "admin_units",
    "land_use_codes",
    "land_parcels",
    "water_extraction_licences",
    "groundwater_levels",
    "surface_water_quality",
    "public_service_dossier_stats",
)
"""The other database datasets, shared catalogues first, run after the detailed one."""
DERIVED = ("province_environment_indicators",)
"""Datasets built from the demo's releases, run last (in Airflow they run on their inputs' Assets)."""
# The simulated units, their scale and their dates live in datashare.tools.seed (shared with docker-compose's init).


def pseudonym_key(var: Path) -> str:
    """The demo's pseudonymisation key: ``DATASHARE_PSEUDONYM_KEY`` if set, else a random one kept in var/."""
    if os.environ.get("DATASHARE_PSEUDONYM_KEY"):
        return os.environ["DATASHARE_PSEUDONYM_KEY"]
    key_file = var / "demo_pseudonym_key"
    if not key_file.exists():
        var.mkdir(parents=True, exist_ok=True)
        with os.fdopen(os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
            f.write(secrets.token_hex(32))  # readable by its owner only from the first byte
    return key_file.read_text().strip()


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
    """The README's first command: make the units, run every DAG through Airflow, print the releases."""
    var = settings.home / "var"
    if reset and var.exists():
        shutil.rmtree(var)
    connections: dict[str, str] = {}
    for conn_id, name in UNITS.items():
        path = var / "units" / f"{name}.sqlite"
        connections[conn_id] = f"sqlite:///{path}"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            # The suites check freshness against the clock, so every unit's data ends today (Vietnam time).
            print(f"Generated the {name} unit: {generate_unit(name, connections[conn_id])} -> {path}", flush=True)
        elif next_day and (done := advance_unit(name, connections[conn_id])):
            print(f"{name}: {done}")
    import warnings

    warnings.filterwarnings("ignore", category=DeprecationWarning)  # Airflow's own, not actionable here
    env = airflow_env(settings, var / "airflow")
    for conn_id, url in connections.items():
        env[f"AIRFLOW_CONN_{conn_id.upper()}"] = connection_env_value(url)
    env["DATASHARE_PSEUDONYM_KEY"] = pseudonym_key(var)  # demo only: production keys live in a secrets backend
    os.environ.update(env)
    print("Preparing Airflow (metadata database in var/airflow) ...", flush=True)
    migrate(env)
    print(f"Running DAG {DATASET} with Airflow dag.test() ...", flush=True)
    state, run_id = run_dag(DATASET)
    status = report(settings, DATASET, state, run_id)
    print(f"\nRunning the other {len(OTHERS) + len(DERIVED)} DAGs, derived datasets last:", flush=True)
    for dataset_id in OTHERS:
        state, run_id = run_dag(dataset_id)
        status = max(status, report(settings, dataset_id, state, run_id, brief=True))
    for dataset_id in DERIVED if status == 0 else ():
        state, run_id = run_dag(dataset_id)  # in Airflow it runs on its inputs' Assets
        status = max(status, report(settings, dataset_id, state, run_id, brief=True))
    return status


def report(settings: Settings, dataset_id: str, state: str, run_id: str, *, brief: bool = False) -> int:
    """Print what the run did, from the run summary the ``record`` task kept."""
    from datashare.pipeline.context import run_key_of
    from datashare.store import ReleaseStore
    from datashare.tools.cli import _print_release

    store = ReleaseStore.open(settings.release_uri)
    key = f"{dataset_id}/_runs/{run_key_of(run_id)}.json"
    if state != "success" or not store.backend.exists(key):
        print(f"\nThe DAG run {run_id} of {dataset_id} ended in state {state!r}; nothing new was published.")
        failed = [e.body for e in _ledger_tail(store, dataset_id) if e.body["event"] == "validation_failed"]
        if failed:
            print(f"Validation report: {store.backend.describe(failed[-1]['report'])}")
        return 1
    import json

    summary: dict[str, Any] = json.loads(store.backend.get_bytes(key))
    if brief:
        what = "published" if summary["created"] else f"no new version ({summary['reason']})"
        validation = store.release(dataset_id, summary["version"]).manifest["datashare"].get("validation") or {}
        quarantined = (validation.get("quarantine") or {}).get("rows", 0)
        print(
            f"{dataset_id:<32} v{summary['version']:<3} {summary['rows']:>8,} rows {quarantined:>5,} quarantined"
            f"  validation {summary['validation']}: {what}"
        )
        return 0
    if summary["created"]:
        print(f"\nPublished release v{summary['version']} of {dataset_id}:")
    else:
        print(f"\nNo new version of {dataset_id}: {summary['reason']}. The latest release stays v{summary['version']}:")
    _print_release(summary)
    return 0


def _ledger_tail(store: Any, dataset_id: str) -> list[Any]:
    ledger = store.ledger
    recent = ledger.entries_after(max(0, ledger.tip() - 200))  # the run's own entries are among the newest
    return [e for e in recent if e.body.get("dataset_id") == dataset_id][-5:]
