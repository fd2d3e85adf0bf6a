"""The SQL share on SQLite (a file in tmp_path) and on the machine's PostgreSQL (a throwaway database)."""

from __future__ import annotations

import datetime as dt
import os
import secrets
import sqlite3
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from datashare.exceptions import DatashareError, PublishBusy, PublishError
from datashare.share.sqlshare import current_version, list_versions, publish_release
from datashare.share.target import ShareTarget

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
HANOI = unicodedata.normalize("NFC", "Hà Nội")
HUE = unicodedata.normalize("NFC", "Thừa Thiên Huế")

SCHEMA = pa.schema(
    [
        pa.field("station_code", pa.string(), nullable=False, metadata={b"description": "Mã trạm quan trắc".encode()}),
        pa.field("station_name", pa.string(), metadata={b"description": "Tên trạm".encode()}),
        pa.field("observed_at", pa.timestamp("us"), metadata={b"description": b"Observation hour (local time)"}),
        pa.field("pm25", pa.float64(), metadata={b"description": "PM2.5, µg/m³".encode()}),
    ]
)


def rows_for(version: int) -> list[tuple]:
    """A few rows that differ by version; one PM2.5 reading is missing."""
    hour = dt.datetime(2025, 3, version, 7, 0)
    return [
        (f"HN{version:02d}", HANOI, hour, 41.5 + version),
        (f"HUE{version:02d}", HUE, hour, None),
    ]


def write_release(folder: Path, version: int, *, files: int = 1) -> list[Path]:
    """Write the version's rows as ``files`` Parquet parts with one schema."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = rows_for(version)
    paths = []
    for part in range(files):
        chunk = rows[part::files]
        table = pa.table(
            [pa.array(col, type=f.type) for col, f in zip(zip(*chunk, strict=True), SCHEMA, strict=True)], schema=SCHEMA
        )
        path = folder / f"v{version}-part-{part}.parquet"
        pq.write_table(table, path)
        paths.append(path)
    return paths


def _require_postgres() -> None:
    import psycopg

    try:
        psycopg.connect(PG_ADMIN, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        if os.environ.get("DATASHARE_REQUIRE_SERVICES") == "1":
            pytest.fail(f"PostgreSQL at 127.0.0.1:5432 is required but unreachable: {exc}")
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 is unreachable: {exc}")


@pytest.fixture(scope="module")
def pg_database() -> Iterator[str]:
    """A throwaway database for this module, dropped at the end."""
    _require_postgres()
    import psycopg

    name = f"datashare_test_share_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Share:
    """A share target and a way to look inside it."""

    backend: str
    url: str
    schema: str
    dsn: str  # libpq URI or SQLite path

    @property
    def target(self) -> ShareTarget:
        return ShareTarget.from_url(self.url, schema=self.schema)

    def name(self, obj: str) -> str:
        return f'"{self.schema}"."{obj}"' if self.backend == "postgresql" else f'"{obj}"'

    def fetch(self, query: str, params: tuple = ()) -> list[tuple]:
        if self.backend == "sqlite":
            if not Path(self.dsn).exists():
                raise AssertionError("the SQLite share file was never created")
            with sqlite3.connect(self.dsn) as conn:
                return conn.execute(query.replace("%s", "?"), params).fetchall()
        import psycopg

        with psycopg.connect(self.dsn) as conn:
            return conn.execute(query, params).fetchall()

    def exists(self, obj: str) -> bool:
        if self.backend == "sqlite":
            return bool(self.fetch("SELECT 1 FROM sqlite_master WHERE name = %s", (obj,)))
        return self.fetch("SELECT to_regclass(%s)", (self.name(obj),))[0][0] is not None

    def view_rows(self, view: str) -> list[tuple]:
        rows = self.fetch(f"SELECT station_code, station_name, observed_at, pm25 FROM {self.name(view)} ORDER BY 1")
        return [(c, n, t if isinstance(t, dt.datetime) else dt.datetime.fromisoformat(t), p) for c, n, t, p in rows]


def _postgres_share(database: str) -> Share:
    schema = f"share_{secrets.token_hex(3)}"  # one schema per test keeps tests apart
    return Share(
        "postgresql",
        f"postgresql+psycopg://postgres:secret@127.0.0.1:5432/{database}",  # trust auth ignores the password
        schema,
        f"postgresql://postgres@127.0.0.1:5432/{database}",
    )


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def share(request: pytest.FixtureRequest, tmp_path: Path) -> Share:
    """Each backend in turn."""
    if request.param == "sqlite":
        path = tmp_path / "var" / "share.sqlite"
        return Share("sqlite", f"sqlite:///{path}", "datashare", str(path))
    return _postgres_share(request.getfixturevalue("pg_database"))


@pytest.fixture
def pg_share(pg_database: str) -> Share:
    """PostgreSQL only, for what SQLite does not have: comments, grants, per-table locks."""
    return _postgres_share(pg_database)


def publish(share: Share, tmp_path: Path, version: int, *, dataset_id: str = "air_quality", **kwargs):
    paths = write_release(tmp_path / "releases", version, files=kwargs.pop("files", 1))
    return publish_release(
        dataset_id=dataset_id,
        version=version,
        parquet_paths=paths,
        target=ShareTarget.from_url(share.url, schema=kwargs.pop("schema", share.schema)),
        **kwargs,
    )


def test_first_release_is_queryable_through_the_view(share: Share, tmp_path: Path) -> None:
    result = publish(share, tmp_path, 1, comment="Hourly air quality")

    assert (result.dataset_id, result.version, result.table, result.view) == (
        "air_quality",
        1,
        "air_quality__v1",
        "air_quality",
    )
    assert result.rows == 2 and result.dropped == ()
    assert "secret" not in result.target and result.target.startswith(share.url.split(":")[0])
    assert share.view_rows("air_quality") == sorted(rows_for(1))
    assert current_version(dataset_id="air_quality", target=share.target) == 1
    assert not share.exists("air_quality__v1__load")


def test_second_release_repoints_the_view_and_keeps_the_first(share: Share, tmp_path: Path) -> None:
    publish(share, tmp_path, 1)
    result = publish(share, tmp_path, 2, files=2)

    assert result.rows == 2
    assert share.view_rows("air_quality") == sorted(rows_for(2))
    assert share.exists("air_quality__v1")
    assert list_versions(dataset_id="air_quality", target=share.target) == [1, 2]


def test_retention_drops_versions_past_the_count(share: Share, tmp_path: Path) -> None:
    for version in (1, 2):
        publish(share, tmp_path, version, retention=2)
    result = publish(share, tmp_path, 3, retention=2)

    assert result.dropped == ("air_quality__v1",)
    assert not share.exists("air_quality__v1")
    assert share.exists("air_quality__v2") and share.exists("air_quality__v3")
    assert list_versions(dataset_id="air_quality", target=share.target) == [2, 3]


def test_republishing_a_version_is_idempotent(share: Share, tmp_path: Path) -> None:
    for version in (1, 2, 3):
        publish(share, tmp_path, version, retention=2)
    bookkeeping = f"SELECT dataset_id, version, table_name, rows FROM {share.name('_datashare_versions')} ORDER BY 2"
    before = share.fetch(bookkeeping)

    result = publish(share, tmp_path, 3, retention=2)

    assert result.rows == 2 and result.dropped == ()
    assert share.view_rows("air_quality") == sorted(rows_for(3))
    assert (
        share.fetch(bookkeeping)
        == before
        == [("air_quality", 2, "air_quality__v2", 2), ("air_quality", 3, "air_quality__v3", 2)]
    )
    assert share.fetch(f"SELECT count(*) FROM {share.name('air_quality__v3')}") == [(2,)]


def test_an_older_version_cannot_roll_the_view_back(share: Share, tmp_path: Path) -> None:
    publish(share, tmp_path, 1)
    publish(share, tmp_path, 2)

    with pytest.raises(PublishError, match="air_quality v1: the view already shows v2"):
        publish(share, tmp_path, 1)
    assert share.view_rows("air_quality") == sorted(rows_for(2))


@pytest.mark.parametrize("bad_id", ['x"; drop table y; --', "Air_quality", "1st", "a" * 49, ""])
def test_hostile_dataset_id_is_refused_before_any_sql(share: Share, tmp_path: Path, bad_id: str) -> None:
    with pytest.raises(PublishError, match="invalid dataset_id") as raised:
        publish(share, tmp_path, 1, dataset_id=bad_id)

    assert repr(bad_id) in str(raised.value) and not raised.value.retryable
    if share.backend == "sqlite":
        assert not Path(share.dsn).exists()
    else:
        assert share.fetch("SELECT 1 FROM pg_namespace WHERE nspname = %s", (share.schema,)) == []


def test_hostile_column_and_schema_names_are_refused(share: Share, tmp_path: Path) -> None:
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.table({'x"; drop table y; --': ["a"]}), path)
    with pytest.raises(PublishError, match=r"bad\.parquet: invalid column name"):
        publish_release(dataset_id="ok", version=1, parquet_paths=[path], target=share.target)
    with pytest.raises(PublishError, match="invalid schema 'Public; --'"):
        publish(share, tmp_path, 1, schema="Public; --")

    if share.backend == "sqlite":
        assert not Path(share.dsn).exists()


def test_files_with_different_schemas_are_refused(share: Share, tmp_path: Path) -> None:
    good = write_release(tmp_path / "rel", 1)
    other = tmp_path / "other.parquet"
    pq.write_table(pa.table({"station_code": ["x"]}), other)

    with pytest.raises(PublishError, match=r"other\.parquet has a schema different"):
        publish_release(dataset_id="ok", version=1, parquet_paths=[*good, other], target=share.target)


def test_a_file_failing_mid_load_publishes_nothing(share: Share, tmp_path: Path) -> None:
    publish(share, tmp_path, 1)
    good = write_release(tmp_path / "rel2", 2)
    bad = tmp_path / "rel2" / "part-ns.parquet"  # nanoseconds that microseconds cannot hold
    table = pq.read_table(good[0]).cast(SCHEMA.set(2, pa.field("observed_at", pa.timestamp("ns"))))
    ns = pa.array([dt.datetime(2025, 3, 2, 7)] * table.num_rows, pa.timestamp("ns")).cast(pa.int64())
    pq.write_table(table.set_column(2, "observed_at", pc.add(ns, 1).cast(pa.timestamp("ns"))), bad)

    with pytest.raises(PublishError, match=r"cannot load Parquet file .*part-ns\.parquet") as raised:
        publish_release(dataset_id="air_quality", version=2, parquet_paths=[bad], target=share.target)

    assert not raised.value.retryable
    assert share.view_rows("air_quality") == sorted(rows_for(1))
    assert not share.exists("air_quality__v2") and not share.exists("air_quality__v2__load")


def test_vietnamese_text_round_trips_in_nfc(share: Share, tmp_path: Path) -> None:
    publish(share, tmp_path, 1)

    names = [name for (name,) in share.fetch(f"SELECT station_name FROM {share.name('air_quality')} ORDER BY 1")]
    assert names == [HANOI, HUE]
    assert all(unicodedata.is_normalized("NFC", n) for n in names)
    assert names[0] == "H\u00e0 N\u1ed9i"  # precomposed code points, byte for byte


@pytest.mark.postgres
def test_postgres_comments_come_from_field_descriptions(pg_share: Share, tmp_path: Path) -> None:
    publish(pg_share, tmp_path, 1, comment="Quan trắc không khí theo giờ")

    def column_comment(relation: str, column: str) -> str | None:
        return pg_share.fetch(
            "SELECT col_description(to_regclass(%s), attnum) FROM pg_attribute "
            "WHERE attrelid = to_regclass(%s) AND attname = %s",
            (pg_share.name(relation), pg_share.name(relation), column),
        )[0][0]

    assert column_comment("air_quality", "station_code") == "Mã trạm quan trắc"
    assert column_comment("air_quality__v1", "pm25") == "PM2.5, µg/m³"
    view_comment = pg_share.fetch(
        "SELECT obj_description(to_regclass(%s), 'pg_class')", (pg_share.name("air_quality"),)
    )
    assert view_comment == [("Quan trắc không khí theo giờ (release 1)",)]
    not_null = pg_share.fetch(
        "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnotnull AND attnum > 0",
        (pg_share.name("air_quality__v1"),),
    )
    assert not_null == [("station_code",)]


@pytest.mark.postgres
def test_postgres_grants_on_the_view_survive_a_repoint(pg_share: Share, tmp_path: Path) -> None:
    import psycopg

    publish(pg_share, tmp_path, 1)
    with psycopg.connect(pg_share.dsn, autocommit=True) as conn:
        conn.execute(f"GRANT SELECT ON {pg_share.name('air_quality')} TO PUBLIC")
    publish(pg_share, tmp_path, 2)

    acl = pg_share.fetch(
        "SELECT relacl::text FROM pg_class WHERE oid = to_regclass(%s)", (pg_share.name("air_quality"),)
    )
    assert "=r/" in acl[0][0]  # PUBLIC (empty grantee) may SELECT


@pytest.mark.postgres
def test_postgres_reader_holding_the_view_makes_publish_retry_then_fail(
    pg_share: Share, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import psycopg

    publish(pg_share, tmp_path, 1)
    reader = psycopg.connect(pg_share.dsn)  # not autocommit: the SELECT opens a transaction that keeps its lock
    try:
        assert len(reader.execute(f"SELECT * FROM {pg_share.name('air_quality')}").fetchall()) == 2

        with pytest.raises(PublishBusy, match=f"view {pg_share.schema}.air_quality stayed locked") as raised:
            publish(pg_share, tmp_path, 2, lock_timeout_ms=150, max_attempts=2)
        assert raised.value.retryable and isinstance(raised.value, DatashareError)
        assert "is held by readers (attempt 1 of 2)" in caplog.text
    finally:
        reader.commit()
        reader.close()

    assert pg_share.view_rows("air_quality") == sorted(rows_for(1))
    assert not pg_share.exists("air_quality__v2__load") and not pg_share.exists("air_quality__v2")
    assert publish(pg_share, tmp_path, 2, lock_timeout_ms=150, max_attempts=2).version == 2
    assert pg_share.view_rows("air_quality") == sorted(rows_for(2))


def test_a_dataset_never_published_has_no_versions(share: Share) -> None:
    assert list_versions(dataset_id="never", target=share.target) == []
    assert current_version(dataset_id="never", target=share.target) is None


@pytest.mark.postgres
def test_postgres_reader_of_an_old_table_only_postpones_its_drop(pg_share: Share, tmp_path: Path) -> None:
    import psycopg

    publish(pg_share, tmp_path, 1, retention=1)
    reader = psycopg.connect(pg_share.dsn)
    try:
        reader.execute(f"SELECT count(*) FROM {pg_share.name('air_quality__v1')}").fetchall()
        result = publish(pg_share, tmp_path, 2, retention=1, lock_timeout_ms=150)
        assert result.dropped == () and pg_share.exists("air_quality__v1")
    finally:
        reader.commit()
        reader.close()

    assert pg_share.view_rows("air_quality") == sorted(rows_for(2))
    assert publish(pg_share, tmp_path, 3, retention=1).dropped == ("air_quality__v1", "air_quality__v2")


def test_sqlite_writer_holding_the_file_makes_publish_retry_then_fail(tmp_path: Path) -> None:
    path = tmp_path / "share.sqlite"
    share = Share("sqlite", f"sqlite:///{path}", "datashare", str(path))
    publish(share, tmp_path, 1)
    writer = sqlite3.connect(path, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        with pytest.raises(PublishBusy, match=r"view air_quality at sqlite:///.* stayed locked through 2 attempts"):
            publish(share, tmp_path, 2, lock_timeout_ms=100, max_attempts=2)
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert publish(share, tmp_path, 2).rows == 2
    assert share.view_rows("air_quality") == sorted(rows_for(2))
