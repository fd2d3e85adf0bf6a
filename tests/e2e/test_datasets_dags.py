"""Every sector dataset's DAG in real Airflow (``dag.test()``) against the issue's engines.

Land, water quality and the shared catalogues run against PostgreSQL units (with a PostgreSQL SQL
share, so the restricted land register's grants are checked too); water resources and public services
against MariaDB units; then the derived ``province_environment_indicators`` DAG over its three inputs.
``dag.test()`` costs several seconds of start-up per run, so each DAG runs once and each run asserts much.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import psycopg
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from datashare.settings import Settings
from datashare.store import ReleaseStore
from units import catalogues, land, monitoring, public_services, water_quality, water_resources

pytestmark = pytest.mark.airflow

REPO = Path(__file__).resolve().parents[2]
START = dt.date(2026, 11, 1)
KEY = "e2e-pseudonym-key-0123456789abcdef"


def _store() -> ReleaseStore:
    return ReleaseStore.open(Settings.from_env().release_uri)


def _run(dag_id: str) -> tuple[object, dict[str, str]]:
    """Run one DAG with dag.test(); return the run and the state of each task (mapped tasks: the worst)."""
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(REPO / "dags")).get_dag(dag_id)
    assert dag is not None, dag_id
    dr = dag.test()
    states: dict[str, str] = {}
    for ti in dr.get_task_instances():
        if states.get(ti.task_id) in (None, "success"):
            states[ti.task_id] = str(ti.state)
    return dr, states


def _check_run(dag_id: str, *, pool: str, rows: int | None = None) -> tuple[object, dict]:
    """Run a database dataset's DAG: it succeeds, every task succeeds, v1 is committed, verified and recorded."""
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(REPO / "dags")).get_dag(dag_id)
    readers = [t for t in dag.tasks if t.task_id in ("extract", "extract_range", "plan_ranges")]
    assert readers and all(t.pool == pool for t in readers), (dag_id, [(t.task_id, t.pool) for t in readers])
    dr, states = _run(dag_id)
    assert dr.state == "success", (dag_id, states)
    assert set(states.values()) == {"success"}, (dag_id, states)
    store = _store()
    assert store.versions(dag_id) == [1]
    assert store.verify(dag_id, 1) == []
    release = store.release(dag_id, 1)
    if rows is not None:
        assert release.rows == rows, dag_id
    return dr, release.manifest["datashare"]


def _scalar(url: str, sql: str) -> object:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(sql)).scalar_one()
    finally:
        engine.dispose()


def _emitted() -> list[str]:
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session

    with create_session() as session:
        return [e.asset.uri.rstrip("/") for e in session.query(AssetEvent).all()]


def _reads(url: str, role: str, relation: str) -> bool:
    with psycopg.connect(sa.make_url(url).set(drivername="postgresql").render_as_string(False)) as conn:
        return bool(conn.execute("SELECT has_table_privilege(%s, %s, 'SELECT')", (role, relation)).fetchone()[0])


def _connects(url: str, role: str, database: str) -> bool:
    with psycopg.connect(sa.make_url(url).set(drivername="postgresql").render_as_string(False)) as conn:
        return bool(conn.execute("SELECT has_database_privilege(%s, %s, 'CONNECT')", (role, database)).fetchone()[0])


def test_land_water_quality_and_catalogue_dags_on_postgresql(
    airflow_db: Path, project, postgres_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datashare.share import sqlroles
    from datashare.share.sqlshare_places import agency_database
    from datashare.source.connections import connection_env_value

    monkeypatch.setenv("DATASHARE_PSEUDONYM_KEY", KEY)
    monkeypatch.setenv("AIRFLOW_CONN_DATASHARE_SHARE", connection_env_value(postgres_db))
    parcels = land.generate(postgres_db, scale=0.01)
    samples = water_quality.generate(postgres_db, scale=0.1, days=7, start=START)
    made = catalogues.generate(postgres_db)
    for conn_id in ("monre_land", "monre_water_quality", "monre_catalogues"):
        project(conn_id, postgres_db)

    _check_run("admin_units", pool="unit_catalogues", rows=made.admin_units)
    _check_run("land_use_codes", pool="unit_catalogues", rows=made.land_use_codes)

    dr, manifest = _check_run("land_parcels", pool="unit_land")
    mapped = sorted(ti.map_index for ti in dr.get_task_instances() if ti.task_id == "extract_range")
    assert mapped == [0, 1, 2, 3]  # the spec's four key ranges, one mapped task each
    quarantine = manifest["validation"]["quarantine"]
    assert quarantine["rows"] > 0 and "expect_column_values_to_be_null:input_problems" in quarantine["by_rule"]
    assert _store().release("land_parcels", 1).rows == parcels.rows - quarantine["rows"]
    assert manifest["stats"]["extracted_rows"] == parcels.rows
    # Restricted: published into the named agency's own database only, where its role reads it; another
    # government agency and the public do not, and the share's database holds nothing of it.
    hanoi = sa.make_url(postgres_db).set(database=agency_database(sa.make_url(postgres_db).database, "sonnmt_hanoi"))
    hanoi_db = hanoi.render_as_string(hide_password=False)
    served = _scalar(hanoi_db, "SELECT count(*) FROM datashare.land_parcels")
    assert served == parcels.rows - quarantine["rows"]
    assert _scalar(hanoi_db, r"SELECT count(*) FROM datashare.land_parcels WHERE citizen_id ~ '^\d{12}$'") == 0
    assert _scalar(postgres_db, "SELECT count(*) FROM pg_class WHERE relname LIKE 'land_parcels%'") == 0
    assert _reads(hanoi_db, sqlroles.recipient_role("sonnmt_hanoi"), "datashare.land_parcels")
    assert not _reads(hanoi_db, sqlroles.recipient_role("sonnmt_hcmc"), "datashare.land_parcels")
    assert not _reads(hanoi_db, sqlroles.public_role(), "datashare.land_parcels")
    assert _connects(postgres_db, sqlroles.recipient_role("sonnmt_hanoi"), hanoi.database)
    assert not _connects(postgres_db, sqlroles.recipient_role("sonnmt_hcmc"), hanoi.database)
    assert _reads(postgres_db, sqlroles.public_role(), "datashare.admin_units")  # open catalogue

    _, manifest = _check_run("surface_water_quality", pool="unit_water_quality", rows=samples.rows)
    assert manifest["source_cursor"] is not None  # incremental: the next run reads past it
    data = pq.read_table(Path(_store().backend.describe("surface_water_quality/v1/data/part-00000.parquet")))
    below = [c for c in data.column_names if c.endswith("_below_dl")]
    assert any(any(data[c].fill_null(False).to_pylist()) for c in below)  # "<0,05" kept as a flag and a limit
    assert set(data["wqi_class"].to_pylist()) <= {"very good", "good", "medium", "bad", "poor", "very poor"}

    emitted = _emitted()
    for dataset_id in ("admin_units", "land_use_codes", "land_parcels", "surface_water_quality"):
        assert f"datashare://{dataset_id}" in emitted, dataset_id


def test_water_resources_and_public_services_on_mariadb_then_the_derived_dataset(
    airflow_db: Path, project, mariadb_db: str, tmp_path: Path
) -> None:
    from datashare.pipeline.stages import run_dataset

    made = water_resources.generate(mariadb_db, scale=0.1, days=7, start=START)
    services = public_services.generate(mariadb_db, scale=0.02, days=120, start=dt.date(2026, 7, 1))
    for conn_id in ("monre_water_resources", "monre_public_services"):
        project(conn_id, mariadb_db)

    _, manifest = _check_run("water_extraction_licences", pool="unit_water_resources")
    quarantine = manifest["validation"]["quarantine"]
    assert quarantine["by_rule"].keys() == {"expect_column_values_to_be_null:input_problems"}
    assert _store().release("water_extraction_licences", 1).rows == made.licences - quarantine["rows"]
    licences = pq.read_table(Path(_store().backend.describe("water_extraction_licences/v1/data/part-00000.parquet")))
    assert all(h.startswith(("Công ty ", "Ban Quản lý ", "Trung tâm ")) for h in licences["holder"].to_pylist())

    levels = _scalar(mariadb_db, "SELECT count(*) FROM well_levels")
    _, manifest = _check_run("groundwater_levels", pool="unit_water_resources", rows=levels)
    newest = _scalar(mariadb_db, "SELECT max(updated_at) FROM well_levels")
    assert manifest["source_cursor"] == newest.isoformat()  # incremental: the next run reads past it

    _, manifest = _check_run("public_service_dossier_stats", pool="unit_public_services")
    stats = pq.read_table(Path(_store().backend.describe("public_service_dossier_stats/v1/data/part-00000.parquet")))
    assert sum(stats["received"].to_pylist()) == services.dossiers
    assert set(stats["month"].to_pylist()) == {f"2026-{m:02d}" for m in range(7, 11)}

    # The derived dataset's other inputs, published without Airflow from SQLite units of the same weeks.
    for conn_id, generate in (
        ("monre_monitoring", lambda url: monitoring.generate(url, stations=6, days=3, start=START)),
        ("monre_water_quality", lambda url: water_quality.generate(url, scale=0.1, days=3, start=START)),
    ):
        url = f"sqlite:///{tmp_path / f'{conn_id}.sqlite'}"
        generate(url)
        project(conn_id, url)
    air = run_dataset("air_quality_hourly")
    water = run_dataset("surface_water_quality")

    dr, states = _run("province_environment_indicators")
    assert dr.state == "success" and set(states.values()) == {"success"}, states
    release = _store().release("province_environment_indicators", 1)
    assert release.manifest["datashare"]["stats"]["inputs"] == {
        "air_quality_hourly": air["version"],
        "surface_water_quality": water["version"],
        "water_extraction_licences": 1,
    }
    table = pq.read_table(Path(_store().backend.describe("province_environment_indicators/v1/data/part-00000.parquet")))
    wqi = [c for c in table.column_names if c.startswith("wqi_")]
    assert sum(sum(table[c].to_pylist()) for c in wqi) == water["rows"]  # every sample counted in one class
    assert sum(table["air_hours"].to_pylist()) == air["rows"]
    assert max(table["active_licences"].to_pylist()) > 0
    assert "datashare://province_environment_indicators" in _emitted()
    assert "datashare://water_extraction_licences" in _emitted()  # its input's DAG emitted the Asset it waits on
