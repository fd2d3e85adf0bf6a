"""The type contract on tiny inputs: every type, the values it holds exactly, and the ones it names."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest

from datashare.source.conform import (
    Contract,
    Unreadable,
    conform_array,
    conform_values,
    fits,
    python_values,
    unreadable_time,
)
from datashare.spec import ColumnType

VIETNAM = "Asia/Ho_Chi_Minh"
PLUS7 = timezone(timedelta(hours=7))


def _contract(kind: str, **kw: Any) -> Contract:
    return Contract(name="v", kind=ColumnType(kind), **kw)


HELD = [
    # (type, contract details, source value, the value published)
    ("integer", {}, 7, 7),
    ("integer", {}, 2.0, 2),
    ("integer", {}, Decimal("-3"), -3),
    ("integer", {}, 2**63 - 1, 2**63 - 1),
    ("number", {}, 0.1, 0.1),
    ("number", {}, Decimal("1250.5"), 1250.5),
    ("number", {}, 2**53, 2.0**53),
    ("number", {}, 5, 5.0),
    ("decimal", {"precision": 5, "scale": 2}, Decimal("123.4"), Decimal("123.40")),
    ("decimal", {"precision": 5, "scale": 2}, "-0.5", Decimal("-0.50")),
    ("decimal", {"precision": 5, "scale": 2}, 0.1, Decimal("0.10")),
    ("boolean", {}, True, True),
    ("boolean", {}, 0, False),
    ("string", {}, "Hà Nội", "Hà Nội"),
    ("date", {}, date(2024, 2, 29), date(2024, 2, 29)),
    ("date", {}, "9999-12-31", date(9999, 12, 31)),
    ("datetime", {"zone_name": VIETNAM}, datetime(2024, 1, 1, 5), datetime(2024, 1, 1, 5)),
    ("datetime", {"zone_name": VIETNAM}, "2024-01-01 05:00:00.25", datetime(2024, 1, 1, 5, 0, 0, 250000)),
    ("datetime", {"zone_name": VIETNAM}, "2024-01-01T00:00:00+07:00", datetime(2024, 1, 1)),
    ("datetime", {"zone_name": VIETNAM}, "2024-01-01T00:00:00Z", datetime(2024, 1, 1, 7)),
    ("datetime", {"zone_name": VIETNAM}, datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 1, 7)),
    ("datetime", {"zone_name": VIETNAM}, "2024-01-01 00:00:00.123456000", datetime(2024, 1, 1, 0, 0, 0, 123456)),
    ("datetime", {"zone_name": VIETNAM, "utc": True}, datetime(2024, 1, 1, 7), datetime(2024, 1, 1, tzinfo=UTC)),
    (
        "datetime",
        {"zone_name": VIETNAM, "utc": True},
        datetime(2024, 1, 1, tzinfo=PLUS7),
        datetime(2023, 12, 31, 17, tzinfo=UTC),
    ),
]


@pytest.mark.parametrize(("kind", "details", "value", "published"), HELD)
def test_a_value_the_type_holds_is_published_exactly(kind: str, details: dict, value: Any, published: Any) -> None:
    array, problems = conform_values([value, None], _contract(kind, **details))
    assert problems == {}
    assert array.to_pylist() == [published, None]
    assert array.type == _contract(kind, **details).arrow


NAMED = [
    ("integer", {}, 1.5, "1.5 has a fraction"),
    ("integer", {}, Decimal("1.5"), "1.5 has a fraction"),
    ("integer", {}, 2**63, "9223372036854775808 is beyond the 64-bit integer range"),
    ("integer", {}, float("nan"), "nan is not a finite number"),
    ("integer", {}, True, "True is a boolean, not an integer"),
    ("integer", {}, "15", "'15' is text, not an integer"),
    ("number", {}, float("nan"), "nan is NaN (not a number)"),
    ("number", {}, float("inf"), "inf is infinite"),
    ("number", {}, Decimal("-Infinity"), "-Infinity is infinite"),
    ("number", {}, Decimal("NaN"), "NaN is NaN"),
    ("number", {}, 2**53 + 1, "9007199254740993 has more digits than a double holds exactly"),
    ("number", {}, Decimal("12345678901234567890.123"), "it would read 1.2345678901234567e+19"),
    ("number", {}, Decimal("1e400"), "1E+400 is beyond the range of a double"),
    ("number", {}, "1.5", "'1.5' is text, not a number"),
    ("decimal", {"precision": 5, "scale": 2}, Decimal("1.234"), "1.234 has more than 2 digits after the decimal point"),
    ("decimal", {"precision": 5, "scale": 2}, 1234.5, "1234.5 has more than 3 digits before the decimal point"),
    ("decimal", {"precision": 5, "scale": 2}, "1,5", "'1,5' is text, not a decimal number"),
    ("decimal", {"precision": 38, "scale": 0}, Decimal("1e40"), "has more than 38 digits"),
    ("boolean", {}, 2, "2 is an integer other than 0 and 1"),
    ("boolean", {}, "true", "'true' is text, not a boolean"),
    ("string", {}, b"\xff", "b'\\xff' is binary data, not text"),
    ("string", {}, "a\x00b", "contains a NUL character"),
    ("string", {}, 5, "5 is an integer, not text"),
    ("string", {}, Unreadable("\\xff", "is not valid UTF-8 text"), "'\\\\xff' is not valid UTF-8 text"),
    ("date", {}, "2024-02-30", "'2024-02-30' is not a real date (day is out of range for month)"),
    ("date", {}, "0000-00-00", "'0000-00-00' is not a real date"),
    ("date", {}, "10000-01-01", "'10000-01-01' is outside the years 1–9999"),
    ("date", {}, "01/02/2024", "'01/02/2024' is not a date written YYYY-MM-DD"),
    ("date", {}, datetime(2024, 1, 1, 5), "2024-01-01 05:00:00 is a timestamp, not a date"),
    ("date", {}, unreadable_time("infinity"), "'infinity' is infinite"),
    ("datetime", {"zone_name": VIETNAM}, unreadable_time("-infinity"), "'-infinity' is infinite"),
    ("datetime", {"zone_name": VIETNAM}, unreadable_time("0001-01-01 00:00:00 BC"), "is outside the years 1–9999"),
    ("datetime", {"zone_name": VIETNAM}, "0000-00-00 00:00:00", "year 0 is out of range"),
    ("datetime", {"zone_name": VIETNAM}, "2024-02-30 00:00:00", "is not a real timestamp"),
    ("datetime", {"zone_name": VIETNAM}, "10000-01-01 00:00:00", "is outside the years 1–9999"),
    ("datetime", {"zone_name": VIETNAM}, "2024-01-01 00:00:00.1234567", "has digits below the microsecond"),
    ("datetime", {"zone_name": VIETNAM}, "9999-12-31T23:00:00-01:00", "once converted to Asia/Ho_Chi_Minh"),
    ("datetime", {"zone_name": VIETNAM}, "now", "'now' is not a timestamp written"),
    ("datetime", {"zone_name": VIETNAM}, date(2024, 1, 1), "2024-01-01 is a date, not a timestamp"),
    ("datetime", {"zone_name": VIETNAM}, 1704067200, "1704067200 is an integer, not a timestamp"),
    (
        "datetime",
        {"zone_name": "Europe/Berlin", "utc": True},
        datetime(2024, 3, 31, 2, 30),
        "does not exist in Europe/Berlin",
    ),
    (
        "datetime",
        {"zone_name": "Europe/Berlin", "utc": True},
        datetime(2024, 10, 27, 2, 30),
        "is ambiguous in Europe/Berlin",
    ),
]


@pytest.mark.parametrize(("kind", "details", "value", "says"), NAMED)
def test_a_value_the_type_cannot_hold_is_named_and_left_null(kind: str, details: dict, value: Any, says: str) -> None:
    array, problems = conform_values(["ok" if kind == "string" else None, value], _contract(kind, **details))
    assert array.to_pylist()[1] is None  # never a cast, never a guess
    assert list(problems) == [1]
    assert problems[1].startswith("column 'v': ") and says in problems[1], problems[1]


def test_arrow_values_out_of_python_range_are_named_not_wrapped() -> None:
    """ADBC hands PostgreSQL's infinity over as an int64 wrapped around to 290,000 years BC."""
    wrapped = pa.array([-9222425352054775809, 1704067200000000, 253402300800000000], pa.int64()).cast(
        pa.timestamp("us")
    )
    values = python_values(wrapped)
    assert isinstance(values[0], Unreadable) and values[1] == datetime(2024, 1, 1)
    assert values[2] == "10000-01-01 00:00:00.000000"
    array, problems = conform_array(wrapped, _contract("datetime", zone_name=VIETNAM))
    assert array.to_pylist() == [None, datetime(2024, 1, 1), None]
    assert "is outside the years 1–9999" in problems[0] and "'10000-01-01 00:00:00.000000'" in problems[2]
    assert fits(wrapped, _contract("datetime", zone_name=VIETNAM)) is None  # the fast path hands over


@pytest.mark.parametrize(
    ("array", "kind", "ok"),
    [
        (pa.array([1, 2], pa.int32()), "integer", True),
        (pa.array([1, 2**53 + 1], pa.int64()), "number", False),
        (pa.array([1, 2**40], pa.int64()), "number", True),
        (pa.array([2**64 - 1], pa.uint64()), "integer", False),
        (pa.array([1.5, float("nan")]), "number", False),
        (pa.array([1.5, None]), "number", True),
        (pa.array(["a", "b\x00"]), "string", False),
        (pa.array([date(2024, 1, 1)], pa.date32()), "date", True),
        (pa.array([1.0]), "integer", False),  # a double is never narrowed on the fast path
        (pa.array([datetime(2024, 1, 1)], pa.timestamp("us", tz="UTC")), "datetime", False),  # no silent zone
    ],
)
def test_the_fast_paths_check_in_bulk_and_hand_over_what_does_not_fit(array: pa.Array, kind: str, ok: bool) -> None:
    contract = _contract(kind, zone_name=VIETNAM if kind == "datetime" else None)
    fitted = fits(array, contract)
    assert (fitted is not None) == ok
    if ok:
        assert fitted.type == contract.arrow and fitted.to_pylist() == array.to_pylist()


def test_the_clean_bulk_path_and_the_value_by_value_path_agree() -> None:
    """Clean columns skip the value-by-value pass; a column with one bad value takes it, same result otherwise."""
    contract = _contract("datetime", zone_name=VIETNAM)
    good = [datetime(2024, 1, 1, h) for h in range(24)]
    clean, _ = conform_values(good, contract)
    dirty, problems = conform_values([*good, "2024-02-30 00:00:00"], contract)
    assert dirty.slice(0, 24).equals(clean) and list(problems) == [24]
