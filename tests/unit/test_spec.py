"""Dataset specs: the real spec loads; every bad spec fails with a SpecError naming the file and the field."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from datashare.exceptions import SpecError
from datashare.spec import DatasetSpec, load_spec, load_specs

REAL = Path(__file__).resolve().parents[2] / "dags" / "datasets" / "air_quality_hourly.yaml"
SPEC_ID = "air_quality_hourly"


@pytest.fixture(scope="module")
def real_data() -> dict[str, Any]:
    return yaml.safe_load(REAL.read_text(encoding="utf-8"))


def write_spec(folder: Path, data: Any, name: str | None = None) -> Path:
    """Dump a spec document to ``<folder>/<name or id>.yaml``."""
    stem = name or (data.get("id") if isinstance(data, dict) else None) or SPEC_ID
    path = folder / f"{stem}.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def column(data: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in data["columns"] if c["name"] == name)


def test_real_spec_loads() -> None:
    spec = load_spec(REAL)
    assert isinstance(spec, DatasetSpec)
    assert spec.id == SPEC_ID
    assert spec.key == ["station_code", "observed_at"]
    assert spec.mode.kind == "incremental"
    assert spec.mode.cursor == "observed_at"
    assert [t.name for t in spec.transforms] == ["nfc_text", "null_sentinel"]
    assert spec.pool == "unit_monitoring"
    assert spec.suite_name == SPEC_ID


def test_round_trip_through_yaml_dump_still_loads(tmp_path: Path, real_data: dict[str, Any]) -> None:
    """The mutation tests below rely on dump(load(real)) being valid: check it once."""
    assert load_spec(write_spec(tmp_path, real_data)) == load_spec(REAL)


def _set(*path: str | int, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(data: dict[str, Any]) -> None:
        node: Any = data
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = value

    return mutate


def _pop(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda data: data.pop(key)


def _rename_schedule(data: dict[str, Any]) -> None:
    data["scheduel"] = data.pop("schedule")


def _nulable(data: dict[str, Any]) -> None:
    column(data, "station_code")["nulable"] = False


def _no_cursor(data: dict[str, Any]) -> None:
    del data["mode"]["cursor"]


def _key_nullable(data: dict[str, Any]) -> None:
    column(data, "station_code")["nullable"] = True


def _keep_personal(data: dict[str, Any]) -> None:
    column(data, "station_name")["personal_data"] = "keep"


def _table_and_query(data: dict[str, Any]) -> None:
    data["source"]["table"] = "air_observations"


BAD = {
    "unknown_top_level_field": (_rename_schedule, ["scheduel", "unknown field"]),
    "unknown_nested_field": (_nulable, ["columns.station_code.nulable", "unknown field"]),
    "wrong_type": (_set("retention", "sql_versions", value="three"), ["retention.sql_versions", "integer"]),
    "missing_required": (_pop("licence"), ["licence", "required field is missing"]),
    "incremental_without_cursor": (_no_cursor, ["mode", "cursor"]),
    "cursor_not_in_columns": (_set("mode", "cursor", value="updated_at"), ["mode.cursor", "updated_at"]),
    "key_not_in_columns": (_set("key", value=["station_code", "hour"]), ["key", "'hour'"]),
    "key_nullable": (_key_nullable, ["key", "'station_code'", "nullable: false"]),
    "open_core": (_set("classification", "importance", value="core"), ["classification", "core"]),
    "restricted_without_recipients": (_set("classification", "sharing", value="restricted"), ["recipients"]),
    "keep_on_open": (_keep_personal, ["columns.station_name.personal_data", "keep"]),
    "two_statements": (
        _set("source", "query", value="SELECT * FROM stations; DROP TABLE stations"),
        ["source", "single statement"],
    ),
    "table_and_query": (_table_and_query, ["source", "exactly one of 'table' or 'query'"]),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_spec_names_file_and_field(case: str, tmp_path: Path, real_data: dict[str, Any]) -> None:
    mutate, expected = BAD[case]
    data = copy.deepcopy(real_data)
    mutate(data)
    path = write_spec(tmp_path, data)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    message = str(info.value)
    assert str(path) in message
    for part in expected:
        assert part in message, f"{part!r} not in {message!r}"


@pytest.mark.parametrize("hostile", ["x; drop table y", "../etc"])
def test_hostile_id_is_refused(hostile: str, tmp_path: Path, real_data: dict[str, Any]) -> None:
    data = copy.deepcopy(real_data)
    data["id"] = hostile
    # The file is named safely: a '../etc' file name would escape tmp_path.
    path = write_spec(tmp_path, data, name="hostile")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    message = str(info.value)
    assert str(path) in message
    assert "- id:" in message
    assert "pattern" in message


def test_hostile_id_in_its_own_file_name_is_refused(tmp_path: Path, real_data: dict[str, Any]) -> None:
    data = copy.deepcopy(real_data)
    data["id"] = "x; drop table y"
    path = write_spec(tmp_path, data)  # a legal file name on POSIX
    assert path.name == "x; drop table y.yaml"
    with pytest.raises(SpecError, match=r"- id:") as info:
        load_spec(path)
    assert str(path) in str(info.value)


def test_id_must_equal_file_name(tmp_path: Path, real_data: dict[str, Any]) -> None:
    path = write_spec(tmp_path, real_data, name="other_name")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    message = str(info.value)
    assert str(path) in message
    assert "id:" in message
    assert "'other_name'" in message
    assert f"'{SPEC_ID}'" in message


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / f"{SPEC_ID}.yaml"
    path.write_text(f"id: {SPEC_ID}\ntitle: {{vi: a, en: b\nowner: x\n", encoding="utf-8")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    message = str(info.value)
    assert str(path) in message
    assert "not valid YAML" in message
    assert "line" in message


def test_top_level_list_is_refused(tmp_path: Path, real_data: dict[str, Any]) -> None:
    path = write_spec(tmp_path, [real_data], name=SPEC_ID)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    message = str(info.value)
    assert str(path) in message
    assert "top level" in message
    assert "list" in message


def test_unreadable_file_names_it(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    with pytest.raises(SpecError, match="cannot read spec") as info:
        load_spec(path)
    assert str(path) in str(info.value)


def test_load_specs_keeps_good_specs_and_returns_bad_ones(tmp_path: Path, real_data: dict[str, Any]) -> None:
    good = write_spec(tmp_path, real_data)
    bad_data = copy.deepcopy(real_data)
    bad_data["id"] = "broken_one"
    del bad_data["licence"]
    bad = write_spec(tmp_path, bad_data)
    (tmp_path / "notes.txt").write_text("not a spec", encoding="utf-8")

    specs, errors = load_specs(tmp_path)

    assert list(specs) == [SPEC_ID]
    assert specs[SPEC_ID] == load_spec(good)
    assert list(errors) == [bad]
    assert isinstance(errors[bad], SpecError)
    assert str(bad) in str(errors[bad])
    assert "licence" in str(errors[bad])


def test_loaded_spec_is_immutable() -> None:
    spec = load_spec(REAL)
    with pytest.raises(ValueError, match="frozen"):
        spec.id = "other"  # type: ignore[misc]


# -- dialect queries and computed columns -------------------------------------------------------------


def _dialect_queries(**queries: str) -> Callable[[dict[str, Any]], None]:
    def mutate(data: dict[str, Any]) -> None:
        data["source"].pop("query")
        data["source"]["dialect_queries"] = queries

    return mutate


def _computed(name: str, **extra: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(data: dict[str, Any]) -> None:
        column(data, name).update(computed=True, **extra)

    return mutate


MORE_BAD = {
    "dialect_missing_without_default": (
        _dialect_queries(sqlite="SELECT 1 AS a", postgresql="SELECT 1 AS a"),
        ["source", "dialect_queries", "['mysql']", "no default 'query'"],
    ),
    "unknown_dialect": (_dialect_queries(oracle="SELECT 1 AS a"), ["source.dialect_queries", "oracle"]),
    "dialect_query_not_select": (
        _dialect_queries(sqlite="DELETE FROM x", mysql="SELECT 1", postgresql="SELECT 1"),
        ["'dialect_queries.sqlite' must be a single SELECT"],
    ),
    "computed_key": (_computed("station_code"), ["columns.station_code.computed", "key and cursor"]),
    "computed_with_source_type": (_computed("aqi", source_type="string"), ["columns.aqi", "source_type"]),
}


@pytest.mark.parametrize("case", sorted(MORE_BAD))
def test_bad_dialect_queries_and_computed_columns_name_the_field(
    case: str, tmp_path: Path, real_data: dict[str, Any]
) -> None:
    mutate, expected = MORE_BAD[case]
    data = copy.deepcopy(real_data)
    mutate(data)
    path = write_spec(tmp_path, data)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    message = str(info.value)
    assert str(path) in message
    for part in expected:
        assert part in message, f"{part!r} not in {message!r}"


def test_dialect_queries_pick_the_database_and_fall_back_to_query(tmp_path: Path, real_data: dict[str, Any]) -> None:
    data = copy.deepcopy(real_data)
    data["source"]["dialect_queries"] = {"sqlite": "SELECT 'sqlite' AS station_code"}
    spec = load_spec(write_spec(tmp_path, data))
    assert spec.source.query_for("sqlite") == "SELECT 'sqlite' AS station_code"
    assert spec.source.query_for("postgresql") == spec.source.query == real_data["source"]["query"]
    full = copy.deepcopy(real_data)
    _dialect_queries(sqlite="SELECT 1", mysql="SELECT 2", postgresql="SELECT 3")(full)
    spec = load_spec(write_spec(tmp_path, full))
    assert [spec.source.query_for(d) for d in ("sqlite", "mysql", "mariadb", "postgresql")] == [
        "SELECT 1",
        "SELECT 2",
        "SELECT 2",  # MariaDB speaks the mysql dialect
        "SELECT 3",
    ]


def test_computed_columns_are_not_read_from_the_source(tmp_path: Path, real_data: dict[str, Any]) -> None:
    data = copy.deepcopy(real_data)
    _computed("aqi")(data)
    spec = load_spec(write_spec(tmp_path, data))
    assert "aqi" in [c.name for c in spec.columns]
    assert "aqi" not in [c.name for c in spec.source_view().columns]
    assert load_spec(REAL).source_view() == load_spec(REAL)
