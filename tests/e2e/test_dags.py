"""The generated DAGs in real Airflow: DagBag integrity, then dag.test() runs against a PostgreSQL unit.

``dag.test()`` costs about ten seconds of start-up per run, so every run lives in this one module
and each asserts several things.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from datashare.settings import Settings
from datashare.spec import load_spec
from datashare.store import ReleaseStore
from units import monitoring

pytestmark = pytest.mark.airflow

REPO = Path(__file__).resolve().parents[2]
DATASET = "air_quality_hourly"
AUDIT_DAG = "datashare_audit"  # DAGs that are not datasets: dags/datashare_audit.py
WEBHOOKS_DAG = "datashare_webhooks"  # and dags/datashare_webhooks.py


def _dagbag(dags: Path = REPO / "dags"):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(dags))


def test_dagbag_integrity(airflow_db: Path) -> None:
    bag = _dagbag()
    assert bag.import_errors == {}
    specs = sorted(p.stem for p in (REPO / "dags" / "datasets").glob("*.yaml"))
    assert sorted(bag.dag_ids) == sorted([*specs, AUDIT_DAG, WEBHOOKS_DAG])  # a DAG per spec, and two services
    for service in (AUDIT_DAG, WEBHOOKS_DAG):
        dag = bag.get_dag(service)
        assert "datashare" in dag.tags and dag.owner != "airflow"
        assert all(t.retries >= 1 and t.retry_exponential_backoff for t in dag.tasks)
    for dag_id, dag in bag.dags.items():
        if dag_id in (AUDIT_DAG, WEBHOOKS_DAG):
            continue
        assert dag.tags and "datashare" in dag.tags, dag_id
        spec = load_spec(REPO / "dags" / "datasets" / f"{dag_id}.yaml")
        head = ["plan_ranges", "extract_range", "combine"] if spec.source.partitions else ["extract"]
        tail = ["transform", "validate", "commit_release", "publish_sql", "record"]
        assert [t.task_id for t in dag.topological_sort()] == head + tail
        for t in dag.tasks:
            assert t.owner and t.owner != "airflow", (dag_id, t.task_id)
            assert t.retries >= 1 and t.retry_exponential_backoff, (dag_id, t.task_id)
        extract = "extract_range" if spec.source.partitions else "extract"
        assert dag.get_task(extract).pool == spec.pool
        if spec.source.kind == "derived":  # runs when any of its inputs' Assets updates (a | b | c)
            condition = dag.timetable.asset_condition
            assert type(condition).__name__ == "AssetAny", type(condition)
            uris = sorted(a.uri.rstrip("/") for a in condition.objects)
            assert uris == sorted(f"datashare://{i}" for i in spec.source.inputs)
        else:
            assert spec.pool == f"unit_{spec.source.unit}"
        assert dag.owner == spec.owner
        outlets = dag.get_task("record").outlets  # Airflow normalises the URI with a trailing slash
        assert [o.uri.rstrip("/") for o in outlets] == [f"datashare://{dag_id}"]
    # Parse time is measured by `make bench` (bench/parse_bench.py), not asserted here: on a loaded machine the
    # wall time of a 0.1 s parse varies tenfold. tests/integration/test_dag_parsing.py checks that parsing imports
    # no data library and that a task reads only its own spec.
    assert {stat.file for stat in bag.dagbag_stats} == {
        "datashare_dags.py",
        "datashare_spec_errors.py",
        "datashare_audit.py",
        "datashare_webhooks.py",
    }


def test_malformed_spec_is_reported_and_other_dags_still_load(
    airflow_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    home = tmp_path / "home"
    datasets = home / "dags" / "datasets"
    datasets.mkdir(parents=True)
    shutil.copytree(REPO / "expectations", home / "expectations")
    shutil.copy(REPO / "dags" / "datasets" / f"{DATASET}.yaml", datasets)
    bad = yaml.safe_load((datasets / f"{DATASET}.yaml").read_text(encoding="utf-8"))
    bad["id"] = "broken_dataset"
    bad["retention"] = {"sql_versions": "three"}
    (datasets / "broken_dataset.yaml").write_text(yaml.safe_dump(bad, allow_unicode=True), encoding="utf-8")
    (datasets / "not_utf8.yaml").write_bytes(b"id: not_utf8\ntitle: \xff\n")
    monkeypatch.setenv("DATASHARE_HOME", str(home))
    with caplog.at_level(logging.ERROR, logger="datashare.orchestration.factory"):
        bag = _dagbag()
    # Every DAG but the broken specs' ones loads, from the real dags folder's files.
    assert sorted(bag.dag_ids) == sorted([DATASET, AUDIT_DAG, WEBHOOKS_DAG])
    assert "broken_dataset.yaml" in caplog.text and "retention.sql_versions" in caplog.text
    # One import error, on the file that owns no DAG, names every broken spec with its field.
    assert list(bag.import_errors) == [str(REPO / "dags" / "datashare_spec_errors.py")]
    error = next(iter(bag.import_errors.values()))
    assert f"{datasets / 'broken_dataset.yaml'}: invalid dataset spec" in error
    assert "- retention.sql_versions:" in error
    assert f"{datasets / 'not_utf8.yaml'}: not UTF-8: byte 0xff at line 2" in error
    assert DATASET not in error


def _observation_keys(url: str) -> int:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        n = conn.execute(
            sa.text("SELECT count(*) FROM (SELECT DISTINCT station_code, observed_at FROM air_observations) k")
        ).scalar_one()
    engine.dispose()
    return int(n)


def _run(dag_id: str = DATASET):
    dag = _dagbag().get_dag(dag_id)
    dr = dag.test()
    states = {ti.task_id: ti.state for ti in dr.get_task_instances()}
    return dr, states


def test_dag_runs_v1_then_nothing_new_then_v2(airflow_db: Path, project, postgres_db: str, monkeypatch) -> None:
    from datashare.source.connections import connection_env_value

    monitoring.generate(postgres_db, stations=3, days=2)
    project("monre_monitoring", postgres_db)
    monkeypatch.setenv("AIRFLOW_CONN_DATASHARE_SHARE", connection_env_value(postgres_db))
    store = ReleaseStore.open(Settings.from_env().release_uri)

    dr, states = _run()
    assert dr.state == "success", states
    assert set(states.values()) == {"success"}
    assert store.versions(DATASET) == [1]
    release = store.release(DATASET, 1)
    assert release.rows == _observation_keys(postgres_db)
    assert release.manifest["datashare"]["run"] == dr.run_id.replace(":", "-").replace("+", "-")
    assert store.verify(DATASET, 1) == []

    dr, states = _run()  # nothing new: no version, and no Asset event (record is skipped)
    assert dr.state == "success", states
    assert states["record"] == "skipped" and states["commit_release"] == "success"
    assert store.versions(DATASET) == [1]

    monitoring.append_day(postgres_db)
    dr, states = _run()
    assert dr.state == "success", states
    assert store.versions(DATASET) == [1, 2]
    assert store.release(DATASET, 2).rows == _observation_keys(postgres_db)
    engine = sa.create_engine(postgres_db)
    with engine.connect() as conn:
        served = conn.execute(sa.text(f"SELECT count(*) FROM datashare.{DATASET}")).scalar_one()
    engine.dispose()
    assert served == store.release(DATASET, 2).rows

    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session

    with create_session() as session:
        emitted = [e.asset.uri.rstrip("/") for e in session.query(AssetEvent).all()]
    assert emitted.count(f"datashare://{DATASET}") == 2  # v1 and v2, not the no-op run


def test_dag_with_refused_source_retries_then_fails_publishing_nothing(airflow_db: Path, project) -> None:
    project("monre_monitoring", "postgresql+psycopg://postgres@127.0.0.1:1/nowhere")
    store = ReleaseStore.open(Settings.from_env().release_uri)
    dr, states = _run()
    assert dr.state == "failed"
    extract = next(ti for ti in dr.get_task_instances() if ti.task_id == "extract")
    assert extract.state == "failed" and extract.try_number == 2  # one retry, then final failure
    assert states["commit_release"] in {"upstream_failed", None}
    assert store.versions(DATASET) == []


def _partitioned_home(tmp_path: Path, *, partitions: bool) -> Path:
    """A project home with one snapshot dataset over the raw observations, keyed by id, optionally in 3 ranges."""
    home = tmp_path / ("ranged" if partitions else "single")
    (home / "dags" / "datasets").mkdir(parents=True)
    (home / "expectations").mkdir()
    spec = {
        "id": "observations_by_id",
        "title": {"vi": "Quan trắc theo mã dòng", "en": "Observations by row id"},
        "description": {"vi": "Kiểm thử trích xuất theo khoảng khóa.", "en": "Key-range extraction test."},
        "sector": "environment_monitoring",
        "owner": "data-engineering",
        "source": {"conn_id": "monre_monitoring", "unit": "monitoring", "table": "air_observations"},
        "mode": {"kind": "snapshot"},
        "key": ["id"],
        "columns": [
            {"name": "id", "type": "integer", "nullable": False, "description": {"vi": "Mã dòng", "en": "Row id"}},
            {"name": "station_code", "type": "string", "description": {"vi": "Mã trạm", "en": "Station"}},
            {"name": "observed_at", "type": "datetime", "description": {"vi": "Thời điểm", "en": "Hour"}},
            {"name": "pm25", "type": "number", "description": {"vi": "PM2.5", "en": "PM2.5"}},
        ],
        "classification": {"sharing": "open", "importance": "other"},
        "publish": {"parquet": True, "sql": False},
        "schedule": None,
        "licence": "CC-BY-4.0",
    }
    if partitions:
        spec["source"]["partitions"] = {"column": "id", "count": 3}
    (home / "dags" / "datasets" / "observations_by_id.yaml").write_text(yaml.safe_dump(spec, allow_unicode=True))
    suite = {
        "name": "observations_by_id",
        "expectations": [{"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}}],
        "meta": {},
    }
    (home / "expectations" / "observations_by_id.json").write_text(json.dumps(suite))
    return home


def test_key_ranges_mapped_over_tasks_give_the_same_release(
    airflow_db: Path, project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datashare.pipeline.stages import run_dataset

    unit = f"sqlite:///{tmp_path / 'unit.sqlite'}"
    monitoring.generate(unit, stations=3, days=2)
    project("monre_monitoring", unit)

    monkeypatch.setenv("DATASHARE_HOME", str(_partitioned_home(tmp_path, partitions=False)))
    monkeypatch.setenv("DATASHARE_RELEASE_ROOT", str(tmp_path / "single-releases"))
    single = run_dataset("observations_by_id")

    ranged_home = _partitioned_home(tmp_path, partitions=True)
    monkeypatch.setenv("DATASHARE_HOME", str(ranged_home))
    monkeypatch.setenv("DATASHARE_RELEASE_ROOT", str(tmp_path / "ranged-releases"))
    dr, states = _run("observations_by_id")
    assert dr.state == "success", states
    mapped = [ti for ti in dr.get_task_instances() if ti.task_id == "extract_range"]
    assert sorted(ti.map_index for ti in mapped) == [0, 1, 2]  # one mapped task per key range
    ranged = ReleaseStore.open(str(tmp_path / "ranged-releases")).release("observations_by_id", 1)
    assert ranged.rows == single["rows"]
    assert [f["sha256"] for f in ranged.files] == [f["sha256"] for f in single["files"]]  # byte-identical data
