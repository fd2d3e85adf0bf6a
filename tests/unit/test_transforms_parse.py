"""dd/mm/yyyy dates, decimal commas, non-negative checks and detection limits on tiny inline tables."""

from __future__ import annotations

import re
from datetime import date

import pyarrow as pa
import pytest

from transforms.parse import detection_limit, non_negative, parse_date_dmy, parse_decimal_comma
from transforms.registry import resolve


def batch(**columns: list) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict(columns)


# -- dates ----------------------------------------------------------------------------------------


def test_dates_are_parsed_in_place() -> None:
    raw = batch(issued=["01/02/2024", " 9/3/2023 ", None, "", "29/02/2024"], n=[1, 2, 3, 4, 5])

    out = parse_date_dmy(raw, columns=["issued"])

    assert out.schema.field("issued").type == pa.date32()
    assert out.column("issued").to_pylist() == [date(2024, 2, 1), date(2023, 3, 9), None, None, date(2024, 2, 29)]
    assert out.schema.names == ["issued", "n"]


def test_dates_into_a_new_column_next_to_the_text() -> None:
    raw = batch(issued=["01/02/2024"], expires=["31/12/2030"])

    out = parse_date_dmy(raw, columns=["issued", "expires"], target_suffix="_date")

    assert out.schema.names == ["issued", "issued_date", "expires", "expires_date"]
    assert out.column("issued").to_pylist() == ["01/02/2024"]
    assert out.column("expires_date").to_pylist() == [date(2030, 12, 31)]


def test_date_columns_pass_through() -> None:
    raw = pa.RecordBatch.from_pydict({"d": pa.array([date(2024, 1, 1)], pa.date32())})
    assert parse_date_dmy(raw, columns=["d"]).column("d").to_pylist() == [date(2024, 1, 1)]


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("31/02/2024", "is not a real date"),
        ("29/02/2023", "is not a real date"),
        ("01/13/2024", "is not a real date"),
        ("2024-02-01", "is not a date written dd/mm/yyyy"),
        ("01/02/24", "is not a date written dd/mm/yyyy"),
        ("01/02/2024 10:00", "is not a date written dd/mm/yyyy"),
    ],
)
def test_bad_dates_name_column_row_and_value(value: str, problem: str) -> None:
    raw = batch(issued=["01/01/2020", "02/01/2020", value])

    with pytest.raises(ValueError) as err:
        parse_date_dmy(raw, columns=["issued"])

    assert str(err.value).startswith(f"parse_date_dmy: column 'issued', row 2: {value!r} {problem}")


# -- decimal commas -------------------------------------------------------------------------------


def test_decimal_comma_numbers() -> None:
    raw = batch(flow=["1.250,5", "0,005", "30.000", "12", "-3,5", None, " 1.000.000 "])

    out = parse_decimal_comma(raw, columns=["flow"])

    assert out.schema.field("flow").type == pa.float64()
    assert out.column("flow").to_pylist() == [1250.5, 0.005, 30000.0, 12.0, -3.5, None, 1000000.0]


def test_numeric_columns_are_cast() -> None:
    assert parse_decimal_comma(batch(q=[1, 2]), columns=["q"]).column("q").to_pylist() == [1.0, 2.0]


@pytest.mark.parametrize("value", ["1.5", "1.25", "abc", "1,2,3", "12,", "1 250,5", "1.250.5"])
def test_garbage_numbers_name_column_row_and_value(value: str) -> None:
    """A dot groups exactly three digits: '1.5' is rejected rather than guessed."""
    raw = batch(flow=["1,5", value])

    with pytest.raises(ValueError) as err:
        parse_decimal_comma(raw, columns=["flow"])

    assert str(err.value).startswith(f"parse_decimal_comma: column 'flow', row 1: {value!r} is not a number")


# -- non-negative ---------------------------------------------------------------------------------


def test_non_negative_passes_good_values() -> None:
    raw = batch(flow=[0.0, 12.5, None])
    assert non_negative(raw, columns=["flow"]) is raw


def test_negative_flow_names_column_row_and_value() -> None:
    with pytest.raises(ValueError, match=r"^non_negative: column 'flow', row 2: -250\.0 is negative$"):
        non_negative(batch(flow=[1.0, None, -250.0]), columns=["flow"])


def test_non_negative_needs_numbers() -> None:
    with pytest.raises(TypeError, match="'flow'"):
        non_negative(batch(flow=["1"]), columns=["flow"])


# -- detection limits -----------------------------------------------------------------------------


def test_detection_limit_splits_value_flag_and_limit() -> None:
    raw = batch(nh4=["0,12", "<0,05", "< 0,01", "KPH", None, "1.200"], station=list("abcdef"))

    out = detection_limit(raw, columns=["nh4"])

    assert out.schema.names == ["nh4", "nh4_below_dl", "nh4_dl", "station"]
    assert out.column("nh4").to_pylist() == [0.12, None, None, None, None, 1200.0]
    assert out.column("nh4_below_dl").to_pylist() == [False, True, True, True, None, False]
    assert out.column("nh4_dl").to_pylist() == [None, 0.05, 0.01, None, None, None]
    assert out.schema.field("nh4_below_dl").type == pa.bool_()
    assert out.schema.field("nh4_dl").type == pa.float64()


def test_detection_limit_on_a_numeric_column() -> None:
    out = detection_limit(batch(cd=[0.001, None, float("nan")]), columns=["cd"])
    assert out.column("cd").to_pylist() == [0.001, None, None]
    assert out.column("cd_below_dl").to_pylist() == [False, None, None]


@pytest.mark.parametrize("value", ["<", "<abc", "n/a", "<-0,1", "0.5"])
def test_bad_lab_values_name_column_row_and_value(value: str) -> None:
    with pytest.raises(ValueError) as err:
        detection_limit(batch(nh4=["0,1", value]), columns=["nh4"])
    assert str(err.value).startswith(f"detection_limit: column 'nh4', row 1: {value!r} is not a lab value")


def test_missing_columns_are_named() -> None:
    for func in (parse_date_dmy, parse_decimal_comma, non_negative, detection_limit):
        with pytest.raises(KeyError, match="nope"):
            func(batch(a=["1"]), columns=["nope"])


def test_registered() -> None:
    for name, func in [
        ("parse_date_dmy", parse_date_dmy),
        ("parse_decimal_comma", parse_decimal_comma),
        ("non_negative", non_negative),
        ("detection_limit", detection_limit),
    ]:
        assert resolve(name) is func


# -- flagging instead of failing ------------------------------------------------------------------


def test_flag_column_collects_problems_instead_of_failing() -> None:
    raw = batch(
        flow=["1.250,5", "N/A", "-5", "12", "N/A"],
        issued=["01/02/2024", "31/02/2024", "02/02/2024", "", "31/02/2024"],
    )

    out = parse_decimal_comma(raw, columns=["flow"], flag_column="problems")
    out = non_negative(out, columns=["flow"], flag_column="problems")
    out = parse_date_dmy(out, columns=["issued"], flag_column="problems")

    assert out.column("flow").to_pylist() == [1250.5, None, -5.0, 12.0, None]  # the negative is kept, visible
    assert out.column("issued").to_pylist() == [date(2024, 2, 1), None, date(2024, 2, 2), None, None]
    problems = out.column("problems").to_pylist()
    assert problems[0] is None and problems[3] is None
    assert problems[1] == (
        "parse_decimal_comma: column 'flow': 'N/A' is not a number written with '.' for thousands and ',' for "
        "decimals; parse_date_dmy: column 'issued': '31/02/2024' is not a real date (day is out of range for month)"
    )
    assert problems[2] == "non_negative: column 'flow': -5.0 is negative"
    assert problems[4] == problems[1]  # a repeated bad value is reported on every row that has it


def test_flag_column_is_added_even_without_problems() -> None:
    out = parse_date_dmy(batch(issued=["01/02/2024"]), columns=["issued"], flag_column="problems")
    assert out.schema.names == ["issued", "problems"]
    assert out.schema.field("problems").type == pa.string()
    assert out.column("problems").to_pylist() == [None]


def test_numbers_without_thousands_separators() -> None:
    """Laboratories that write no thousands separators: '.' is a decimal point, never a grouping."""
    raw = batch(v=["7,25", "7.25", "0.005", "<0.001", "<0,05", "12"])

    out = detection_limit(raw, columns=["v"], thousands=False)

    assert out.column("v").to_pylist() == [7.25, 7.25, 0.005, None, None, 12.0]
    assert out.column("v_dl").to_pylist() == [None, None, None, 0.001, 0.05, None]
    assert parse_decimal_comma(batch(v=["0.005"]), columns=["v"], thousands=False).column("v").to_pylist() == [0.005]
    with pytest.raises(ValueError, match=r"'1\.250,5' is not a lab value"):
        detection_limit(batch(v=["1.250,5"]), columns=["v"], thousands=False)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("1" + "0" * 400, "is beyond the range of a double"),
        ("12.345.678.901.234.567.890", "has more digits than a double holds exactly"),
        ("0,12345678901234567890", "has more digits than a double holds exactly"),
        ("0," + "0" * 400 + "1", "has more digits than a double holds exactly"),
    ],
)
def test_a_number_a_double_cannot_hold_is_never_rounded(value: str, problem: str) -> None:
    """float() gives inf for 400 digits and drops the tail of 20: the contract's number holds neither."""
    batch = pa.RecordBatch.from_pydict({"flow": ["1.250,5", value]})
    with pytest.raises(
        ValueError, match=rf"parse_decimal_comma: column 'flow', row 1: '{re.escape(value[:10])}.*{problem}"
    ):
        parse_decimal_comma(batch, columns=["flow"])
    flagged = parse_decimal_comma(batch, columns=["flow"], flag_column="problems")
    assert flagged.column("flow").to_pylist() == [1250.5, None]
    assert problem in flagged.column("problems")[1].as_py() and flagged.column("problems")[0].as_py() is None


def test_numeric_columns_are_cast_exactly_or_named() -> None:
    batch = pa.RecordBatch.from_pydict({"flow": pa.array([3, 2**53 + 1], pa.int64())})
    with pytest.raises(ValueError, match=r"column 'flow', row 1: 9007199254740993 has more digits than a double"):
        parse_decimal_comma(batch, columns=["flow"])
    flagged = parse_decimal_comma(batch, columns=["flow"], flag_column="problems")
    assert flagged.column("flow").to_pylist() == [3.0, None]
    assert "9007199254740993" in flagged.column("problems")[1].as_py()
