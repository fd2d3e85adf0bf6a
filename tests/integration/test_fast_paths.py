"""The fast paths give the same releases as the plain ones, on the machine's PostgreSQL and MariaDB.

Fast: extraction through ADBC (PostgreSQL) or connectorx (MariaDB), the suite on DuckDB, part tables in
the SQL share. Plain: SQLAlchemy row by row, the suite on a pandas DataFrame. Both run the same unit's
data into releases of their own, whose data files must match byte for byte (sha256).
"""

from __future__ import annotations

import logging
import unicodedata
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from datashare.exceptions import ContractError, SourceError
from datashare.pipeline.stages import run_dataset
from datashare.settings import Settings
from datashare.source.connections import connection_env_value, get_connection
from datashare.source.extract import extract
from datashare.spec import load_spec
from datashare.store import ReleaseStore
from units import monitoring

DATASET = "air_quality_hourly"
CONN = "monre_monitoring"
PLAIN = {"DATASHARE_EXTRACT_PATH": "plain", "DATASHARE_VALIDATION_ENGINE": "pandas"}
FAST = {"DATASHARE_EXTRACT_PATH": "auto", "DATASHARE_VALIDATION_ENGINE": "duckdb"}


def _run(monkeypatch: pytest.MonkeyPatch, root: Path, env: dict[str, str]) -> dict:
    """One run of the dataset into its own release store, with the paths ``env`` chooses."""
    monkeypatch.setenv("DATASHARE_RELEASE_ROOT", str(root))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return run_dataset(DATASET)


def _digests(root: Path, version: int) -> list[str]:
    release = ReleaseStore.open(str(root)).release(DATASET, version)
    return [f["sha256"] for f in release.files]


def _both_paths(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, plain_env: dict[str, str], fast_env: dict[str, str]
) -> tuple[dict, dict]:
    import datashare.source.fastextract as fastextract

    plain = _run(monkeypatch, tmp_path / "plain", plain_env)
    streamed: list[int] = []
    real = fastextract.stream_to_parquet

    def counting(*args, **kwargs):
        result = real(*args, **kwargs)
        streamed.append(result[0])
        return result

    monkeypatch.setattr(fastextract, "stream_to_parquet", counting)
    fast = _run(monkeypatch, tmp_path / "fast", fast_env)
    assert streamed and all(streamed)  # the fast reader streamed the rows: no silent fall-back to the plain path
    assert plain["created"] and fast["created"]
    assert fast["rows"] == plain["rows"] > 0
    assert _digests(tmp_path / "fast", fast["version"]) == _digests(tmp_path / "plain", plain["version"])
    return plain, fast


def _check_types(root: Path, version: int) -> None:
    """Naive microsecond timestamps, float64, int64 and NFC text, as the contract says."""
    release = ReleaseStore.open(str(root)).release(DATASET, version)
    table = pq.read_table(
        Path(ReleaseStore.open(str(root)).backend.describe(f"{release.prefix}/data/part-00000.parquet"))
    )
    assert table.schema.field("observed_at").type == pa.timestamp("us")
    assert table.schema.field("pm25").type == pa.float64()
    assert table.schema.field("aqi").type == pa.int64()
    assert all(unicodedata.is_normalized("NFC", n) for n in table["station_name"].to_pylist() if n)


@pytest.mark.postgres
def test_postgresql_fast_and_plain_releases_are_identical(
    project, postgres_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monitoring.generate(postgres_db, stations=5, days=3)
    project(CONN, postgres_db)
    monkeypatch.setenv("AIRFLOW_CONN_DATASHARE_SHARE", connection_env_value(postgres_db))
    plain_env = {**PLAIN, "DATASHARE_SHARE_SCHEMA": "share_plain"}
    fast_env = {**FAST, "DATASHARE_SHARE_SCHEMA": "share_fast"}
    _both_paths(monkeypatch, tmp_path, plain_env, fast_env)
    _check_types(tmp_path / "fast", 1)

    monitoring.append_day(postgres_db)  # incremental: only the new day is read, v1's file is kept
    plain2 = _run(monkeypatch, tmp_path / "plain", plain_env)
    fast2 = _run(monkeypatch, tmp_path / "fast", fast_env)
    assert plain2["version"] == fast2["version"] == 2 and len(fast2["files"]) == 2
    assert _digests(tmp_path / "fast", 2) == _digests(tmp_path / "plain", 2)

    engine = sa.create_engine(postgres_db)
    with engine.connect() as conn:
        counts = [
            conn.execute(sa.text(f"SELECT count(*) FROM {s}.{DATASET}")).scalar_one()
            for s in ("share_plain", "share_fast")
        ]
        parents = conn.execute(
            sa.text(
                "SELECT c.relname, count(i.inhparent) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "LEFT JOIN pg_inherits i ON i.inhrelid = c.oid WHERE n.nspname = 'share_fast' "
                "AND c.relname LIKE :p GROUP BY 1 ORDER BY 2 DESC"
            ),
            {"p": f"{DATASET}__p%"},
        ).all()
    engine.dispose()
    assert counts == [fast2["rows"], fast2["rows"]]
    # v1's file was loaded once and serves both versions; v2 loaded only its new file.
    assert [n for _, n in parents] == [2, 1]


@pytest.mark.postgres
def test_nothing_past_the_cursor_is_found_by_a_probe_without_the_fast_reader(
    project, postgres_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import datashare.source.extract as extraction

    monitoring.generate(postgres_db, stations=2, days=1)
    project(CONN, postgres_db)
    spec = load_spec(Settings.from_env().datasets_dir / f"{DATASET}.yaml")
    info = get_connection(CONN)
    full = extract(spec, info, tmp_path / "full.parquet")
    streamed: list[str | None] = []
    fast = extraction._extract_fast

    def counting(*args, **kwargs):
        streamed.append(kwargs.get("cursor"))
        return fast(*args, **kwargs)

    monkeypatch.setattr(extraction, "_extract_fast", counting)
    empty = extract(spec, info, tmp_path / "empty.parquet", cursor=full.cursor_max)
    assert (empty.rows, streamed) == (0, [])  # the probe found nothing: no Arrow reader was opened
    assert pq.read_schema(tmp_path / "empty.parquet").names == [c.name for c in spec.source_view().columns]

    monitoring.append_day(postgres_db)
    new = extract(spec, info, tmp_path / "new.parquet", cursor=full.cursor_max)
    assert new.rows > 0 and streamed == [full.cursor_max]  # rows past the cursor: the fast reader streams them


@pytest.mark.mariadb
def test_mariadb_fast_and_plain_releases_are_identical(
    project, mariadb_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monitoring.generate(mariadb_db, stations=5, days=3)
    project(CONN, mariadb_db)
    _both_paths(monkeypatch, tmp_path, PLAIN, FAST)
    _check_types(tmp_path / "fast", 1)
    monitoring.append_day(mariadb_db)
    plain2 = _run(monkeypatch, tmp_path / "plain", PLAIN)
    _run(monkeypatch, tmp_path / "fast", FAST)
    assert plain2["version"] == 2
    assert _digests(tmp_path / "fast", 2) == _digests(tmp_path / "plain", 2)


@pytest.mark.postgres
def test_a_type_the_fast_path_cannot_map_faithfully_goes_the_plain_way(
    project, postgres_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """float4 widened by Arrow (1.100000023841858) differs from psycopg's parse of its text (1.1)."""
    monitoring.generate(postgres_db, stations=2, days=1)
    engine = sa.create_engine(postgres_db)
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE air_observations ALTER COLUMN pm25 TYPE real"))
        conn.execute(
            sa.text("UPDATE air_observations SET pm25 = 1.1 WHERE id = (SELECT min(id) FROM air_observations)")
        )
    engine.dispose()
    project(CONN, postgres_db)
    spec = load_spec(Settings.from_env().datasets_dir / f"{DATASET}.yaml")
    info = get_connection(CONN)
    monkeypatch.setenv("DATASHARE_EXTRACT_PATH", "plain")
    plain = extract(spec, info, tmp_path / "plain.parquet")
    monkeypatch.setenv("DATASHARE_EXTRACT_PATH", "auto")
    with caplog.at_level(logging.INFO, logger="datashare.source.extract"):
        fast = extract(spec, info, tmp_path / "fast.parquet")
    assert "column 'pm25' arrives as float4" in caplog.text and "reading through SQLAlchemy" in caplog.text
    assert pq.read_table(fast.path).equals(pq.read_table(plain.path))
    assert 1.1 in pq.read_table(fast.path)["pm25"].to_pylist()


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("select", "expected"),
    [
        # The ORDER BY names every spec column, so the database itself refuses a missing one.
        ("o.pm25, o.pm10, o.no2, o.so2, o.co, o.o3", (SourceError, "column src.aqi does not exist")),
        ("o.pm25::text AS pm25, o.pm10, o.no2, o.so2, o.co, o.o3, o.aqi", (ContractError, "column 'pm25'")),
    ],
    ids=["column-missing", "column-retyped"],
)
def test_fast_extraction_reports_schema_drift_naming_the_column(
    project, postgres_db: str, tmp_path: Path, select: str, expected: tuple[type[Exception], str]
) -> None:
    monitoring.generate(postgres_db, stations=2, days=1)
    project(CONN, postgres_db)
    spec = load_spec(Settings.from_env().datasets_dir / f"{DATASET}.yaml")
    query = (
        f"SELECT o.station_code, s.name AS station_name, s.province_code, o.observed_at, {select} "
        "FROM air_observations o JOIN stations s ON s.station_code = o.station_code"
    )
    spec = spec.model_copy(update={"source": spec.source.model_copy(update={"query": query})})
    with pytest.raises(expected[0], match=expected[1]):
        extract(spec, get_connection(CONN), tmp_path / "x.parquet")


def test_key_ranges_from_the_footer_skip_files_the_new_rows_cannot_touch(tmp_path: Path) -> None:
    import datetime as dt

    from datashare.parquet import key_ranges_disjoint

    hours = [dt.datetime(2026, 11, 1, h) for h in range(24)]
    old = pa.table({"station_code": ["AQ01001"] * 24, "observed_at": pa.array(hours, pa.timestamp("us"))})
    path = tmp_path / "old.parquet"
    pq.write_table(old, path, row_group_size=10)

    def keys(code: str, hour: dt.datetime) -> pa.Table:
        return pa.table({"station_code": [code], "observed_at": pa.array([hour], pa.timestamp("us"))})

    assert key_ranges_disjoint(path, keys("AQ01001", dt.datetime(2026, 11, 2, 0)))  # past the cursor
    assert key_ranges_disjoint(path, keys("AQ99999", dt.datetime(2026, 11, 1, 5)))  # another station
    assert not key_ranges_disjoint(path, keys("AQ01001", dt.datetime(2026, 11, 1, 5)))  # a late update
    pq.write_table(old, path, write_statistics=False)
    assert not key_ranges_disjoint(path, keys("AQ01001", dt.datetime(2026, 11, 2, 0)))  # no statistics: compare


def test_read_ahead_hands_over_batches_in_order_and_reraises_the_reader_error() -> None:
    from datashare.source.prefetch import read_ahead

    def batches(fail: bool):
        for i in range(5):
            yield pa.record_batch({"i": [i]})
        if fail:
            raise OSError("connection reset by peer")

    assert [b["i"][0].as_py() for b in read_ahead(batches(False))] == [0, 1, 2, 3, 4]
    seen = []
    with pytest.raises(OSError, match="connection reset"):
        for b in read_ahead(batches(True)):
            seen.append(b["i"][0].as_py())
    assert seen == [0, 1, 2, 3, 4]
    stream = read_ahead(batches(False))  # a consumer that stops early does not leave the thread behind
    next(stream)
    stream.close()
