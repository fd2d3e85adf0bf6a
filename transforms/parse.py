"""Vietnamese number and date text: dd/mm/yyyy dates, decimal commas, lab values below a detection limit.

Sector databases often store these as text the way they are written in Vietnam (DOMAIN.md §7):
"." groups thousands and "," marks decimals ("1.250,5", "30.000", "0,005"), and dates are
dd/mm/yyyy. Every parser here fails on text it cannot read, naming the column, the row (within the
batch) and the value: a guess would put a wrong number in a published dataset.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from datetime import date
from typing import Any

import pyarrow as pa

_DATE = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})")
_NUMBER = re.compile(r"[+-]?(?:\d{1,3}(?:\.\d{3})+|\d+)(?:,\d+)?")
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
    batch: pa.RecordBatch, *, columns: Sequence[str], target_suffix: str | None = None
) -> pa.RecordBatch:
    """Turn 'dd/mm/yyyy' text into date32, in place or into ``<column><target_suffix>`` next to the text.

    Blank text becomes null; columns that already hold dates pass through.
    """
    _check_columns("parse_date_dmy", batch, columns)
    updates: dict[str, list[tuple[str, pa.Array]]] = {}
    for name in columns:
        col = batch.column(name)
        if pa.types.is_date(col.type):
            parsed = col.cast(pa.date32())
        else:

            def parse(value: Any, row: int, name: str = name) -> date | None:
                text = _text(value)
                if text is None:
                    return None
                try:
                    return parse_dmy(text)
                except ValueError as exc:
                    raise _fail("parse_date_dmy", name, row, value, str(exc)) from None

            parsed = pa.array(_parse_each(col, parse), pa.date32())
        updates[name] = [(name, col), (name + target_suffix, parsed)] if target_suffix else [(name, parsed)]
    return _replace(batch, updates)


# -- numbers --------------------------------------------------------------------------------------


def parse_vn_number(text: str) -> float:
    """One number written the Vietnamese way: '1.250,5' -> 1250.5, '30.000' -> 30000.0, '0,005' -> 0.005.

    A dot must group exactly three digits, so '1.5' (an English decimal point?) is rejected, not guessed.
    """
    compact = text.strip()
    if not _NUMBER.fullmatch(compact):
        raise ValueError("is not a number written with '.' for thousands and ',' for decimals")
    return float(compact.replace(".", "").replace(",", "."))


def _number_parser(transform: str, name: str) -> Callable[[Any, int], float | None]:
    def parse(value: Any, row: int) -> float | None:
        text = _text(value)
        if text is None:
            return None
        try:
            return parse_vn_number(text)
        except ValueError as exc:
            raise _fail(transform, name, row, value, str(exc)) from None

    return parse


def parse_decimal_comma(batch: pa.RecordBatch, *, columns: Sequence[str]) -> pa.RecordBatch:
    """Turn decimal-comma text ('1.250,5', '0,005', '30.000') into float64; numeric columns are cast."""
    _check_columns("parse_decimal_comma", batch, columns)
    updates: dict[str, list[tuple[str, pa.Array]]] = {}
    for name in columns:
        col = batch.column(name)
        if pa.types.is_integer(col.type) or pa.types.is_floating(col.type) or pa.types.is_decimal(col.type):
            parsed = col.cast(pa.float64())
        else:
            parsed = pa.array(_parse_each(col, _number_parser("parse_decimal_comma", name)), pa.float64())
        updates[name] = [(name, parsed)]
    return _replace(batch, updates)


def non_negative(batch: pa.RecordBatch, *, columns: Sequence[str]) -> pa.RecordBatch:
    """Check that numeric columns hold no negative value (a flow or an area cannot be below zero).

    Run after the sentinel transform: -9999 "no reading" markers would fail here.
    """
    _check_columns("non_negative", batch, columns)
    for name in columns:
        col = batch.column(name)
        if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type) or pa.types.is_decimal(col.type)):
            raise TypeError(f"non_negative: column {name!r} has type {col.type}, expected a number")
        for row, value in enumerate(col.to_pylist()):
            if value is not None and value < 0:
                raise _fail("non_negative", name, row, value, "is negative")
    return batch


# -- detection limits -----------------------------------------------------------------------------


def parse_lab_value(text: str) -> tuple[float | None, bool, float | None]:
    """One lab result: (value, below the detection limit?, the limit).

    '0,12' -> (0.12, False, None); '<0,05' -> (None, True, 0.05); 'KPH' -> (None, True, None).
    """
    compact = text.strip()
    if compact.lower() in _NOT_DETECTED:
        return None, True, None
    m = _BELOW.fullmatch(compact)
    if m:
        limit = parse_vn_number(m.group(1))
        if limit < 0:
            raise ValueError("has a negative detection limit")
        return None, True, limit
    return parse_vn_number(compact), False, None


def detection_limit(batch: pa.RecordBatch, *, columns: Sequence[str]) -> pa.RecordBatch:
    """Split lab values such as '<0,05' into a number, a below-limit flag and the limit.

    The value column becomes float64 and is null when below the limit (never the limit, half of it or
    zero); ``<column>_below_dl`` (bool) and ``<column>_dl`` (float64, the limit when stated) follow it.
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
                    return parse_lab_value(text)
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
