"""The 12-digit citizen ID number: structure check that never prints a whole number.

Structure (Decree 137/2015 Art. 13; Circular 07/2016/TT-BCA Art. 7; DOMAIN.md §3): a 3-digit
birth-registration province code, which is "0" + the pre-2025 statistics-office province code
(001 Hà Nội, 079 Hồ Chí Minh City); one digit for century and gender (1900s: 0 male, 1 female;
2000s: 2 male, 3 female); two digits of the birth year; six random digits. Province prefixes issued
after the 2025 merger are UNCONFIRMED, so only the 63 pre-2025 codes are accepted unless told otherwise.

An ID number is personal data (Decree 13/2023/NĐ-CP): errors show it masked, first 3 and last 2 digits.
"""

from __future__ import annotations

import re
from datetime import date

import pyarrow as pa

from transforms.admin_codes import pre_2025_province_codes
from transforms.parse import add_problems

_TWELVE_DIGITS = re.compile(r"\d{12}")
_CENTURY = {"0": 1900, "1": 1900, "2": 2000, "3": 2000}


def mask_id(value: object) -> str:
    """The value with all but its first 3 and last 2 characters replaced by '*' (all of it if short)."""
    text = str(value)
    if len(text) <= 5:
        return "*" * len(text)
    return text[:3] + "*" * (len(text) - 5) + text[-2:]


def id_problem(value: str, today: date, provinces: frozenset[str] | None) -> str | None:
    """What is wrong with one ID number, or None if its structure is right (never quoting hidden digits)."""
    if not _TWELVE_DIGITS.fullmatch(value):
        return f"has {len(value)} characters, expected 12 digits" if value.isdigit() else "is not 12 digits"
    prefix, century, year = value[:3], value[3], value[4:6]
    if prefix[0] != "0" or (provinces is not None and prefix[1:] not in provinces):
        return f"has province prefix {prefix}, not '0' + a pre-2025 province code"
    if century not in _CENTURY:
        return "has a century/gender digit (4th) outside 0-3 (born in the 1900s or 2000s)"
    if _CENTURY[century] + int(year) > today.year:
        return "has a birth year in the future"
    return None


def check_citizen_id(
    batch: pa.RecordBatch,
    *,
    column: str,
    any_province: bool = False,
    as_of: str | None = None,
    flag_column: str | None = None,
) -> pa.RecordBatch:
    """Check that every value of ``column`` is a well-formed 12-digit citizen ID; the batch is unchanged.

    Args:
        column: the ID column (text; a number column would have lost leading zeros).
        any_province: accept any prefix 0xx, for IDs issued with post-2025 codes (UNCONFIRMED).
        as_of: ISO date against which birth years are checked (today when omitted).
        flag_column: instead of raising, write each problem (masked value) into this text column,
            added when absent, so a suite can quarantine the rows (``transforms.parse.add_problems``).

    Raises:
        ValueError: a wrong length or structure, naming the row and the masked value.
    """
    if column not in batch.schema.names:
        raise KeyError(f"check_citizen_id: column {column!r} not in the data")
    col = batch.column(column)
    if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
        raise TypeError(f"check_citizen_id: column {column!r} has type {col.type}; ID numbers must be text")
    today = date.fromisoformat(as_of) if as_of else date.today()
    provinces = None if any_province else pre_2025_province_codes()
    problems: dict[int, str] = {}
    for row, value in enumerate(col.to_pylist()):
        if value is None:
            continue
        problem = id_problem(value, today, provinces)
        if problem and flag_column is None:
            raise ValueError(f"check_citizen_id: column {column!r}, row {row}: {mask_id(value)!r} {problem}")
        if problem:
            problems[row] = f"check_citizen_id: column {column!r}: {mask_id(value)!r} {problem}"
    return add_problems(batch, flag_column, problems) if flag_column else batch
