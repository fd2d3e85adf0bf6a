"""The transform stage on tiny inline tables: NFC text, sensor sentinels, duplicate keys and the schema contract."""

from __future__ import annotations

import unicodedata
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datashare.exceptions import ContractError, TransformError
from datashare.pipeline.transform import drop_duplicate_keys, enforce_contract, transform
from datashare.source.typemap import arrow_schema
from datashare.spec import DatasetSpec, TransformStep, load_spec
from transforms.registry import TRANSFORMS, resolve
from transforms.text import nfc_text
from transforms.values import null_sentinel

REAL = Path(__file__).resolve().parents[2] / "dags" / "datasets" / "air_quality_hourly.yaml"
HANOI_NFC = unicodedata.normalize("NFC", "Hà Nội")
HANOI_NFD = unicodedata.normalize("NFD", "Hà Nội")
POLLUTANTS = ["pm25", "pm10", "no2", "so2", "co", "o3"]


@pytest.fixture(scope="module")
def spec() -> DatasetSpec:
    return load_spec(REAL)


def batch(**columns: list[Any]) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict(columns)


def test_the_two_spellings_differ() -> None:
    """The premise of nfc_text: both spellings look the same and compare different."""
    assert HANOI_NFC != HANOI_NFD
    assert len(HANOI_NFD) > len(HANOI_NFC)


# -- nfc_text -------------------------------------------------------------------------------


def test_nfc_text_normalises_every_string_column() -> None:
    raw = batch(name=[HANOI_NFD, None, "Huế"], code=["01", "02", "03"], value=[1.0, 2.0, 3.0])

    out = nfc_text(raw)

    assert out.column("name").to_pylist() == [HANOI_NFC, None, unicodedata.normalize("NFC", "Huế")]
    assert out.column("code").to_pylist() == ["01", "02", "03"]
    assert out.column("value").to_pylist() == [1.0, 2.0, 3.0]
    assert out.schema == raw.schema


def test_nfc_text_named_columns_only() -> None:
    raw = batch(name=[HANOI_NFD], note=[HANOI_NFD])

    out = nfc_text(raw, columns=["name"])

    assert out.column("name").to_pylist() == [HANOI_NFC]
    assert out.column("note").to_pylist() == [HANOI_NFD]


def test_nfc_text_large_strings_keep_their_type() -> None:
    raw = pa.RecordBatch.from_arrays([pa.array([HANOI_NFD], type=pa.large_string())], names=["name"])
    out = nfc_text(raw)
    assert out.column("name").type == pa.large_string()
    assert out.column("name").to_pylist() == [HANOI_NFC]


def test_nfc_text_names_a_missing_column() -> None:
    with pytest.raises(KeyError, match=r"nfc_text.*'ward'"):
        nfc_text(batch(name=["a"]), columns=["ward"])


# -- null_sentinel --------------------------------------------------------------------------


def test_null_sentinel_only_in_named_columns() -> None:
    raw = batch(pm25=[-9999.0, 12.5, None], pm10=[-9999.0, 3.0, 4.0], aqi=[-9999, 50, 60])

    out = null_sentinel(raw, columns=["pm25", "aqi"], value=-9999)

    assert out.column("pm25").to_pylist() == [None, 12.5, None]
    assert out.column("aqi").to_pylist() == [None, 50, 60]
    assert out.column("pm10").to_pylist() == [-9999.0, 3.0, 4.0]
    assert out.schema == raw.schema


def test_null_sentinel_names_a_missing_column() -> None:
    with pytest.raises(KeyError, match=r"null_sentinel.*'o3'"):
        null_sentinel(batch(pm25=[1.0]), columns=["pm25", "o3"])


# -- drop_duplicate_keys --------------------------------------------------------------------


def test_exact_and_conflicting_duplicates_are_counted_apart() -> None:
    raw = batch(
        code=["A", "A", "A", "B", "C", "C"],
        hour=[1, 1, 1, 1, 1, 2],
        pm25=[5.0, 5.0, 6.0, None, 7.0, 7.0],
        pm10=[None, None, None, 1.0, 1.0, 1.0],
    )

    kept, exact, conflicts = drop_duplicate_keys(raw, None, ["code", "hour"])

    assert kept.to_pydict() == {
        "code": ["A", "B", "C", "C"],
        "hour": [1, 1, 1, 2],
        "pm25": [5.0, None, 7.0, 7.0],
        "pm10": [None, 1.0, 1.0, 1.0],
    }
    assert (exact, conflicts) == (1, 1)


def test_duplicate_straddling_two_batches() -> None:
    first = batch(code=["A", "B"], hour=[1, 1], pm25=[1.0, 2.0])
    second = batch(code=["B", "B", "C"], hour=[1, 1, 1], pm25=[2.0, 9.0, 3.0])

    kept_first, *counts_first = drop_duplicate_keys(first, None, ["code", "hour"])
    kept_second, exact, conflicts = drop_duplicate_keys(second, first, ["code", "hour"])

    assert kept_first.num_rows == 2
    assert counts_first == [0, 0]
    assert kept_second.to_pydict() == {"code": ["C"], "hour": [1], "pm25": [3.0]}
    assert (exact, conflicts) == (1, 1)


def test_without_previous_batch_the_first_row_is_kept() -> None:
    second = batch(code=["B", "C"], hour=[1, 1], pm25=[2.0, 3.0])
    kept, exact, conflicts = drop_duplicate_keys(second, None, ["code", "hour"])
    assert kept.num_rows == 2
    assert (exact, conflicts) == (0, 0)


def test_null_keys_are_never_duplicates() -> None:
    raw = pa.RecordBatch.from_pydict({"code": pa.array([None, None], pa.string()), "hour": [1, 1], "pm25": [1.0, 1.0]})
    kept, exact, conflicts = drop_duplicate_keys(raw, None, ["code", "hour"])
    assert kept.num_rows == 2
    assert (exact, conflicts) == (0, 0)


# -- enforce_contract -----------------------------------------------------------------------


def contract(spec: DatasetSpec, **types: str) -> DatasetSpec:
    """The real spec cut down to ``types`` (name -> type), keyed on the first."""
    columns = [
        {"name": n, "type": t, "nullable": i > 0, "description": {"vi": n, "en": n}}
        for i, (n, t) in enumerate(types.items())
    ]
    data = spec.model_dump(mode="json", exclude_none=True) | {"columns": columns, "key": [next(iter(types))]}
    data["mode"] = {"kind": "snapshot"}
    data["freshness"] = {"max_age_hours": 48}
    data.pop("transforms", None)
    return DatasetSpec.model_validate(data)


def test_enforce_contract_selects_orders_and_casts(spec: DatasetSpec) -> None:
    ds = contract(spec, code="string", pm25="number")
    raw = batch(extra=[True], pm25=[12], code=["A"])

    out = enforce_contract(raw, ds)

    assert out.schema == arrow_schema(ds)
    assert out.to_pydict() == {"code": ["A"], "pm25": [12.0]}


def test_enforce_contract_names_a_missing_column(spec: DatasetSpec) -> None:
    ds = contract(spec, code="string", pm25="number")
    with pytest.raises(ContractError, match=rf"{ds.id}: column 'pm25' of the contract is missing"):
        enforce_contract(batch(code=["A"]), ds)


def test_enforce_contract_names_a_column_that_cannot_be_cast(spec: DatasetSpec) -> None:
    ds = contract(spec, code="string", pm25="number")
    with pytest.raises(ContractError, match=r"column 'pm25' has type string, the contract says double") as info:
        enforce_contract(batch(code=["A", "B"], pm25=["12.5", "abc"]), ds)
    assert "'12.5' is text, not a number" in str(info.value)


@pytest.mark.parametrize(
    ("kind", "values", "bad"),
    [
        ("integer", [12.0, 12.5], "12.5 has a fraction"),
        ("integer", [1.0, 1e19], "1e+19 is beyond the 64-bit integer range"),
        ("number", [1.0, float("nan")], "nan is NaN"),
        ("number", [1.0, float("-inf")], "-inf is infinite"),
        ("number", pa.array([1, 2**53 + 1], pa.int64()), "9007199254740993 has more digits than a double holds"),
    ],
)
def test_enforce_contract_refuses_a_lossy_cast_naming_dataset_column_and_value(
    spec: DatasetSpec, kind: str, values: Any, bad: str
) -> None:
    ds = contract(spec, code="string", aqi=kind)
    with pytest.raises(ContractError) as info:
        enforce_contract(batch(code=["A", "B"], aqi=values), ds)
    message = str(info.value)
    assert ds.id in message and "column 'aqi'" in message and bad in message and "code='B'" in message


def test_enforce_contract_records_problems_where_the_suite_quarantines_them(
    spec: DatasetSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    data = contract(spec, code="string", aqi="integer").model_dump(mode="json", exclude_none=True)
    problems = {"name": "problems", "type": "string", "computed": True, "source_problems": True}
    data["columns"].append({**problems, "description": {"vi": "Lỗi", "en": "Problems"}})
    ds = DatasetSpec.model_validate(data)
    raw = batch(code=["A", "B", "C"], aqi=[1.0, 2.5, None], problems=[None, None, "parse: earlier"])
    (tmp_path / "expectations").mkdir()
    monkeypatch.setenv("DATASHARE_HOME", str(tmp_path))
    with pytest.raises(ContractError, match="the suite has no rule expect_column_values_to_be_null on 'problems'"):
        enforce_contract(raw, ds)
    rule = {"type": "expect_column_values_to_be_null", "kwargs": {"column": "problems"}}
    (tmp_path / "expectations" / f"{ds.id}.json").write_text(json.dumps({"expectations": [rule]}))

    out = enforce_contract(raw, ds).to_pydict()

    assert out["aqi"] == [1, None, None]
    assert out["problems"] == [
        None,
        "contract: column 'aqi': 2.5 has a fraction: an integer column cannot hold it",
        "parse: earlier",
    ]


# -- the whole stage ------------------------------------------------------------------------


def raw_row(code: str, hour: int, *, name: str = "Trạm", pm25: float = 10.0, aqi: int = 40) -> dict[str, Any]:
    return {
        "station_code": code,
        "station_name": name,
        "province_code": "01",
        "observed_at": datetime(2025, 3, 1, hour),
        "pm25": pm25,
        "pm10": 20.0,
        "no2": 30.0,
        "so2": -9999.0,
        "co": 1000.0,
        "o3": 50.0,
        "aqi": aqi,
    }


def write_raw(path: Path, rows: list[dict[str, Any]]) -> Path:
    """Raw extraction as a source would type it: aqi as int32, numbers as doubles."""
    table = pa.Table.from_pylist(rows)
    table = table.set_column(table.schema.get_field_index("aqi"), "aqi", table.column("aqi").cast(pa.int32()))
    pq.write_table(table, path)
    return path


def test_transform_air_quality_hourly(tmp_path: Path, spec: DatasetSpec) -> None:
    rows = [
        raw_row("HN01", 1, name=HANOI_NFD, pm25=-9999.0),
        raw_row("HN01", 2, name=HANOI_NFD),
        raw_row("HN01", 2, name=HANOI_NFD),  # exact duplicate
        raw_row("HN01", 3, name=HANOI_NFD),
        raw_row("HN01", 3, name=HANOI_NFD, pm25=99.0),  # same key, other values: dropped and counted
        raw_row("HUE1", 1, name="Huế", aqi=-9999),  # aqi is not a sentinel column: kept as is
    ]
    source = write_raw(tmp_path / "raw.parquet", rows)

    result = transform(spec, source, tmp_path / "out" / "clean.parquet")

    assert (result.rows, result.duplicates_dropped, result.conflicts_dropped) == (4, 1, 1)
    out = pq.read_table(result.path)
    assert out.schema.equals(arrow_schema(spec))
    assert out.num_rows == 4
    assert out.column("station_name").to_pylist() == [HANOI_NFC] * 3 + [unicodedata.normalize("NFC", "Huế")]
    assert all(unicodedata.is_normalized("NFC", v) for v in out.column("station_name").to_pylist())
    assert out.column("station_code").to_pylist() == ["HN01", "HN01", "HN01", "HUE1"]
    assert [t.hour for t in out.column("observed_at").to_pylist()] == [1, 2, 3, 1]
    assert out.column("pm25").to_pylist() == [None, 10.0, 10.0, 10.0]
    assert out.column("so2").to_pylist() == [None] * 4
    assert out.column("aqi").to_pylist() == [40, 40, 40, -9999]
    assert out.column("aqi").type == pa.int64()


def test_transform_drops_a_duplicate_across_read_batches(tmp_path: Path, spec: DatasetSpec) -> None:
    small = spec.model_copy(update={"source": spec.source.model_copy(update={"batch_rows": 1000})})
    rows = [raw_row(f"S{i:04d}", 1) for i in range(1000)]
    rows.append(dict(rows[-1]))  # row 1001 is the first row of the second batch
    source = write_raw(tmp_path / "raw.parquet", rows)

    result = transform(small, source, tmp_path / "clean.parquet")

    assert (result.rows, result.duplicates_dropped, result.conflicts_dropped) == (1000, 1, 0)
    assert pq.read_metadata(result.path).num_rows == 1000


def test_unknown_transform_is_refused_at_load_and_named_at_run(tmp_path: Path, spec: DatasetSpec) -> None:
    with pytest.raises(ValueError, match="unknown transform 'no_such_transform'"):
        TransformStep(name="no_such_transform")  # a spec naming it does not load
    # A registry changed after the spec was loaded is still caught at run time, naming the transform.
    bad = spec.model_copy(
        update={"transforms": [*spec.transforms, TransformStep.model_construct(name="no_such_transform", args={})]}
    )
    source = write_raw(tmp_path / "raw.parquet", [raw_row("HN01", 1)])

    with pytest.raises(TransformError, match="air_quality_hourly: unknown transform 'no_such_transform'"):
        transform(bad, source, tmp_path / "clean.parquet")
    assert not (tmp_path / "clean.parquet").exists()


def test_failing_transform_is_named_with_its_column(tmp_path: Path, spec: DatasetSpec) -> None:
    bad = spec.model_copy(
        update={"transforms": [TransformStep(name="null_sentinel", args={"columns": ["pm2_5"], "value": -9999})]}
    )
    source = write_raw(tmp_path / "raw.parquet", [raw_row("HN01", 1)])

    with pytest.raises(TransformError, match=r"transform 'null_sentinel' failed: .*'pm2_5'"):
        transform(bad, source, tmp_path / "clean.parquet")


def test_transform_names_a_column_missing_from_the_source(tmp_path: Path, spec: DatasetSpec) -> None:
    row = raw_row("HN01", 1)
    del row["province_code"]
    source = write_raw(tmp_path / "raw.parquet", [row])

    with pytest.raises(ContractError, match="'province_code'"):
        transform(spec, source, tmp_path / "clean.parquet")


def test_registry_names_resolve() -> None:
    for name in TRANSFORMS:
        assert callable(resolve(name))
    with pytest.raises(KeyError, match="unknown transform 'nope'; known: "):
        resolve("nope")
