"""An auto-increment id as the cursor, crossing 999 -> 1500 across runs: compared as integers everywhere.

As text, ``max("999", "1500") == "999"``: the release after 1500 rows would have stored 999 and the
next run would have read rows 1000-1500 again. Runs on SQLite, PostgreSQL and MariaDB (both paths
each), in one range and in key ranges (``plan_ranges``, the ranges' cursors combined), and with a
decimal cursor on PostgreSQL's numeric.
"""

from __future__ import annotations

import json
from collections.abc import Callable
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

DATASET = "counted_rows"
CONN = "counted_source"
AUTO_INCREMENT = {
    "sqlite": "id INTEGER PRIMARY KEY AUTOINCREMENT",
    "postgresql": "id bigserial PRIMARY KEY",
    "mariadb": "id BIGINT AUTO_INCREMENT PRIMARY KEY",
}


def _home(tmp_path: Path, cursor: dict[str, Any], partitions: bool) -> Path:
    home = tmp_path / "home"
    (home / "dags" / "datasets").mkdir(parents=True)
    (home / "expectations").mkdir()
    spec = {
        "id": DATASET,
        "title": {"vi": "Dòng đếm", "en": "Counted rows"},
        "description": {"vi": "Khóa tự tăng làm con trỏ", "en": "An auto-increment key as the cursor"},
        "sector": "testing",
        "owner": "tests",
        "source": {
            "conn_id": CONN,
            "unit": "testing",
            "table": "readings",
            **({"partitions": {"column": "id", "count": 3}} if partitions else {}),
        },
        "mode": {"kind": "incremental", "cursor": cursor["name"]},
        "key": ["id"],
        "columns": [
            {"name": "id", "type": "integer", "nullable": False, "description": {"vi": "Mã", "en": "Id"}},
            {"name": "v", "type": "string", "description": {"vi": "Giá trị", "en": "Value"}},
            *([cursor] if cursor["name"] != "id" else []),
        ],
        "classification": {"sharing": "open", "importance": "other"},
        "schedule": None,
        "licence": "CC-BY-4.0",
    }
    (home / "dags" / "datasets" / f"{DATASET}.yaml").write_text(yaml.safe_dump(spec, allow_unicode=True))
    suite = {
        "name": DATASET,
        "expectations": [{"type": "expect_column_values_to_be_unique", "kwargs": {"column": "id"}}],
    }
    (home / "expectations" / f"{DATASET}.json").write_text(json.dumps(suite))
    return home


def _insert(url: str, first: int, last: int, extra: str = "") -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        columns = "v" + (", amount" if extra else "")
        values = ":v" + (", :amount" if extra else "")
        rows = [{"v": f"r{i}", "amount": f"{i}.5"} for i in range(first, last + 1)]
        conn.execute(sa.text(f"INSERT INTO readings ({columns}) VALUES ({values})"), rows)
    engine.dispose()


def _manifest(version: int) -> dict[str, Any]:
    return ReleaseStore.open(Settings.from_env().release_uri).release(DATASET, version).manifest["datashare"]


def _ids(version: int) -> list[int]:
    store = ReleaseStore.open(Settings.from_env().release_uri)
    release = store.release(DATASET, version)
    ids: list[int] = []
    for f in release.files:
        ids += pq.read_table(store.backend.local_path(f"{release.prefix}/{f['path']}"), columns=["id"])[
            "id"
        ].to_pylist()
    return sorted(ids)


SOURCES = [
    pytest.param("sqlite", "plain", id="sqlite"),
    pytest.param("postgresql", "plain", id="postgresql-plain", marks=pytest.mark.postgres),
    pytest.param("postgresql", "auto", id="postgresql-fast", marks=pytest.mark.postgres),
    pytest.param("mariadb", "plain", id="mariadb-plain", marks=pytest.mark.mariadb),
    pytest.param("mariadb", "auto", id="mariadb-fast", marks=pytest.mark.mariadb),
]


@pytest.mark.parametrize("partitions", [False, True], ids=["one-range", "key-ranges"])
@pytest.mark.parametrize(("dialect", "path"), SOURCES)
def test_an_auto_increment_cursor_crosses_999_to_1500(
    dialect: str,
    path: str,
    partitions: bool,
    request: pytest.FixtureRequest,
    project: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = {
        "sqlite": lambda: f"sqlite:///{tmp_path / 'unit.sqlite'}",
        "postgresql": lambda: request.getfixturevalue("postgres_db"),
        "mariadb": lambda: request.getfixturevalue("mariadb_db"),
    }[dialect]()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE readings ({AUTO_INCREMENT[dialect]}, v VARCHAR(20))"))
    engine.dispose()
    project(CONN, url)
    monkeypatch.setenv("DATASHARE_HOME", str(_home(tmp_path, {"name": "id"}, partitions)))
    monkeypatch.setenv("DATASHARE_EXTRACT_PATH", path)

    _insert(url, 1, 999)
    assert run_dataset(DATASET)["version"] == 1
    assert (_manifest(1)["source_cursor"], _manifest(1)["source_cursor_type"]) == ("999", {"type": "integer"})

    _insert(url, 1000, 1500)
    second = run_dataset(DATASET)
    assert second["version"] == 2 and second["rows"] == 1500
    assert _manifest(2)["source_cursor"] == "1500"  # as text, max("999", "1500") kept "999"
    assert _manifest(2)["stats"]["extracted_rows"] == 501  # only the rows past 999 were read

    again = run_dataset(DATASET)
    assert not again["created"] and again["reason"] == "no new rows past the cursor"

    _insert(url, 1501, 1501)
    third = run_dataset(DATASET)
    assert third["version"] == 3 and _manifest(3)["stats"]["extracted_rows"] == 1
    assert _ids(3) == list(range(1, 1502))


@pytest.mark.postgres
@pytest.mark.parametrize("path", ["plain", "auto"])
def test_a_decimal_cursor_compares_as_a_number(
    path: str, project: Callable[..., Path], postgres_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = sa.create_engine(postgres_db)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE readings (id bigserial PRIMARY KEY, v text, amount numeric(12, 1))"))
    engine.dispose()
    project(CONN, postgres_db)
    cursor = {
        "name": "amount",
        "type": "decimal",
        "precision": 12,
        "scale": 1,
        "description": {"vi": "Số", "en": "Amount"},
    }
    monkeypatch.setenv("DATASHARE_HOME", str(_home(tmp_path, cursor, partitions=False)))
    monkeypatch.setenv("DATASHARE_EXTRACT_PATH", path)
    _insert(postgres_db, 1, 9, extra="amount")
    run_dataset(DATASET)
    assert (_manifest(1)["source_cursor"], _manifest(1)["source_cursor_type"]) == ("9.5", {"type": "decimal"})
    _insert(postgres_db, 10, 12, extra="amount")
    second = run_dataset(DATASET)
    assert _manifest(2)["source_cursor"] == "12.5" and _manifest(2)["stats"]["extracted_rows"] == 3
    assert second["rows"] == 12


@pytest.mark.parametrize(
    ("sql_type", "values", "says"),
    [
        ("TEXT", ["'999'", "'1500'"], "the source's minimum is '1500', which is text, not an integer"),
        ("REAL", ["1.5", "2"], "the source's minimum is 1.5, which has a fraction"),
    ],
    ids=["text-compared-as-text", "fraction"],
)
def test_key_ranges_need_an_integer_partition_column(
    sql_type: str, values: list[str], says: str, project: Callable[..., Path], tmp_path: Path, monkeypatch
) -> None:
    """As text, min('999', '1500') is '1500': ranges planned on it would silently miss rows."""
    url = f"sqlite:///{tmp_path / 'unit.sqlite'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE readings (id {sql_type} PRIMARY KEY, v TEXT)"))
        for value in values:
            conn.execute(sa.text(f"INSERT INTO readings (id, v) VALUES ({value}, 'x')"))
    engine.dispose()
    project(CONN, url)
    monkeypatch.setenv("DATASHARE_HOME", str(_home(tmp_path, {"name": "id"}, partitions=True)))
    with pytest.raises(ContractError, match=rf"{DATASET}: partition column 'id' must hold integers .*{says}"):
        run_dataset(DATASET)
