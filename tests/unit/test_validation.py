"""Validation of staged Parquet with Great Expectations, and the bilingual report.

Importing GX takes seconds, so GX runs share module-scoped fixtures and the cases stay few.
Run ``python tests/unit/test_validation.py`` to regenerate ``expectations/air_quality_hourly.json``
from GX's own classes; ``test_suite_file_is_generated`` keeps the file and the code in step.
"""

from __future__ import annotations

import json
import os
import re
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datashare.exceptions import ContractError, DatashareError, SuiteError
from datashare.quality.validation import describe_rule, load_suite, render_rules_text, validate_parquet

ROOT = Path(__file__).resolve().parents[2]
SUITE = ROOT / "expectations" / "air_quality_hourly.json"
# The 63 provinces of the 2004 code list (Decision 124/2004/QĐ-TTg), valid until the 2025 merger.
PROVINCES_2004 = [
    "01", "02", "04", "06", "08", "10", "11", "12", "14", "15", "17", "19", "20", "22", "24", "25",
    "26", "27", "30", "31", "33", "34", "35", "36", "37", "38", "40", "42", "44", "45", "46", "48",
    "49", "51", "52", "54", "56", "58", "60", "62", "64", "66", "67", "68", "70", "72", "74", "75",
    "77", "79", "80", "82", "83", "84", "86", "87", "89", "91", "92", "93", "94", "95", "96",
]  # fmt: skip
HOSTILE = "<script>alert(1)</script>"
SCHEMA = pa.schema(
    [
        ("station_code", pa.string()),
        ("station_name", pa.string()),
        ("province_code", pa.string()),
        ("observed_at", pa.timestamp("us")),
        *[(p, pa.float64()) for p in ("pm25", "pm10", "no2", "so2", "co", "o3")],
        ("aqi", pa.int64()),
    ]
)
BETWEEN = "expect_column_values_to_be_between"
PARAMETERS = {"freshness_min": datetime(2025, 2, 1)}
"""The rows below are from March 2025: fresh enough against this bound."""


def suite_json() -> str:
    """The suite file's text, built from GX's classes (the file is this function's output)."""
    os.environ["GX_ANALYTICS_ENABLED"] = "false"
    import great_expectations as gx
    import great_expectations.expectations as gxe

    ranges = {"pm25": 1000, "pm10": 2000, "no2": 5000, "so2": 5000, "co": 150000, "o3": 2000, "aqi": 500}
    suite = gx.ExpectationSuite(
        name="air_quality_hourly",
        expectations=[
            gxe.ExpectTableRowCountToBeBetween(min_value=1),
            gxe.ExpectColumnValuesToNotBeNull(column="station_code"),
            # [0-9], not \d: Python's \d also accepts Arabic-Indic and other Unicode digits.
            gxe.ExpectColumnValuesToMatchRegex(column="station_code", regex=r"^AQ[0-9]{5}$"),
            gxe.ExpectColumnValuesToNotBeNull(column="observed_at"),
            gxe.ExpectCompoundColumnsToBeUnique(column_list=["station_code", "observed_at"]),
            gxe.ExpectColumnValuesToBeInSet(column="province_code", value_set=PROVINCES_2004),
            *[gxe.ExpectColumnValuesToBeBetween(column=c, min_value=0, max_value=hi) for c, hi in ranges.items()],
            # Freshness: the newest hour no older than the spec allows; the pipeline computes freshness_min per run.
            gxe.ExpectColumnMaxToBeBetween(column="observed_at", min_value={"$PARAMETER": "freshness_min"}),
        ],
    )
    return json.dumps(suite.to_json_dict(), sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def good_rows(n: int = 4) -> list[dict]:
    """Valid hourly rows of two stations; some pollutants and one province missing, as sensors do."""
    rows = []
    for i in range(n):
        rows.append(
            {
                "station_code": f"AQ0000{i % 2 + 1}",
                "station_name": "Trạm Hoàn Kiếm" if i % 2 == 0 else "Trạm Quận 1",
                "province_code": ("01" if i % 2 == 0 else "79") if i != 3 else None,
                "observed_at": datetime(2025, 3, 1, i // 2),
                "pm25": 35.5 if i else None,
                "pm10": 60.0,
                "no2": 40.2,
                "so2": 12.0,
                "co": 900.0,
                "o3": None if i == 2 else 80.0,
                "aqi": 87 if i else None,
            }
        )
    return rows


def write(folder: Path, rows: list[dict], name: str = "part-0.parquet") -> Path:
    """Write rows as a staged Parquet file with the dataset's schema."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), path)
    return path


def run(folder: Path, rows: list[dict], **kwargs):
    """Validate rows in a fresh folder against the real suite."""
    kwargs.setdefault("dataset_id", "air_quality_hourly")
    kwargs.setdefault("run_id", "run-1")
    kwargs.setdefault("parameters", PARAMETERS)
    return validate_parquet([write(folder / "in", rows)], SUITE, out_dir=folder / "out", **kwargs)


@pytest.fixture(scope="module")
def passing(tmp_path_factory):
    rows = good_rows(4)
    # Two files, to prove they are read as one table.
    folder = tmp_path_factory.mktemp("passing")
    paths = [write(folder / "in", rows[:2], "part-0.parquet"), write(folder / "in", rows[2:], "part-1.parquet")]
    return validate_parquet(
        paths,
        SUITE,
        dataset_id="air_quality_hourly",
        run_id="run-pass",
        out_dir=folder / "out",
        title_vi="Quan trắc không khí theo giờ",
        title_en="Hourly air quality",
        parameters=PARAMETERS,
    )


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    rows = good_rows(4)
    rows[0]["station_code"] = HOSTILE
    rows[1]["station_name"] = HOSTILE
    folder = tmp_path_factory.mktemp("hostile")
    return run(folder, rows, run_id=f"run-{HOSTILE}", title_vi=HOSTILE, title_en="<b>bold</b>")


def test_suite_file_is_generated():
    assert SUITE.read_text(encoding="utf-8") == suite_json(), "regenerate: python tests/unit/test_validation.py"


def test_suite_lists_every_rule_in_plain_words():
    rules = render_rules_text(SUITE)
    ids = [rid for rid, _, _ in rules]
    assert len(ids) == len(set(ids)) == 14
    texts = dict((rid, (vi, en)) for rid, vi, en in rules)
    assert texts[f"{BETWEEN}:pm25"] == (
        "Giá trị cột pm25 nằm trong khoảng 0 đến 1000",
        "Values of column pm25 are between 0 and 1000",
    )
    assert texts["expect_table_row_count_to_be_between"] == ("Bảng có ít nhất 1 dòng", "The table has at least 1 row")
    assert "63 giá trị cho phép: 01, 02, 04" in texts["expect_column_values_to_be_in_set:province_code"][0]
    assert texts["expect_compound_columns_to_be_unique:station_code,observed_at"][1] == (
        "Each combination of (station_code, observed_at) appears only once"
    )


def test_passing_table_passes(passing):
    assert passing.success
    assert (passing.rows, passing.evaluated, passing.passed, passing.failed) == (4, 14, 14, 0)
    assert all(r.success and r.error is None for r in passing.rules)
    assert passing.rules[0].rule == "expect_table_row_count_to_be_between"  # suite order, not GX's order
    assert passing.rules[0].observed_value == 4
    summary = passing.summary()
    assert json.loads(json.dumps(summary)) == summary
    assert summary == {
        "success": True,
        "rows": 4,
        "evaluated": 14,
        "passed": 14,
        "failed": 0,
        "failed_rules": [],
        "suite_name": "air_quality_hourly",
        "gx_version": "1.24.1",
        "quarantine": None,
    }


def test_result_json_is_gx_result_with_sorted_keys(passing):
    text = passing.result_path.read_text(encoding="utf-8")
    doc = json.loads(text)
    assert doc["suite_name"] == "air_quality_hourly"
    assert doc["statistics"]["evaluated_expectations"] == 14
    assert json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False) + "\n" == text
    assert sorted(p.name for p in passing.result_path.parent.iterdir()) == ["report.html", "result.json"]


@pytest.mark.parametrize(
    ("change", "rule", "count", "sample"),
    [
        ({"pm25": 1500.0}, f"{BETWEEN}:pm25", 1, [1500.0]),
        ({"aqi": 501}, f"{BETWEEN}:aqi", 1, [501]),
        ({"station_code": "AQ1234"}, "expect_column_values_to_match_regex:station_code", 1, ["AQ1234"]),
        ({"station_code": "AQ١٢٣٤٥"}, "expect_column_values_to_match_regex:station_code", 1, ["AQ١٢٣٤٥"]),
        ({"province_code": "97"}, "expect_column_values_to_be_in_set:province_code", 1, ["97"]),
        # Row 2 becomes a second reading of station AQ00001 at the hour of row 0.
        (
            {"observed_at": datetime(2025, 3, 1, 0)},
            "expect_compound_columns_to_be_unique:station_code,observed_at",
            2,
            [{"station_code": "AQ00001", "observed_at": "2025-03-01T00:00:00"}] * 2,
        ),
    ],
    ids=["pm25-range", "aqi-range", "code-regex", "code-unicode-digits", "province-set", "compound-unique"],
)
def test_failing_table_fails_on_that_rule(tmp_path, change, rule, count, sample):
    rows = good_rows(4)
    rows[2].update(change)
    outcome = run(tmp_path, rows)
    assert not outcome.success
    assert outcome.failed_rules == [rule]
    (failed,) = [r for r in outcome.rules if not r.success]
    assert (failed.unexpected_count, failed.sample) == (count, sample)
    assert outcome.summary()["failed_rules"] == [rule]
    assert outcome.report_path.is_file() and outcome.result_path.is_file()


def test_compound_uniqueness_counts_the_same_on_duckdb_as_on_pandas(tmp_path, monkeypatch):
    """DuckDB counts repeated keys with its own SQL form; every count and sample must equal pandas'."""
    rows = good_rows(10)
    for i in (4, 5):  # a key three times (rows 0, 4, 5): station AQ00001 at 00:00
        rows[i].update(station_code="AQ00001", observed_at=datetime(2025, 3, 1, 0))
    for i in (6, 8):  # a key whose station is missing, twice: nulls group together, as pandas groups NaN
        rows[i].update(station_code=None, observed_at=datetime(2025, 3, 1, 7))
    rows[9].update(station_code=None, observed_at=None)  # both keys null: GX ignores the row
    found = {}
    for engine in ("duckdb", "pandas"):
        monkeypatch.setenv("DATASHARE_VALIDATION_ENGINE", engine)
        outcome = run(tmp_path / engine, rows)
        (rule,) = [r for r in outcome.rules if r.rule.startswith("expect_compound_columns_to_be_unique")]
        found[engine] = (
            rule.success,
            rule.unexpected_count,
            sorted(json.dumps(v, sort_keys=True, default=str) for v in rule.sample),
        )
    assert found["duckdb"] == found["pandas"]
    assert found["duckdb"][:2] == (False, 5)


@pytest.mark.parametrize("files", [0, 1], ids=["no-file", "empty-file"])
def test_empty_input_still_validates_and_reports(tmp_path, files):
    paths = [write(tmp_path / "in", [])] if files else []
    outcome = validate_parquet(
        paths, SUITE, dataset_id="air_quality_hourly", run_id="r", out_dir=tmp_path / "out", parameters=PARAMETERS
    )
    assert (outcome.success, outcome.rows) == (False, 0)
    # No rows is neither enough nor fresh.
    assert outcome.failed_rules == [
        "expect_table_row_count_to_be_between",
        "expect_column_max_to_be_between:observed_at",
    ]
    assert outcome.rules[0].observed_value == 0
    assert "KHÔNG ĐẠT / FAILED" in outcome.report_path.read_text(encoding="utf-8")


def test_missing_column_is_reported_not_raised(tmp_path):
    table = pa.Table.from_pylist(good_rows(2), schema=SCHEMA).drop_columns(["aqi"])
    (tmp_path / "in").mkdir()
    pq.write_table(table, tmp_path / "in" / "part-0.parquet")
    outcome = validate_parquet(
        [tmp_path / "in" / "part-0.parquet"],
        SUITE,
        dataset_id="d",
        run_id="r",
        out_dir=tmp_path / "out",
        parameters=PARAMETERS,
    )
    assert outcome.failed_rules == [f"{BETWEEN}:aqi"]
    assert "aqi" in next(r for r in outcome.rules if r.rule == f"{BETWEEN}:aqi").error
    assert "Lỗi / Error" in outcome.report_path.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"name": "s", "expectations": [', "is not valid JSON"),
        ("[]", "must hold a JSON object"),
        ('{"name": "s", "expectations": [{"type": "expect_pigs_to_fly", "kwargs": {}}]}', "'expect_pigs_to_fly'"),
        ('{"name": "s", "expectations": [{"type": "expect_column_values_to_be_between", "kwargs": {}}]}', "#1"),
        ('{"expectations": []}', "not a valid suite"),
    ],
    ids=["malformed", "not-object", "unknown-type", "bad-kwargs", "no-name"],
)
def test_broken_suite_names_the_file(tmp_path, text, message):
    broken = tmp_path / "broken_suite.json"
    broken.write_text(text, encoding="utf-8")
    with pytest.raises(SuiteError, match=re.escape(message)) as info:
        load_suite(broken)
    assert str(broken) in str(info.value)
    assert isinstance(info.value, DatashareError) and not info.value.retryable


def test_validate_with_broken_or_missing_suite_raises_suite_error(tmp_path):
    data = write(tmp_path / "in", good_rows(2))
    (tmp_path / "bad.json").write_text("{", encoding="utf-8")
    for suite in (tmp_path / "bad.json", tmp_path / "missing.json"):
        with pytest.raises(SuiteError, match=re.escape(str(suite))):
            validate_parquet([data], suite, dataset_id="d", run_id="r", out_dir=tmp_path / "out", parameters=PARAMETERS)
    assert not (tmp_path / "out").exists()


def test_unreadable_parquet_names_the_file(tmp_path):
    bad = tmp_path / "part-0.parquet"
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(ContractError, match=re.escape(str(bad))):
        validate_parquet([bad], SUITE, dataset_id="d", run_id="r", out_dir=tmp_path / "out", parameters=PARAMETERS)


def test_report_is_self_contained_bilingual_and_shows_the_verdict(passing):
    page = passing.report_path.read_text(encoding="utf-8")
    assert "http://" not in page and "https://" not in page
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*//""", page, re.I)
    assert not re.search(r"<(?:script|link|img|iframe)\b|url\(|@import", page, re.I)
    assert page.index("Kết quả kiểm tra dữ liệu") < page.index("Validation report")
    assert "ĐẠT / PASSED" in page and "KHÔNG ĐẠT" not in page
    for text in ("air_quality_hourly", "run-pass", "Quan trắc không khí theo giờ", "Hourly air quality", "1.24.1"):
        assert text in page
    assert "Giá trị cột pm25 nằm trong khoảng 0 đến 1000" in page
    assert "Values of column pm25 are between 0 and 1000" in page
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", page)


def test_report_escapes_hostile_values(hostile):
    page = hostile.report_path.read_text(encoding="utf-8")
    assert hostile.failed_rules == ["expect_column_values_to_match_regex:station_code"]
    assert HOSTILE not in page and "<b>bold</b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # the sample, the run id and the title
    assert "KHÔNG ĐẠT / FAILED" in page and "<script" not in page


def test_report_is_deterministic_apart_from_the_time(tmp_path, hostile):
    rows = good_rows(4)
    rows[0]["station_code"] = HOSTILE
    rows[1]["station_name"] = HOSTILE
    again = run(tmp_path, rows, run_id=f"run-{HOSTILE}", title_vi=HOSTILE, title_en="<b>bold</b>")

    def timeless(path: Path) -> str:
        return re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", "TIME", path.read_text(encoding="utf-8"))

    assert timeless(again.report_path) == timeless(hostile.report_path)


def test_describe_rule_plain_words_and_fallback():
    assert describe_rule(BETWEEN, {"column": "pm25", "min_value": 0.0, "max_value": 1000.0}) == (
        "Giá trị cột pm25 nằm trong khoảng 0 đến 1000",
        "Values of column pm25 are between 0 and 1000",
    )
    assert describe_rule(BETWEEN, {"column": "ph", "min_value": 6.5, "strict_max": True, "max_value": 8.5}) == (
        "Giá trị cột ph không nhỏ hơn 6,5 và nhỏ hơn 8,5",
        "Values of column ph are at least 6.5 and less than 8.5",
    )
    vi, en = describe_rule("expect_column_values_to_not_be_null", {"column": "station_code", "mostly": 0.95})
    assert vi.endswith("(với ít nhất 95% số giá trị)") and en.endswith("(for at least 95% of values)")
    assert describe_rule("expect_custom_thing", {"column": "x", "threshold": 3}) == (
        "Quy tắc expect_custom_thing trên cột x (threshold=3)",
        "Rule expect_custom_thing on column x (threshold=3)",
    )
    assert describe_rule("expect_custom_table_thing", {}) == (
        "Quy tắc expect_custom_table_thing trên bảng",
        "Rule expect_custom_table_thing on the table",
    )


if __name__ == "__main__":
    SUITE.write_text(suite_json(), encoding="utf-8")
    print(f"wrote {SUITE}")
