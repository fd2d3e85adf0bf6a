"""Administrative codes resolved by date and mapped to the post-2025 units, on tiny inline tables."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path

import pyarrow as pa
import pytest

from transforms.admin_codes import BUNDLED, load_reference, pre_2025_province_codes, resolve_admin_code
from transforms.registry import resolve

# The 63 pre-2025 province codes, as listed in issue 3.
_ISSUE_LIST = """
01 02 04 06 08 10 11 12 14 15 17 19 20 22 24 25 26 27 30 31 33 34 35 36 37 38 40 42 44 45 46 48
49 51 52 54 56 58 60 62 64 66 67 68 70 72 74 75 77 79 80 82 83 84 86 87 89 91 92 93 94 95 96
"""
OLD_CODES = _ISSUE_LIST.split()

SMALL = {
    "units": [
        {"code": "15", "name": "Yên Bái", "level": "province", "valid_from": None, "valid_to": "2025-06-30"},
        {"code": "10", "name": "Old Lào Cai", "level": "province", "valid_from": None, "valid_to": "2025-06-30"},
        {
            "code": "15",
            "name": "Lào Cai",
            "level": "province",
            "valid_from": "2025-07-01",
            "valid_to": None,
            "confirmed": True,
        },
        {"code": "99", "name": "Gone", "level": "province", "valid_from": "2000-01-01", "valid_to": "2010-12-31"},
    ],
    "successors": [
        {"old": "15", "new": "15", "level": "province", "confirmed": True},
        {"old": "10", "new": "15", "level": "province", "confirmed": False},
    ],
}


def records(codes: list[str | None], days: list[date | None]) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict({"province": pa.array(codes, pa.string()), "day": pa.array(days, pa.date32())})


# -- the bundled reference ------------------------------------------------------------------------


def test_bundled_reference_has_the_63_old_and_34_new_provinces() -> None:
    data = json.loads(BUNDLED.read_text(encoding="utf-8"))
    provinces = [u for u in data["units"] if u["level"] == "province"]
    old = [u for u in provinces if u["valid_to"] == "2025-06-30"]
    new = [u for u in provinces if u["valid_from"] == "2025-07-01"]

    assert sorted(u["code"] for u in old) == OLD_CODES
    assert sorted(pre_2025_province_codes()) == OLD_CODES
    assert len(new) == 34 and all(len(u["code"]) == 2 for u in new)
    assert {u["code"]: u["name"] for u in old}["15"] == "Tỉnh Yên Bái"
    assert {u["code"]: u["name"] for u in new}["15"] == "Tỉnh Lào Cai"


def test_only_domain_facts_are_confirmed() -> None:
    data = json.loads(BUNDLED.read_text(encoding="utf-8"))
    confirmed_new = {u["code"] for u in data["units"] if u["valid_from"] == "2025-07-01" and u["confirmed"]}
    confirmed_maps = {(s["old"], s["new"]) for s in data["successors"] if s["confirmed"]}

    assert confirmed_new == {"15", "37", "13285", "13669"}
    assert confirmed_maps == {("15", "15"), ("37", "37")}
    assert all(s.get("comment") for s in data["successors"] if not s["confirmed"])
    assert {s["old"] for s in data["successors"] if s["level"] == "province"} == set(OLD_CODES)
    assert "PLACEHOLDER" in data["commune_list"]


# -- resolve_admin_code ---------------------------------------------------------------------------


def test_codes_resolve_by_date_and_map_to_post_2025() -> None:
    raw = records(
        ["15", "15", "37", "35", "13285", None],
        [date(2024, 5, 1), date(2025, 8, 1), date(2020, 1, 1), date(2025, 6, 30), date(2025, 9, 1), date(2025, 1, 1)],
    )

    out = resolve_admin_code(
        raw, column="province", date_column="day", new_column="province_2025", confirmed_column="sure"
    )

    assert out.column("province_2025").to_pylist() == ["15", "15", "37", "37", "13285", None]
    assert out.column("sure").to_pylist() == [True, True, True, False, True, None]
    assert out.schema.names == ["province", "day", "province_2025", "sure"]


def test_confirmed_only_leaves_unconfirmed_mappings_null() -> None:
    raw = records(["15", "35", "01"], [date(2024, 5, 1), date(2024, 5, 1), date(2024, 5, 1)])

    out = resolve_admin_code(raw, column="province", date_column="day", new_column="new", confirmed_only=True)

    assert out.column("new").to_pylist() == ["15", None, None]


def test_code_that_never_existed_names_row_code_and_date() -> None:
    raw = records(["01", "03"], [date(2024, 1, 1), date(2024, 2, 3)])

    with pytest.raises(ValueError) as err:
        resolve_admin_code(raw, column="province", date_column="day", new_column="new")

    assert str(err.value).startswith(
        "resolve_admin_code: column 'province', row 1: code '03' (dated 2024-02-03) never existed"
    )


def test_code_valid_at_another_time_is_an_error_unless_allowed() -> None:
    """Old Lào Cai's 10 was retired on 1 July 2025: a record dated after that is suspect."""
    raw = records(["10"], [date(2025, 8, 1)])

    with pytest.raises(ValueError, match=r"row 0: code '10' was not in use on 2025-08-01 \(in use: Old"):
        resolve_admin_code(raw, column="province", date_column="day", new_column="new", reference=SMALL)
    out = resolve_admin_code(
        raw, column="province", date_column="day", new_column="new", reference=SMALL, allow_other_period=True
    )
    assert out.column("new").to_pylist() == ["15"]


def test_code_reused_after_2025_resolves_to_the_unit_of_the_date() -> None:
    """15 is Yên Bái in 2024 and Lào Cai in 2025; 99 only existed 2000-2010."""
    raw = records(["15", "15"], [date(2024, 1, 1), date(2026, 1, 1)])
    out = resolve_admin_code(raw, column="province", date_column="day", new_column="new", reference=SMALL)
    assert out.column("new").to_pylist() == ["15", "15"]

    with pytest.raises(
        ValueError, match=r"code '99' was not in use on 2024-01-01 \(in use: Gone 2000-01-01 to 2010-12-31\)"
    ):
        resolve_admin_code(
            records(["99"], [date(2024, 1, 1)]), column="province", date_column="day", new_column="new", reference=SMALL
        )


def test_timestamps_are_accepted_and_missing_dates_are_errors() -> None:
    raw = pa.RecordBatch.from_pydict({"province": ["15"], "day": [datetime(2025, 7, 1, 8, 30)]})
    out = resolve_admin_code(raw, column="province", date_column="day", new_column="new", reference=SMALL)
    assert out.column("new").to_pylist() == ["15"]

    with pytest.raises(ValueError, match=r"row 1: code '15' has no date in 'day'"):
        resolve_admin_code(
            records(["15", "15"], [date(2024, 1, 1), None]),
            column="province",
            date_column="day",
            new_column="new",
            reference=SMALL,
        )


def test_reference_from_a_csv_file(tmp_path: Path) -> None:
    path = tmp_path / "units.csv"
    path.write_text(
        "code,name,level,valid_from,valid_to,confirmed,successor,successor_confirmed\n"
        "15,Yên Bái,province,,2025-06-30,true,15,true\n"
        "15,Lào Cai,province,2025-07-01,,true,,\n",
        encoding="utf-8",
    )
    raw = records(["15", "15"], [date(2024, 1, 1), date(2025, 7, 2)])

    out = resolve_admin_code(raw, column="province", date_column="day", new_column="new", reference=str(path))

    assert out.column("new").to_pylist() == ["15", "15"]
    with pytest.raises(ValueError, match="never existed"):
        resolve_admin_code(
            records(["01"], [date(2024, 1, 1)]),
            column="province",
            date_column="day",
            new_column="new",
            reference=str(path),
        )


def test_bad_inputs_are_named() -> None:
    with pytest.raises(TypeError, match=r"'day'.*parse_date_dmy"):
        resolve_admin_code(
            pa.RecordBatch.from_pydict({"province": ["15"], "day": ["01/01/2024"]}),
            column="province",
            date_column="day",
            new_column="new",
        )
    with pytest.raises(TypeError, match="codes must be text"):
        resolve_admin_code(
            pa.RecordBatch.from_pydict({"province": [15], "day": [date(2024, 1, 1)]}),
            column="province",
            date_column="day",
            new_column="new",
        )
    with pytest.raises(ValueError, match=r"reference 'no-such\.json' not found"):
        load_reference("no-such.json")
    assert load_reference("admin_units.json") == load_reference()  # relative to transforms/data/
    with pytest.raises(ValueError, match="overlapping periods"):
        load_reference({"units": [SMALL["units"][0], {**SMALL["units"][0], "name": "Twin"}]})


def test_registered() -> None:
    assert resolve("resolve_admin_code") is resolve_admin_code


# -- inside the transform stage -------------------------------------------------------------------


def _stage_source(tmp_path: Path, province: str) -> Path:
    import pyarrow.parquet as pq

    row = {
        "station_code": "HN01",
        "station_name": "Trạm",
        "province_code": province,
        "observed_at": datetime(2025, 3, 1, 1),
        "pm25": 10.0,
        "pm10": 20.0,
        "no2": 30.0,
        "so2": 1.0,
        "co": 1000.0,
        "o3": 50.0,
        "aqi": 40,
    }
    path = tmp_path / "raw.parquet"
    pq.write_table(pa.Table.from_pylist([row]), path)
    return path


def test_the_stage_runs_it_and_names_it_when_it_fails(tmp_path: Path) -> None:
    """A bad code stops the run with TransformError naming the transform, the row and the code."""
    from datashare.exceptions import TransformError
    from datashare.pipeline.transform import transform
    from datashare.spec import TransformStep, load_spec

    spec = load_spec(Path(__file__).resolve().parents[2] / "dags" / "datasets" / "air_quality_hourly.yaml")
    step = TransformStep(
        name="resolve_admin_code",
        args={"column": "province_code", "date_column": "observed_at", "new_column": "province_2025"},
    )
    spec = spec.model_copy(update={"transforms": [*spec.transforms, step]})

    result = transform(spec, _stage_source(tmp_path, "01"), tmp_path / "ok.parquet")
    assert result.rows == 1

    with pytest.raises(TransformError, match=r"transform 'resolve_admin_code' failed: .*row 0: code '03'"):
        transform(spec, _stage_source(tmp_path, "03"), tmp_path / "bad.parquet")
