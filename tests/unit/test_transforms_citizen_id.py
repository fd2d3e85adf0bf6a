"""12-digit citizen ID structure checks; errors must never show a whole ID number."""

from __future__ import annotations

import pyarrow as pa
import pytest

from transforms.citizen_id import check_citizen_id, mask_id
from transforms.registry import resolve

GOOD = [
    "001085012345",  # Hà Nội, man born 1985
    "079301234567",  # Hồ Chí Minh City, woman born 2001
    "037199000001",  # Ninh Bình, woman born 1990
]


def ids(*values: str | None) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict({"cccd": pa.array(values, pa.string())})


def test_good_ids_pass_unchanged() -> None:
    raw = ids(*GOOD, None)
    assert check_citizen_id(raw, column="cccd", as_of="2025-01-01") is raw


@pytest.mark.parametrize(
    ("value", "masked", "problem"),
    [
        ("00108501234", "001******34", "has 11 characters, expected 12 digits"),
        ("0010850123456", "001********56", "has 13 characters, expected 12 digits"),
        ("00108501234X", "001*******4X", "is not 12 digits"),
        ("003085012345", "003*******45", "has province prefix 003"),  # 03 is no province code
        ("101085012345", "101*******45", "has province prefix 101"),
        ("001585012345", "001*******45", "has a century/gender digit (4th) outside 0-3"),
        ("001299012345", "001*******45", "has a birth year in the future"),
    ],
)
def test_bad_ids_name_the_row_and_a_masked_value(value: str, masked: str, problem: str) -> None:
    with pytest.raises(ValueError) as err:
        check_citizen_id(ids(GOOD[0], value), column="cccd", as_of="2025-01-01")

    message = str(err.value)
    assert message.startswith(f"check_citizen_id: column 'cccd', row 1: {masked!r} {problem}")
    assert value not in message
    assert value[3:-2] not in message  # the hidden digits appear nowhere


def test_mask_shows_first_three_and_last_two() -> None:
    assert mask_id("001085012345") == "001*******45"
    assert mask_id("12345") == "*****"


def test_post_2025_prefixes_can_be_allowed() -> None:
    """Prefixes issued after the 2025 merger are UNCONFIRMED; any_province accepts any 0xx."""
    raw = ids("003085012345")
    assert check_citizen_id(raw, column="cccd", any_province=True) is raw


def test_bad_column() -> None:
    with pytest.raises(KeyError, match="nope"):
        check_citizen_id(ids(*GOOD), column="nope")
    with pytest.raises(TypeError, match="must be text"):
        check_citizen_id(pa.RecordBatch.from_pydict({"cccd": [1085012345]}), column="cccd")


def test_registered() -> None:
    assert resolve("check_citizen_id") is check_citizen_id


def test_flag_column_records_masked_problems_instead_of_failing() -> None:
    raw = ids("001085012345", "00108501234", None, "123456789")

    out = check_citizen_id(raw, column="cccd", as_of="2025-01-01", flag_column="problems")

    assert out.column("cccd").to_pylist() == raw.column("cccd").to_pylist()
    problems = out.column("problems").to_pylist()
    assert problems[0] is None and problems[2] is None
    assert problems[1] == "check_citizen_id: column 'cccd': '001******34' has 11 characters, expected 12 digits"
    assert problems[3] == "check_citizen_id: column 'cccd': '123****89' has 9 characters, expected 12 digits"
    assert "00108501234" not in " ".join(p for p in problems if p)
