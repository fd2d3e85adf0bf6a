"""Sources are only ever read: a query with a side effect is refused, naming the connection, and changes nothing.

``SELECT ... WHERE nextval('seq') > 0`` used to advance the sequence. Every way in now runs in a
read-only transaction: PostgreSQL through psycopg and ADBC, MariaDB through PyMySQL and connectorx,
SQLite opened ``mode=ro`` with ``query_only``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from datashare.exceptions import SourceError
from datashare.pipeline.stages import run_dataset
from datashare.settings import Settings
from datashare.source.connections import get_connection
from datashare.store import ReleaseStore

DATASET = "side_effects"
CONN = "side_effect_source"


def _home(tmp_path: Path, query: str) -> Path:
    home = tmp_path / "home"
    (home / "dags" / "datasets").mkdir(parents=True)
    (home / "expectations").mkdir()
    spec = {
        "id": DATASET,
        "title": {"vi": "Truy vấn có tác dụng phụ", "en": "A query with a side effect"},
        "description": {"vi": "Truy vấn thay đổi nguồn", "en": "A query that changes the source"},
        "sector": "testing",
        "owner": "tests",
        "source": {"conn_id": CONN, "unit": "testing", "query": query},
        "mode": {"kind": "snapshot"},
        "key": ["id"],
        "columns": [{"name": "id", "type": "integer", "nullable": False, "description": {"vi": "Mã", "en": "Id"}}],
        "classification": {"sharing": "open", "importance": "other"},
        "schedule": None,
        "licence": "CC-BY-4.0",
    }
    (home / "dags" / "datasets" / f"{DATASET}.yaml").write_text(yaml.safe_dump(spec))
    suite = {"name": DATASET, "expectations": []}
    (home / "expectations" / f"{DATASET}.json").write_text(json.dumps(suite))
    return home


def _execute(url: str, *statements: str) -> list[tuple]:
    engine = sa.create_engine(url)
    rows: list[tuple] = []
    with engine.begin() as conn:
        for statement in statements:
            result = conn.execute(sa.text(statement))
            rows += [tuple(r) for r in result.all()] if result.returns_rows else []
    engine.dispose()
    return rows


def _refused(
    project: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, url: str, query: str
) -> SourceError:
    project(CONN, url)
    monkeypatch.setenv("DATASHARE_HOME", str(_home(tmp_path, query)))
    with pytest.raises(SourceError) as info:
        run_dataset(DATASET)
    message = str(info.value)
    assert f"source connection {CONN!r}" in message and "is read-only" in message and DATASET in message
    assert not info.value.retryable
    assert ReleaseStore.open(Settings.from_env().release_uri).versions(DATASET) == []
    return info.value


@pytest.mark.postgres
@pytest.mark.parametrize("path", ["plain", "auto"])
@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("SELECT id FROM readings WHERE nextval('seq') > 0", "cannot execute nextval() in a read-only transaction"),
        ("SELECT id FROM readings WHERE bump() > 0", "cannot execute UPDATE in a read-only transaction"),
        ("SELECT id FROM readings FOR UPDATE", "cannot execute SELECT FOR UPDATE in a read-only transaction"),
    ],
    ids=["nextval", "writing-function", "for-update"],
)
def test_postgresql_refuses_a_side_effect_on_both_paths(
    project, postgres_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, path: str, query: str, says: str
) -> None:
    _execute(
        postgres_db,
        "CREATE TABLE readings (id integer PRIMARY KEY)",
        "INSERT INTO readings VALUES (1), (2)",
        "CREATE SEQUENCE seq",
        "CREATE TABLE counter (n integer)",
        "INSERT INTO counter VALUES (0)",
        "CREATE FUNCTION bump() RETURNS integer LANGUAGE sql AS 'UPDATE counter SET n = n + 1 RETURNING n'",
    )
    monkeypatch.setenv("DATASHARE_EXTRACT_PATH", path)
    error = _refused(project, monkeypatch, tmp_path, postgres_db, query)
    assert says in str(error)
    assert _execute(postgres_db, "SELECT last_value, is_called FROM seq") == [(1, False)]  # never advanced
    assert _execute(postgres_db, "SELECT n FROM counter") == [(0,)]


@pytest.mark.postgres
def test_the_adbc_reader_itself_is_read_only(project, postgres_db: str) -> None:
    """Not only the fallback: ADBC's own session refuses, so a fast read can never write either."""
    from datashare.source.fastextract import open_source

    _execute(postgres_db, "CREATE SEQUENCE seq")
    project(CONN, postgres_db)
    info = get_connection(CONN)
    with (
        pytest.raises(Exception, match="read-only transaction"),
        open_source("adbc", info, "SELECT nextval('seq')", 1000) as s,
    ):
        s.read_all()
    assert _execute(postgres_db, "SELECT last_value, is_called FROM seq") == [(1, False)]


def _mariadb_sequence(url: str) -> list[tuple]:
    return _execute(url, "SELECT next_not_cached_value FROM seq")


@pytest.mark.mariadb
@pytest.mark.parametrize("path", ["plain", "auto"])
@pytest.mark.parametrize(
    "query",
    ["SELECT id FROM readings WHERE NEXTVAL(seq) > 0", "SELECT id FROM readings WHERE bump() > 0"],
    ids=["nextval", "writing-function"],
)
def test_mariadb_refuses_a_side_effect_on_both_paths(
    project, mariadb_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, path: str, query: str
) -> None:
    _execute(
        mariadb_db,
        "CREATE TABLE readings (id INTEGER PRIMARY KEY)",
        "INSERT INTO readings VALUES (1), (2)",
        "CREATE SEQUENCE seq NOCACHE",
        "CREATE TABLE counter (n INTEGER)",
        "INSERT INTO counter VALUES (0)",
        "CREATE FUNCTION bump() RETURNS INTEGER MODIFIES SQL DATA BEGIN UPDATE counter SET n = n + 1; RETURN 1; END",
    )
    before = _mariadb_sequence(mariadb_db)
    monkeypatch.setenv("DATASHARE_EXTRACT_PATH", path)
    error = _refused(project, monkeypatch, tmp_path, mariadb_db, query)
    assert "Cannot execute statement in a READ ONLY transaction" in str(error)
    assert _mariadb_sequence(mariadb_db) == before
    assert _execute(mariadb_db, "SELECT n FROM counter") == [(0,)]


@pytest.mark.mariadb
def test_the_connectorx_reader_itself_is_read_only(project, mariadb_db: str) -> None:
    from datashare.source.fastextract import open_source

    _execute(mariadb_db, "CREATE SEQUENCE seq NOCACHE")
    before = _mariadb_sequence(mariadb_db)
    project(CONN, mariadb_db)
    info = get_connection(CONN)
    with (
        pytest.raises(RuntimeError, match="READ ONLY transaction"),
        open_source("connectorx", info, "SELECT NEXTVAL(seq) AS n", 1000) as s,
    ):
        s.read_all()
    assert _mariadb_sequence(mariadb_db) == before


def test_sqlite_sources_are_opened_read_only(project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite has no side effect a SELECT can reach; the connection itself refuses any write."""
    from datashare.source.extract import _engine, _source_error
    from datashare.spec import load_spec

    unit = tmp_path / "unit.sqlite"
    _execute(f"sqlite:///{unit}", "CREATE TABLE readings (id INTEGER PRIMARY KEY)", "INSERT INTO readings VALUES (1)")
    project(CONN, f"sqlite:///{unit}")
    home = _home(tmp_path, "SELECT id FROM readings")
    monkeypatch.setenv("DATASHARE_HOME", str(home))
    spec = load_spec(home / "dags" / "datasets" / f"{DATASET}.yaml")
    before = unit.read_bytes()
    engine = _engine(get_connection(CONN), spec)
    for write in ("INSERT INTO readings VALUES (2)", "CREATE TABLE other (a)", "PRAGMA user_version = 7"):
        with pytest.raises(sa.exc.OperationalError) as info, engine.begin() as conn:
            conn.execute(sa.text(write))
        error = _source_error(info.value, spec, get_connection(CONN))
        assert isinstance(error, SourceError) and "is read-only" in str(error) and CONN in str(error)
    engine.dispose()
    assert unit.read_bytes() == before
    assert run_dataset(DATASET)["rows"] == 1  # reading works as before
