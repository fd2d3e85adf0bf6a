"""Types are a contract, both ways: a value the contract's type cannot hold exactly is never cast.

Each hostile value sits in a real source, SQLite, PostgreSQL (the ADBC fast path and the plain
SQLAlchemy path) and MariaDB (connectorx and PyMySQL), and runs through the whole pipeline. Without
a ``source_problems`` column the run fails naming dataset, column and value, and nothing is
published (a previous release stays as it was); with one, the row is quarantined with the rule and
the value, and the rest is published. Time zones follow the column's declared convention.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
import yaml

from datashare.exceptions import ContractError
from datashare.pipeline.stages import run_dataset
from datashare.settings import Settings
from datashare.store import ReleaseStore

DATASET = "hostile_values"
CONN = "hostile_source"


@dataclass(frozen=True)
class Source:
    """One way into a source: its dialect, the extraction path and the database URL."""

    dialect: str
    path: str
    url: str

    def execute(self, *statements: str) -> None:
        engine = sa.create_engine(self.url)
        with engine.begin() as conn:
            if self.dialect == "mariadb":
                conn.execute(sa.text("SET SESSION sql_mode = 'ALLOW_INVALID_DATES'"))  # let dirt in, as legacy apps do
            for statement in statements:
                conn.execute(sa.text(statement))
        engine.dispose()


SOURCES = ["sqlite", "postgresql-plain", "postgresql-fast", "mariadb-plain", "mariadb-fast"]


def _marks(name: str) -> list[pytest.MarkDecorator]:
    dialect = name.partition("-")[0]
    return [] if dialect == "sqlite" else [pytest.mark.postgres if dialect == "postgresql" else pytest.mark.mariadb]


@pytest.fixture(params=[pytest.param(name, marks=_marks(name)) for name in SOURCES])
def source(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Source:
    dialect, _, path = request.param.partition("-")
    if dialect == "sqlite":
        url = f"sqlite:///{tmp_path / 'unit.sqlite'}"
    elif dialect == "postgresql":
        url = request.getfixturevalue("postgres_db")
    else:
        url = request.getfixturevalue("mariadb_db")
    monkeypatch.setenv("DATASHARE_EXTRACT_PATH", "plain" if path in ("plain", "") else "auto")
    return Source(dialect, path or "plain", url)


def _home(tmp_path: Path, column: dict[str, Any], *, collect: bool = False, mode: str = "snapshot") -> Path:
    """A project home holding only the hostile dataset: key ``id``, value column ``v`` as given."""
    home = tmp_path / "home"
    (home / "dags" / "datasets").mkdir(parents=True)
    (home / "expectations").mkdir()
    columns = [
        {"name": "id", "type": "integer", "nullable": False, "description": {"vi": "Mã", "en": "Id"}},
        {"name": "v", "description": {"vi": "Giá trị", "en": "Value"}, **column},
    ]
    expectations = [{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "id"}}]
    if collect:
        columns.append(
            {
                "name": "problems",
                "type": "string",
                "computed": True,
                "source_problems": True,
                "description": {"vi": "Lỗi dữ liệu nguồn", "en": "Source problems"},
            }
        )
        expectations.append({"type": "expect_column_values_to_be_null", "kwargs": {"column": "problems"}})
    spec = {
        "id": DATASET,
        "title": {"vi": "Giá trị xấu", "en": "Hostile values"},
        "description": {"vi": "Giá trị nguồn mà kiểu dữ liệu không giữ được", "en": "Values types cannot hold"},
        "sector": "testing",
        "owner": "tests",
        "source": {"conn_id": CONN, "unit": "testing", "table": "readings"},
        "mode": {"kind": mode, **({"cursor": "v"} if mode == "incremental" else {})},
        "key": ["id"],
        "columns": columns,
        "quarantine": {"max_share": 0.2},
        "classification": {"sharing": "open", "importance": "other"},
        "schedule": None,
        "licence": "CC-BY-4.0",
    }
    (home / "dags" / "datasets" / f"{DATASET}.yaml").write_text(yaml.safe_dump(spec, allow_unicode=True))
    suite = {"name": DATASET, "expectations": [{**e, "meta": {}, "severity": "critical"} for e in expectations]}
    (home / "expectations" / f"{DATASET}.json").write_text(json.dumps(suite))
    return home


def _use(project: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, source: Source, home: Path) -> None:
    project(CONN, source.url)
    monkeypatch.setenv("DATASHARE_HOME", str(home))


def _store() -> ReleaseStore:
    return ReleaseStore.open(Settings.from_env().release_uri)


def _published(version: int) -> list[dict[str, Any]]:
    store = _store()
    release = store.release(DATASET, version)
    rows: list[dict[str, Any]] = []
    for f in release.files:
        rows += pq.read_table(store.backend.local_path(f"{release.prefix}/{f['path']}")).to_pylist()
    return sorted(rows, key=lambda r: r["id"])


# -- the hostile values, per dialect: (case id, contract column, SQL type, SQL literal, what the error says)

Case = tuple[str, dict[str, Any], str, str, str]
INTEGER = {"type": "integer"}
NUMBER = {"type": "number"}
DECIMAL = {"type": "decimal", "precision": 5, "scale": 2}
DATE = {"type": "date"}
DATETIME = {"type": "datetime", "timezone": "Asia/Ho_Chi_Minh"}

CASES: dict[str, list[Case]] = {
    "sqlite": [
        ("fraction-in-integer", INTEGER, "INTEGER", "1.5", "1.5 has a fraction"),
        ("text-in-integer", INTEGER, "INTEGER", "'abc'", "'abc' is text, not an integer"),
        ("beyond-int64", INTEGER, "INTEGER", "1e19", "1e+19 is beyond the 64-bit integer range"),
        ("infinity-in-number", NUMBER, "REAL", "9e999", "inf is infinite"),
        ("text-in-number", NUMBER, "NUMERIC", "'12,5'", "'12,5' is text, not a number"),
        # SQLite itself rounds '12345678901234567890.123' into a REAL column on insert: nothing left to catch.
        ("decimal-too-fine", DECIMAL, "DECIMAL(10, 3)", "'1.234'", "1.234 has more than 2 digits after"),
        ("decimal-too-large", DECIMAL, "DECIMAL(10, 3)", "'12345.6'", "12345.6 has more than 3 digits before"),
        ("boolean-2", {"type": "boolean"}, "BOOLEAN", "2", "2 is an integer other than 0 and 1"),
        ("30-february", DATE, "DATE", "'2024-02-30'", "'2024-02-30' is not a real date"),
        ("year-0-date", DATE, "DATE", "'0000-01-01'", "'0000-01-01' is not a real date (year 0 is out of range)"),
        ("year-10000-date", DATE, "DATE", "'10000-01-01'", "'10000-01-01' is outside the years 1–9999"),
        ("30-february-timestamp", DATETIME, "DATETIME", "'2024-02-30 10:00:00'", "is not a real timestamp"),
        ("year-0-timestamp", DATETIME, "DATETIME", "'0000-01-01 00:00:00'", "year 0 is out of range"),
        ("year-10000", DATETIME, "DATETIME", "'10000-01-01 00:00:00'", "is outside the years 1–9999"),
        ("unparsable-timestamp", DATETIME, "DATETIME", "'yesterday'", "'yesterday' is not a timestamp written"),
        ("nanoseconds", DATETIME, "DATETIME", "'2024-01-01 00:00:00.1234567'", "has digits below the microsecond"),
        (
            "offset-beyond-9999",
            DATETIME,
            "DATETIME",
            "'9999-12-31T23:00:00-05:00'",
            "once converted to Asia/Ho_Chi_Minh",
        ),
        ("blob-in-string", {"type": "string"}, "TEXT", "x'00ff'", "is binary data, not text"),
        ("nul-in-string", {"type": "string"}, "TEXT", "'a' || char(0) || 'b'", "contains a NUL character"),
    ],
    "postgresql": [
        ("infinity-timestamp", DATETIME, "timestamp", "'infinity'", "'infinity' is infinite"),
        ("minus-infinity-timestamp", DATETIME, "timestamp", "'-infinity'", "'-infinity' is infinite"),
        ("year-10000", DATETIME, "timestamp", "'10000-01-01'", "'10000-01-01 00:00:00' is outside the years 1–9999"),
        ("before-christ", DATETIME, "timestamp", "'0001-01-01 BC'", "is outside the years 1–9999"),
        ("infinity-timestamptz", DATETIME, "timestamptz", "'infinity'", "'infinity' is infinite"),
        ("infinity-date", DATE, "date", "'infinity'", "'infinity' is infinite"),
        ("year-10000-date", DATE, "date", "'10000-01-01'", "'10000-01-01' is outside the years 1–9999"),
        ("fraction-in-integer", INTEGER, "numeric", "1.5", "1.5 has a fraction"),
        ("beyond-int64", INTEGER, "numeric", "99999999999999999999", "99999999999999999999 is beyond the 64-bit"),
        ("nan", NUMBER, "float8", "'NaN'", "nan is NaN"),
        ("infinity-in-number", NUMBER, "float8", "'Infinity'", "inf is infinite"),
        ("numeric-nan", NUMBER, "numeric", "'NaN'", "NaN is NaN"),
        ("too-many-digits", NUMBER, "numeric", "12345678901234567890.123", "has more digits than a double holds"),
        ("integer-beyond-double", NUMBER, "int8", "9007199254740993", "9007199254740993 has more digits than a double"),
        ("decimal-too-fine", DECIMAL, "numeric(10, 3)", "1.234", "1.234 has more than 2 digits after"),
        ("boolean-2", {"type": "boolean"}, "int4", "2", "2 is an integer other than 0 and 1"),
        ("bytea-in-string", {"type": "string"}, "bytea", "'\\x00ff'::bytea", "is binary data, not text"),
    ],
    "mariadb": [
        (
            "zero-datetime",
            DATETIME,
            "DATETIME",
            "'0000-00-00 00:00:00'",
            "'0000-00-00 00:00:00' is not a real timestamp",
        ),
        ("30-february-timestamp", DATETIME, "DATETIME", "'2024-02-30 10:00:00'", "is not a real timestamp"),
        ("zero-date", DATE, "DATE", "'0000-00-00'", "'0000-00-00' is not a real date"),
        ("30-february", DATE, "DATE", "'2024-02-30'", "'2024-02-30' is not a real date"),
        ("fraction-in-integer", INTEGER, "DECIMAL(10, 1)", "1.5", "1.5 has a fraction"),
        ("beyond-int64", INTEGER, "BIGINT UNSIGNED", "18446744073709551615", "is beyond the 64-bit integer range"),
        ("too-many-digits", NUMBER, "DECIMAL(30, 3)", "12345678901234567890.123", "has more digits than a double"),
        ("integer-beyond-double", NUMBER, "BIGINT", "9007199254740993", "9007199254740993 has more digits"),
        ("decimal-too-fine", DECIMAL, "DECIMAL(10, 3)", "1.234", "1.234 has more than 2 digits after"),
        ("boolean-2", {"type": "boolean"}, "TINYINT", "2", "2 is an integer other than 0 and 1"),
        ("nul-in-string", {"type": "string"}, "VARCHAR(10)", "CONCAT('a', CHAR(0), 'b')", "contains a NUL character"),
        ("blob-in-string", {"type": "string"}, "VARBINARY(10)", "x'00ff'", "is binary data, not text"),
    ],
}
GOOD = {"integer": "7", "number": "2.5", "decimal": "1.25", "boolean": "1", "date": "'2024-01-01'"}
GOOD |= {"datetime": "'2024-01-01 05:00:00'", "string": "'ok'"}
"""A value of each type every source holds faithfully: the row that is published or must survive."""


def _cases() -> list[Any]:
    params = []
    for name in SOURCES:
        dialect = name.partition("-")[0]
        for case in CASES[dialect]:
            params.append(pytest.param(name, case, id=f"{name}:{case[0]}", marks=_marks(name)))
    return params


def _table(source: Source, sql_type: str, rows: list[tuple[int, str]]) -> None:
    source.execute(
        "DROP TABLE IF EXISTS readings",
        f"CREATE TABLE readings (id INTEGER PRIMARY KEY, v {sql_type})",
        *(f"INSERT INTO readings (id, v) VALUES ({i}, {literal})" for i, literal in rows),
    )


@pytest.mark.parametrize(("source", "case"), _cases(), indirect=["source"])
def test_a_hostile_value_fails_the_run_naming_dataset_column_and_value(
    source: Source,
    case: Case,
    project: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, column, sql_type, literal, says = case
    good = "NULL" if sql_type.lower().startswith(("bytea", "varbinary")) else GOOD[column["type"]]
    _table(source, sql_type, [(1, good), (2, literal)])
    _use(project, monkeypatch, source, _home(tmp_path, column))
    with caplog.at_level(logging.INFO, logger="datashare.source.extract"), pytest.raises(ContractError) as info:
        run_dataset(DATASET)
    message = str(info.value)
    assert f"{DATASET}:" in message and "column 'v'" in message and says in message, message
    assert "row with key id=2" in message and "Nothing was published" in message
    assert not info.value.retryable
    assert _store().versions(DATASET) == []
    if source.path == "fast":  # the fast reader met the value and handed the source to the plain path
        assert "reading through SQLAlchemy instead" in caplog.text


def test_a_hostile_value_leaves_the_previous_release_as_it_was(
    source: Source, project: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sql_type = {"sqlite": "DATETIME", "postgresql": "timestamp", "mariadb": "DATETIME"}[source.dialect]
    hostile = {"sqlite": "'2024-02-30 10:00:00'", "postgresql": "'infinity'", "mariadb": "'0000-00-00 00:00:00'"}
    _table(source, sql_type, [(1, "'2024-01-01 05:00:00'")])
    _use(project, monkeypatch, source, _home(tmp_path, DATETIME))
    first = run_dataset(DATASET)
    assert first["created"] and first["version"] == 1
    store = _store()
    before = store.release(DATASET, 1).files

    source.execute(f"INSERT INTO readings (id, v) VALUES (2, {hostile[source.dialect]})")
    with pytest.raises(ContractError, match=r"hostile_values: .*column 'v'"):
        run_dataset(DATASET)
    assert store.versions(DATASET) == [1]
    assert store.verify(DATASET, 1) == []
    assert store.release(DATASET, 1).files == before
    assert _published(1) == [{"id": 1, "v": datetime(2024, 1, 1, 5, 0)}]


QUARANTINED = {
    "sqlite": ("DATETIME", "'2024-02-30 10:00:00'", "'2024-02-30 10:00:00' is not a real timestamp"),
    "postgresql": ("timestamp", "'infinity'", "'infinity' is infinite"),
    "mariadb": ("DATETIME", "'0000-00-00 00:00:00'", "'0000-00-00 00:00:00' is not a real timestamp"),
}


def test_with_a_source_problems_column_the_row_is_quarantined_with_the_rule_and_the_value(
    source: Source, project: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sql_type, literal, says = QUARANTINED[source.dialect]
    rows = [(i, "'2024-01-01 05:00:00'") for i in range(1, 10)] + [(10, literal)]
    _table(source, sql_type, rows)
    _use(project, monkeypatch, source, _home(tmp_path, DATETIME, collect=True))

    result = run_dataset(DATASET)

    assert result["created"] and result["rows"] == 9
    published = _published(1)
    assert [r["id"] for r in published] == list(range(1, 10))
    assert all(r["problems"] is None for r in published)
    manifest = _store().release(DATASET, 1).manifest["datashare"]
    assert manifest["validation"]["quarantine"]["by_rule"] == {"expect_column_values_to_be_null:problems": 1}
    (rejected,) = (tmp_path / "releases" / "_quarantine" / DATASET).glob("*/rows.parquet")
    (row,) = pq.read_table(rejected).to_pylist()
    assert row["id"] == 10 and row["v"] is None  # the value the contract cannot hold is not invented
    assert row["_rules"] == "expect_column_values_to_be_null:problems"
    assert row["problems"].startswith("source: column 'v': ") and says in row["problems"]


# -- one time-zone convention per column -------------------------------------------------------------------


def _timestamps(source: Source) -> tuple[str, list[tuple[int, str]]]:
    """The same instant, 2024-01-01 00:00 UTC, as each source can hold it, and a naive Vietnam wall time."""
    if source.dialect == "postgresql":
        return "timestamptz", [
            (1, "'2024-01-01 00:00:00+00'"),
            (2, "'2024-01-01 07:00:00+07'"),
            (3, "'2024-01-01 02:00:00-05'"),
        ]
    return "TEXT", [
        (1, "'2024-01-01T00:00:00+00:00'"),
        (2, "'2024-01-01 07:00:00'"),
        (3, "'2024-01-01T02:00:00-05:00'"),
    ]


@pytest.mark.parametrize("publish", ["local", "utc"])
def test_every_value_of_a_timestamp_column_follows_its_declared_zone(
    source: Source, publish: str, project: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if source.dialect == "mariadb":
        pytest.skip("MariaDB has no timestamp type with an offset (its TIMESTAMP is read in the session's zone)")
    sql_type, rows = _timestamps(source)
    _table(source, sql_type, rows)
    column = {**DATETIME, "publish_time": publish} if source.dialect == "postgresql" else None
    if column is None:  # SQLite: text with and without offsets, read as a datetime
        column = {**DATETIME, "publish_time": publish}
    _use(project, monkeypatch, source, _home(tmp_path, column))

    run_dataset(DATASET)

    values = [r["v"] for r in _published(1)]
    if publish == "local":  # Vietnam wall time, whatever the offset the source wrote
        assert values == [datetime(2024, 1, 1, 7, 0), datetime(2024, 1, 1, 7, 0), datetime(2024, 1, 1, 14, 0)]
    else:
        assert values == [datetime(2024, 1, 1, 0, 0, tzinfo=UTC), datetime(2024, 1, 1, 0, 0, tzinfo=UTC),
                          datetime(2024, 1, 1, 7, 0, tzinfo=UTC)]  # fmt: skip


@pytest.mark.postgres
def test_a_timestamptz_cursor_reads_exactly_the_new_rows_whatever_the_server_zone(
    project: Callable[..., Path], postgres_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cursor is Vietnam wall time; a UTC session would read it as UTC and miss the row 7 hours later."""
    source = Source("postgresql", "plain", postgres_db)
    source.execute(f"ALTER DATABASE {sa.engine.make_url(postgres_db).database} SET TimeZone = 'UTC'")
    _table(source, "timestamptz", [(1, "'2024-01-01 00:00:00+00'")])
    _use(project, monkeypatch, source, _home(tmp_path, DATETIME, mode="incremental"))
    first = run_dataset(DATASET)
    assert _store().release(DATASET, 1).manifest["datashare"]["source_cursor"] == "2024-01-01T07:00:00"

    source.execute("INSERT INTO readings (id, v) VALUES (2, '2024-01-01 01:00:00+00')")
    second = run_dataset(DATASET)

    assert (first["version"], second["version"]) == (1, 2) and second["rows"] == 2
    assert [r["v"] for r in _published(2)] == [datetime(2024, 1, 1, 7, 0), datetime(2024, 1, 1, 8, 0)]
    assert not run_dataset(DATASET)["created"]  # and nothing is read twice


def test_sqlite_text_that_is_not_utf8_fails_naming_the_column(
    project: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The driver refuses the value before we see it; its error names the column, and the run says whose it is."""
    source = Source("sqlite", "plain", f"sqlite:///{tmp_path / 'unit.sqlite'}")
    _table(source, "TEXT", [(1, "'ok'"), (2, "CAST(x'48e0204e' AS TEXT)")])
    _use(project, monkeypatch, source, _home(tmp_path, {"type": "string"}))
    with pytest.raises(ContractError) as info:
        run_dataset(DATASET)
    message = str(info.value)
    assert message.startswith(f"{DATASET}: source text is not UTF-8") and "column 'v'" in message
    assert not info.value.retryable and _store().versions(DATASET) == []
