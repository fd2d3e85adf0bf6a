"""Vietnamese number and date text: dd/mm/yyyy dates, decimal commas, lab values below a detection limit.

Sector databases often store these as text the way they are written in Vietnam (DOMAIN.md §7):
"." groups thousands and "," marks decimals ("1.250,5", "30.000", "0,005"), and dates are
dd/mm/yyyy. Every parser here fails on text it cannot read, naming the column, the row (within the
batch) and the value: a guess would put a wrong number in a published dataset.

Sources that carry such dirt every day cannot fail every run. With ``flag_column`` a parser leaves
the bad value null (a negative number stays as it is) and writes the problem, naming the column and
the value, into that text column instead; a suite rule that expects the column to be null then
quarantines exactly those rows with the rule that caught them, and nothing is guessed or lost.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from typing import Any

import pyarrow as pa

_DATE = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})")
_NUMBER = re.compile(r"[+-]?(?:\d{1,3}(?:\.\d{3})+|\d+)(?:,\d+)?")
_UNGROUPED = re.compile(r"[+-]?\d+(?:[.,]\d+)?")
_BELOW = re.compile(r"<\s*(.+)")
#: "KPH" (không phát hiện, not detected) is how lab reports write a result below an unstated limit.
_NOT_DETECTED = frozenset({"kph"})


def _text(value: Any) -> str | None:
    """A text value stripped, with blank text as missing."""
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _fail(transform: str, column: str, row: int, value: Any, problem: str) -> ValueError:
    return ValueError(f"{transform}: column {column!r}, row {row}: {value!r} {problem}")


def _check_columns(transform: str, batch: pa.RecordBatch, columns: Sequence[str]) -> None:
    missing = [n for n in columns if n not in batch.schema.names]
    if missing:
        raise KeyError(f"{transform}: column(s) {missing} not in the data")


def _parse_each(col: pa.Array, parse: Callable[[Any, int], Any]) -> list[Any]:
    """``parse(value, row)`` of every value, called once per distinct value (codes and dates repeat a lot)."""
    cache: dict[Any, Any] = {}
    out = []
    for row, value in enumerate(col.to_pylist()):
        if value not in cache:
            cache[value] = parse(value, row)
        out.append(cache[value])
    return out


def _convert_each(
    transform: str,
    name: str,
    col: pa.Array,
    convert: Callable[[str], Any],
    problems: dict[int, str] | None,
    empty: Any = None,
) -> list[Any]:
    """``convert(text)`` of every non-blank value (``empty`` for blank ones), once per distinct value.

    ``convert`` raises ValueError with the problem. Without ``problems`` that fails naming column,
    row and value; with it, the row gets ``empty`` and the problem is recorded under its position.
    """
    cache: dict[Any, tuple[Any, str | None]] = {}
    out = []
    for row, value in enumerate(col.to_pylist()):
        if value not in cache:
            text = _text(value)
            try:
                cache[value] = (empty if text is None else convert(text), None)
            except ValueError as exc:
                if problems is None:
                    raise _fail(transform, name, row, value, str(exc)) from None
                cache[value] = (empty, f"{transform}: column {name!r}: {value!r} {exc}")
        result, problem = cache[value]
        if problem is not None:
            problems[row] = problem  # type: ignore[index]
        out.append(result)
    return out


def add_problems(batch: pa.RecordBatch, column: str, problems: Mapping[int, str]) -> pa.RecordBatch:
    """Append row problems to the text column ``column`` ('; '-joined), creating it (all null) when absent.

    The column stays null for rows without a problem, so a suite can quarantine the others by
    expecting it to be null.
    """
    n = batch.num_rows
    if column in batch.schema.names:
        existing = batch.column(column)
        if not (pa.types.is_string(existing.type) or pa.types.is_large_string(existing.type)):
            raise TypeError(f"problem column {column!r} has type {existing.type}, expected text")
        if not problems:
            return batch
        values = existing.to_pylist()
    else:
        values = [None] * n
    for row, problem in problems.items():
        values[row] = problem if values[row] is None else f"{values[row]}; {problem}"
    array = pa.array(values, pa.string())
    if column in batch.schema.names:
        return batch.set_column(batch.schema.get_field_index(column), column, array)
    return batch.append_column(column, array)


def _replace(batch: pa.RecordBatch, updates: dict[str, list[tuple[str, pa.Array]]]) -> pa.RecordBatch:
    """Rebuild ``batch``: each column named in ``updates`` is replaced by the (name, array) pairs given."""
    names, arrays = [], []
    for i, name in enumerate(batch.schema.names):
        for new_name, array in updates.get(name, [(name, batch.column(i))]):
            names.append(new_name)
            arrays.append(array)
    return pa.RecordBatch.from_arrays(arrays, names=names)


# -- dates ----------------------------------------------------------------------------------------


def parse_dmy(text: str) -> date:
    """One 'dd/mm/yyyy' date; ValueError for malformed text or an impossible date ('31/02/2024')."""
    m = _DATE.fullmatch(text.strip())
    if not m:
        raise ValueError("is not a date written dd/mm/yyyy")
    day, month, year = (int(g) for g in m.groups())
    try:
        return date(year, month, day)
    except ValueError as exc:
        raise ValueError(f"is not a real date ({exc})") from None


def parse_date_dmy(
    batch: pa.RecordBatch,
    *,
    columns: Sequence[str],
    target_suffix: str | None = None,
    flag_column: str | None = None,
) -> pa.RecordBatch:
    """Turn 'dd/mm/yyyy' text into date32, in place or into ``<column><target_suffix>`` next to the text.

    Blank text becomes null; columns that already hold dates pass through. With ``flag_column``, an
    unreadable or impossible date ('31/02/2024') becomes null and its problem goes to that column.
    """
    _check_columns("parse_date_dmy", batch, columns)
    updates: dict[str, list[tuple[str, pa.Array]]] = {}
    problems: dict[int, str] | None = {} if flag_column else None
    for name in columns:
        col = batch.column(name)
        if pa.types.is_date(col.type):
            parsed = col.cast(pa.date32())
        else:
            parsed = pa.array(_convert_each("parse_date_dmy", name, col, parse_dmy, problems), pa.date32())
        updates[name] = [(name, col), (name + target_suffix, parsed)] if target_suffix else [(name, parsed)]
    out = _replace(batch, updates)
    return add_problems(out, flag_column, problems or {}) if flag_column else out


# -- numbers --------------------------------------------------------------------------------------


def parse_vn_number(text: str, *, thousands: bool = True) -> float:
    """One number written the Vietnamese way: '1.250,5' -> 1250.5, '30.000' -> 30000.0, '0,005' -> 0.005.

    A dot must group exactly three digits, so '1.5' (an English decimal point?) is rejected, not guessed.
    With ``thousands=False`` the source is known to write no thousands separators, so a single '.' or
    ',' is the decimal mark ('7.25' and '7,25' both give 7.25) and '0.005' cannot be misread as 5.
    """
    compact = text.strip()
    if not thousands:
        if not _UNGROUPED.fullmatch(compact):
            raise ValueError("is not a number written without thousands separators ('.' or ',' for decimals)")
        return _exact(compact.replace(",", "."))
    if not _NUMBER.fullmatch(compact):
        raise ValueError("is not a number written with '.' for thousands and ',' for decimals")
    return _exact(compact.replace(".", "").replace(",", "."))


def _exact(plain: str) -> float:
    """The double of a plain decimal literal, or ValueError when a double cannot hold it exactly.

    ``float()`` would give ``inf`` for 400 digits and drop the last digits of 12345678901234567890:
    the contract's ``number`` holds a value only when its shortest form reads back the same.
    """
    from decimal import Decimal

    from datashare.sdk import exact_number

    return exact_number(Decimal(plain))


def parse_decimal_comma(
    batch: pa.RecordBatch, *, columns: Sequence[str], thousands: bool = True, flag_column: str | None = None
) -> pa.RecordBatch:
    """Turn decimal-comma text ('1.250,5', '0,005', '30.000') into float64; numeric columns are cast.

    ``thousands=False``: see :func:`parse_vn_number`. With ``flag_column``, unreadable text ('N/A',
    'khoảng 500') becomes null and its problem goes to that column.
    """
    _check_columns("parse_decimal_comma", batch, columns)
    updates: dict[str, list[tuple[str, pa.Array]]] = {}
    problems: dict[int, str] | None = {} if flag_column else None
    for name in columns:
        col = batch.column(name)
        if pa.types.is_integer(col.type) or pa.types.is_floating(col.type) or pa.types.is_decimal(col.type):
            parsed = _numbers(name, col, problems)
        else:

            def convert(text: str) -> float:
                return parse_vn_number(text, thousands=thousands)

            parsed = pa.array(_convert_each("parse_decimal_comma", name, col, convert, problems), pa.float64())
        updates[name] = [(name, parsed)]
    out = _replace(batch, updates)
    return add_problems(out, flag_column, problems or {}) if flag_column else out


def _numbers(name: str, col: pa.Array, problems: dict[int, str] | None) -> pa.Array:
    """A numeric column as float64, exactly: a value a double cannot hold is a problem, never rounded."""
    from datashare.sdk import conform_numbers

    parsed, found = conform_numbers(name, col)
    for row, problem in sorted(found.items()):
        text = problem.split(": ", 1)[1]  # "column 'x': <value> <problem>"
        if problems is None:
            raise ValueError(f"parse_decimal_comma: column {name!r}, row {row}: {text}")
        problem = f"parse_decimal_comma: column {name!r}: {text}"
        problems[row] = f"{problems[row]}; {problem}" if row in problems else problem
    return parsed


def non_negative(batch: pa.RecordBatch, *, columns: Sequence[str], flag_column: str | None = None) -> pa.RecordBatch:
    """Check that numeric columns hold no negative value (a flow or an area cannot be below zero).

    Run after the sentinel transform: -9999 "no reading" markers would fail here. With
    ``flag_column`` a negative value is kept as it is and its problem goes to that column.
    """
    _check_columns("non_negative", batch, columns)
    problems: dict[int, str] = {}
    for name in columns:
        col = batch.column(name)
        if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type) or pa.types.is_decimal(col.type)):
            raise TypeError(f"non_negative: column {name!r} has type {col.type}, expected a number")
        for row, value in enumerate(col.to_pylist()):
            if value is not None and value < 0:
                if flag_column is None:
                    raise _fail("non_negative", name, row, value, "is negative")
                problem = f"non_negative: column {name!r}: {value!r} is negative"
                problems[row] = f"{problems[row]}; {problem}" if row in problems else problem
    return add_problems(batch, flag_column, problems) if flag_column else batch


# -- detection limits -----------------------------------------------------------------------------


def parse_lab_value(text: str, *, thousands: bool = True) -> tuple[float | None, bool, float | None]:
    """One lab result: (value, below the detection limit?, the limit).

    '0,12' -> (0.12, False, None); '<0,05' -> (None, True, 0.05); 'KPH' -> (None, True, None).
    ``thousands``: see :func:`parse_vn_number`.
    """
    compact = text.strip()
    if compact.lower() in _NOT_DETECTED:
        return None, True, None
    m = _BELOW.fullmatch(compact)
    if m:
        limit = parse_vn_number(m.group(1), thousands=thousands)
        if limit < 0:
            raise ValueError("has a negative detection limit")
        return None, True, limit
    return parse_vn_number(compact, thousands=thousands), False, None


def detection_limit(batch: pa.RecordBatch, *, columns: Sequence[str], thousands: bool = True) -> pa.RecordBatch:
    """Split lab values such as '<0,05' into a number, a below-limit flag and the limit.

    The value column becomes float64 and is null when below the limit (never the limit, half of it or
    zero); ``<column>_below_dl`` (bool) and ``<column>_dl`` (float64, the limit when stated) follow it.
    ``thousands=False`` for laboratories that write no thousands separators, so that '7.25' and
    '7,25' are both 7.25 and '<0.001' is not read as 1 (see :func:`parse_vn_number`).
    """
    _check_columns("detection_limit", batch, columns)
    updates: dict[str, list[tuple[str, pa.Array]]] = {}
    for name in columns:
        col = batch.column(name)
        if pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
            values = [None if v is None or math.isnan(v) else v for v in col.cast(pa.float64()).to_pylist()]
            triples = [(v, None if v is None else False, None) for v in values]
        else:

            def parse(value: Any, row: int, name: str = name) -> tuple[float | None, bool | None, float | None]:
                text = _text(value)
                if text is None:
                    return None, None, None
                try:
                    return parse_lab_value(text, thousands=thousands)
                except ValueError as exc:
                    raise _fail("detection_limit", name, row, value, f"is not a lab value ({exc})") from None

            triples = _parse_each(col, parse)
        value_col, below, limit = zip(*triples, strict=True) if triples else ((), (), ())
        updates[name] = [
            (name, pa.array(value_col, pa.float64())),
            (f"{name}_below_dl", pa.array(below, pa.bool_())),
            (f"{name}_dl", pa.array(limit, pa.float64())),
        ]
    return _replace(batch, updates)
