"""The whole run without Airflow, against real unit databases: SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from datashare.exceptions import SourceError, SourceUnavailable, ValidationFailed
from datashare.pipeline.stages import run_dataset
from datashare.settings import Settings
from datashare.store import ReleaseStore
from units import monitoring

DATASET = "air_quality_hourly"
CONN = "monre_monitoring"


def _store() -> ReleaseStore:
    return ReleaseStore.open(Settings.from_env().release_uri)


def _share_rows(url: str, view: str) -> int:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        n = conn.execute(sa.text(f"SELECT count(*) FROM {view}")).scalar_one()
    engine.dispose()
    return int(n)


def _distinct_keys(url: str) -> int:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        n = conn.execute(
            sa.text("SELECT count(*) FROM (SELECT DISTINCT station_code, observed_at FROM air_observations) k")
        ).scalar_one()
    engine.dispose()
    return int(n)


def test_sqlite_unit_v1_then_nothing_new_then_v2(project, tmp_path: Path) -> None:
    unit = f"sqlite:///{tmp_path / 'unit.sqlite'}"
    monitoring.generate(unit, stations=4, days=3)
    project(CONN, unit)

    first = run_dataset(DATASET)
    assert first["created"] and first["version"] == 1
    assert first["rows"] == _distinct_keys(unit)  # duplicates dropped, every key kept
    assert first["validation"] == "passed"
    share = f"sqlite:///{tmp_path / 'share.sqlite'}"
    assert _share_rows(share, DATASET) == first["rows"]

    again = run_dataset(DATASET)
    assert not again["created"] and again["version"] == 1
    assert "no new rows" in again["reason"]

    monitoring.append_day(unit)
    second = run_dataset(DATASET)
    assert second["created"] and second["version"] == 2
    assert second["rows"] == _distinct_keys(unit)
    assert len(second["files"]) == 2  # v1's file carried over unchanged, plus the new day
    assert second["files"][0]["sha256"] == first["files"][0]["sha256"]
    assert _share_rows(share, DATASET) == second["rows"]

    store = _store()
    assert store.versions(DATASET) == [1, 2]
    assert store.verify(DATASET, 1) == [] and store.verify(DATASET, 2) == []
    manifest = store.release(DATASET, 2).manifest
    assert manifest["datashare"]["previous"]["version"] == 1
    assert manifest["datashare"]["source_cursor"].startswith("2026-11-04T23:00")
    # Published text is NFC even where the unit stored NFD.
    names = pq.read_table(Path(store.backend.describe(f"{DATASET}/v2/data/part-00000.parquet")))["station_name"]
    import unicodedata

    assert all(unicodedata.is_normalized("NFC", n) for n in names.to_pylist() if n)


def test_postgresql_unit_and_share(project, postgres_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from datashare.source.connections import connection_env_value

    monitoring.generate(postgres_db, stations=3, days=2)
    project(CONN, postgres_db)
    monkeypatch.setenv("AIRFLOW_CONN_DATASHARE_SHARE", connection_env_value(postgres_db))
    first = run_dataset(DATASET)
    assert first["version"] == 1 and first["rows"] == _distinct_keys(postgres_db)
    assert first["sql_view"] == f"datashare.{DATASET}"
    assert _share_rows(postgres_db, f"datashare.{DATASET}") == first["rows"]
    monitoring.append_day(postgres_db)
    second = run_dataset(DATASET)
    assert second["version"] == 2 and _share_rows(postgres_db, f"datashare.{DATASET}") == second["rows"]
    engine = sa.create_engine(postgres_db)
    with engine.connect() as conn:
        tables = (
            conn.execute(
                sa.text("SELECT table_name FROM information_schema.tables WHERE table_schema = 'datashare' ORDER BY 1")
            )
            .scalars()
            .all()
        )
    engine.dispose()
    assert f"{DATASET}__v1" in tables and f"{DATASET}__v2" in tables


def test_mariadb_unit_extracts(project, mariadb_db: str) -> None:
    monitoring.generate(mariadb_db, stations=3, days=2)
    project(CONN, mariadb_db)
    result = run_dataset(DATASET)
    assert result["version"] == 1 and result["rows"] == _distinct_keys(mariadb_db)


def test_source_refusing_connections_is_retryable_and_named(project) -> None:
    project(CONN, "postgresql+psycopg://postgres@127.0.0.1:1/nowhere")
    with pytest.raises(SourceUnavailable) as info:
        run_dataset(DATASET)
    assert info.value.retryable
    assert "monre_monitoring" in str(info.value) and "127.0.0.1:1" in str(info.value)
    assert _store().versions(DATASET) == []


def test_missing_source_table_names_it(project, tmp_path: Path) -> None:
    unit = f"sqlite:///{tmp_path / 'unit.sqlite'}"
    monitoring.generate(unit, stations=2, days=1)
    engine = sa.create_engine(unit)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE air_observations"))
    engine.dispose()
    project(CONN, unit)
    with pytest.raises(SourceError, match="air_observations"):
        run_dataset(DATASET)


def test_failed_suite_publishes_nothing_and_keeps_the_report(project, tmp_path: Path) -> None:
    unit = f"sqlite:///{tmp_path / 'unit.sqlite'}"
    monitoring.generate(unit, stations=3, days=2)
    share = project(CONN, unit) / "share.sqlite"
    first = run_dataset(DATASET)
    day = monitoring.append_day(unit)
    engine = sa.create_engine(unit)
    with engine.begin() as conn:  # a broken sensor: impossible PM2.5 on the new day
        conn.execute(sa.text("UPDATE air_observations SET pm25 = 5000 WHERE observed_at >= :d"), {"d": str(day)})
    engine.dispose()
    with pytest.raises(ValidationFailed, match="expect_column_values_to_be_between:pm25") as info:
        run_dataset(DATASET, run_id="bad-run")
    store = _store()
    assert store.versions(DATASET) == [1]
    report = Path(store.backend.describe(f"{DATASET}/_validation/bad-run/report.html"))
    assert report.is_file() and str(report) in str(info.value)
    assert "KHÔNG ĐẠT" in report.read_text(encoding="utf-8")
    assert _share_rows(f"sqlite:///{share}", DATASET) == first["rows"]
    events = [
        e.body["event"]
        for e in __import__("datashare.store.ledger", fromlist=["Ledger"]).Ledger(store.backend).entries()
    ]
    assert events[-1] == "validation_failed"


def test_run_killed_during_commit_leaves_nothing_visible(project, tmp_path: Path, monkeypatch) -> None:
    unit = f"sqlite:///{tmp_path / 'unit.sqlite'}"
    monitoring.generate(unit, stations=2, days=2)
    project(CONN, unit)
    script = textwrap.dedent(
        """
        import os, signal
        from datashare.store import backends
        real = backends.LocalBackend.put_if_absent
        def killer(self, key, data):
            if "/_log/" in key:
                os.kill(os.getpid(), signal.SIGKILL)  # dies after every file is written, before the commit record
            return real(self, key, data)
        backends.LocalBackend.put_if_absent = killer
        from datashare.pipeline.stages import run_dataset
        run_dataset("air_quality_hourly", run_id="doomed")
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], env=os.environ.copy(), capture_output=True, timeout=120)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    store = _store()
    assert store.versions(DATASET) == []  # the data files of v1 exist, but no release is visible
    assert store.backend.exists(f"{DATASET}/v1/datapackage.json")
    monkeypatch.setenv("DATASHARE_CLAIM_TIMEOUT_S", "0.5")  # the dead run's claim is abandoned after this
    result = run_dataset(DATASET, run_id="next")
    assert result["created"]
    assert store.versions(DATASET) == [result["version"]]
    assert store.verify(DATASET, result["version"]) == []
    retry = run_dataset(DATASET, run_id="doomed")  # a retry of the killed run finds the content already released
    assert not retry["created"]
    assert json.loads(store.backend.get_bytes(f"{DATASET}/_log/{result['version']}.json"))["run"] == "next"


def test_rows_breaking_row_level_rules_are_quarantined_within_threshold(project, tmp_path: Path) -> None:
    unit = f"sqlite:///{tmp_path / 'unit.sqlite'}"
    monitoring.generate(unit, stations=4, days=3)
    project(CONN, unit)
    engine = sa.create_engine(unit)
    with engine.begin() as conn:  # two impossible readings, well under the spec's 1% threshold
        ids = conn.execute(sa.text("SELECT id FROM air_observations ORDER BY id LIMIT 2")).scalars().all()
        conn.execute(
            sa.text("UPDATE air_observations SET pm25 = 5000 WHERE id IN (:a, :b)"), {"a": ids[0], "b": ids[1]}
        )
    engine.dispose()
    result = run_dataset(DATASET, run_id="dirty")
    assert result["created"] and result["rows"] == _distinct_keys(unit) - 2
    store = _store()
    validation = store.release(DATASET, 1).manifest["datashare"]["validation"]
    assert validation["success"] and validation["quarantine"]["rows"] == 2
    assert validation["quarantine"]["by_rule"] == {"expect_column_values_to_be_between:pm25": 2}
    rows = pq.read_table(Path(store.backend.describe(f"_quarantine/{DATASET}/dirty/rows.parquet")))
    assert rows.num_rows == 2 and set(rows["pm25"].to_pylist()) == {5000.0}
    assert rows["_rules"].to_pylist() == ["expect_column_values_to_be_between:pm25"] * 2
    published = pq.read_table(Path(store.backend.describe(f"{DATASET}/v1/data/part-00000.parquet")))
    assert 5000.0 not in published["pm25"].to_pylist()
    report = Path(store.backend.describe(f"{DATASET}/v1/validation/report.html")).read_text(encoding="utf-8")
    assert "Quarantined rows" in report and "expect_column_values_to_be_between:pm25" in report


def test_derived_dataset_builds_from_its_inputs_releases(project, tmp_path: Path, capsys) -> None:
    import datetime as dt

    import pyarrow.compute as pc

    from units import water_quality, water_resources

    unit = f"sqlite:///{tmp_path / 'unit.sqlite'}"
    monitoring.generate(unit, stations=6, days=3)
    project(CONN, unit)
    for conn_id, module in (("monre_water_quality", water_quality), ("monre_water_resources", water_resources)):
        url = f"sqlite:///{tmp_path / f'{conn_id}.sqlite'}"
        module.generate(url, scale=0.05, days=3, start=dt.date(2026, 11, 1))
        project(conn_id, url)
    with pytest.raises(SourceError, match="input dataset 'air_quality_hourly' has no release yet"):
        run_dataset("province_environment_indicators")
    air = run_dataset(DATASET)
    water = run_dataset("surface_water_quality")
    licences = run_dataset("water_extraction_licences")
    derived = run_dataset("province_environment_indicators")
    assert derived["created"] and derived["validation"] == "passed"
    store = _store()
    manifest = store.release("province_environment_indicators", 1).manifest["datashare"]
    assert manifest["stats"]["inputs"] == {
        DATASET: air["version"],
        "surface_water_quality": water["version"],
        "water_extraction_licences": licences["version"],
    }
    table = pq.read_table(Path(store.backend.describe("province_environment_indicators/v1/data/part-00000.parquet")))
    source = pq.read_table(Path(store.backend.describe(f"{DATASET}/v1/data/part-00000.parquet")))
    assert pc.sum(table["air_hours"]).as_py() == source.num_rows  # every published hour counted once
    provinces = set(source["province_code"].to_pylist())
    assert provinces <= set(table["province_code"].to_pylist())  # plus provinces with water samples only
    over = pc.sum(
        pc.or_(
            pc.or_(
                pc.fill_null(pc.greater(source["no2"], 200), False), pc.fill_null(pc.greater(source["o3"], 200), False)
            ),
            pc.or_(
                pc.fill_null(pc.greater(source["so2"], 350), False),
                pc.fill_null(pc.greater(source["co"], 30000), False),
            ),
        ).cast("int64")
    ).as_py()
    assert pc.sum(table["hours_over_qcvn05"]).as_py() == over
    again = run_dataset("province_environment_indicators")  # same inputs, same content: no new version
    assert not again["created"]

    # A new air release, then withdrawn: the indicators are rebuilt from the release before it.
    monitoring.append_day(unit)
    assert run_dataset(DATASET)["version"] == 2
    assert run_dataset("province_environment_indicators")["version"] == 2
    from datashare.tools.cli import main

    assert main(["withdraw", DATASET, "--version", "2", "--reason", "sai đơn vị đo"]) == 0
    assert (
        f"Note: province_environment_indicators v2 was built from {DATASET} v2 and is still served"
        in capsys.readouterr().out
    )
    rebuilt = run_dataset("province_environment_indicators")
    assert rebuilt["created"] and rebuilt["version"] == 3
    assert store.release("province_environment_indicators", 3).manifest["datashare"]["stats"]["inputs"][DATASET] == 1
    assert rebuilt["files"][0]["sha256"] == derived["files"][0]["sha256"]  # the same inputs as v1: the same file


def test_quarantine_over_half_its_threshold_alerts(project, tmp_path: Path, webhook, monkeypatch) -> None:
    port, received = webhook
    monkeypatch.setenv(
        "AIRFLOW_CONN_DATASHARE_ALERTS", json.dumps({"conn_type": "http", "host": f"http://127.0.0.1:{port}/hook"})
    )
    unit = f"sqlite:///{tmp_path / 'unit.sqlite'}"
    monitoring.generate(unit, stations=4, days=3)
    project(CONN, unit)
    engine = sa.create_engine(unit)
    with engine.begin() as conn:  # 2 of ~280 rows (0.7%): over half the 1% threshold, under the threshold
        conn.execute(sa.text("UPDATE air_observations SET aqi = 900 WHERE id IN (1, 2)"))
    engine.dispose()
    assert run_dataset(DATASET)["created"]
    assert len(received) == 1
    text = received[0]["body"].decode("utf-8")
    assert DATASET in text and "expect_column_values_to_be_between:aqi" in text and "2 of" in text
