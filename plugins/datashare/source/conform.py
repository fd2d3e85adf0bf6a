"""The type contract, both ways: source values become the contract's Arrow types exactly, or are named.

Every value on its way to Arrow passes here: rows the SQLAlchemy path reads (SQLite, PostgreSQL
through psycopg, MariaDB through PyMySQL), the Arrow batches of the fast readers (checked, and sent
back to the SQLAlchemy path when something does not fit, so one place names values) and the
transform stage's final cast. Nothing is cast by truncation or wrap-around; a value the contract's
type cannot hold exactly is a *problem* naming column and value, and the caller either fails the run
or quarantines the row (:mod:`datashare.source.extract`, :mod:`datashare.pipeline.transform`).

What each type holds exactly (docs/types.md):

- ``integer``: 64-bit integers; a fraction, NaN, a value beyond ±9.2e18 or text is a problem.
- ``number``: finite doubles whose shortest decimal form is the source value: 0.1 and 1250.5 are
  held, 12345678901234567890.123 (more digits than a double keeps), NaN, ±infinity and text are not.
- ``decimal``: exact decimals of the column's precision and scale (also plain decimal text, the way
  SQLite keeps what a double cannot); more fraction digits are never rounded.
- ``boolean``: true/false, or the integers 0 and 1 (SQLite, MariaDB's TINYINT booleans).
- ``string``: text (no bytes, no NUL character, which PostgreSQL cannot store).
- ``date`` and ``datetime``: years 1 to 9999 (what Python, the drivers and ISO 8601 agree on), to the
  microsecond. Naive source timestamps are wall time in the column's ``timezone``; a value with an
  offset is the instant it names, converted to that zone's wall time (``publish_time: local``) or
  published in UTC (``publish_time: utc``), so one convention holds for every value of a column.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Context, Decimal, InvalidOperation, localcontext
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.compute as pc

from datashare.exceptions import ContractError
from datashare.spec import Column, ColumnType, DatasetSpec

YEARS = (1, 9999)
"""Years a date or timestamp of the contract may have."""
_EPOCH = datetime(1970, 1, 1)
_MIN_US = (datetime(YEARS[0], 1, 1) - _EPOCH) // timedelta(microseconds=1)
_MAX_US = (datetime(YEARS[1], 12, 31, 23, 59, 59, 999999) - _EPOCH) // timedelta(microseconds=1)
_MIN_DAY = (date(YEARS[0], 1, 1) - _EPOCH.date()).days
_MAX_DAY = (date(YEARS[1], 12, 31) - _EPOCH.date()).days
INT64 = (-(2**63), 2**63 - 1)

_DECIMAL_TEXT = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_DATE_TEXT = re.compile(r"(?P<year>\d{4,})-\d{2}-\d{2}")
_DATETIME_TEXT = re.compile(
    r"(?P<year>\d{4,})-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2}(?:\.(?P<fraction>\d+))?)?)?"
    r"(?P<offset>Z|[+-]\d{2}(?::?\d{2}(?::?\d{2})?)?)?"
)
_WIDE = Context(prec=100)


class Unreadable(str):
    """A source value its driver could not turn into a Python value, kept as its text with the reason.

    PostgreSQL's ``'infinity'`` and dates beyond year 9999 (psycopg refuses them), text that is not
    UTF-8 in SQLite: the value still reaches :func:`conform_values`, which names it.
    """

    reason: str

    def __new__(cls, text: str, reason: str) -> Unreadable:
        obj = super().__new__(cls, text)
        obj.reason = reason
        return obj


def unreadable_time(text: str) -> Unreadable:
    """A date or timestamp text the driver refused, with why (infinite, or outside years 1–9999)."""
    if "infinity" in text.lower():
        return Unreadable(text, "is infinite: no date or time the contract can hold")
    return Unreadable(text, f"is outside the years {YEARS[0]}–{YEARS[1]} the contract can hold")


class Problem(ValueError):
    """Why one value does not fit (raised by the converters, collected per row)."""


@dataclass(frozen=True)
class Contract:
    """What one column must hold: its logical type, Arrow type and, for timestamps, the time-zone rule."""

    name: str
    kind: ColumnType
    zone_name: str | None = None
    utc: bool = False
    precision: int | None = None
    scale: int | None = None

    @classmethod
    def of(cls, column: Column, *, source: bool = False) -> Contract:
        """The contract of a column as published, or (``source``) as read from the source."""
        kind = (column.source_type or column.type) if source else column.type
        temporal = kind == ColumnType.datetime
        return cls(
            name=column.name,
            kind=kind,
            zone_name=column.zone if temporal else None,
            utc=column.utc if temporal else False,
            precision=column.precision if kind == ColumnType.decimal else None,
            scale=column.scale if kind == ColumnType.decimal else None,
        )

    @cached_property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.zone_name or "UTC")

    @property
    def arrow(self) -> pa.DataType:
        """The Arrow type values of this column are staged and published as."""
        if self.kind == ColumnType.decimal:
            assert self.precision is not None and self.scale is not None  # the spec requires both for decimals
            return pa.decimal128(self.precision, self.scale)
        if self.kind == ColumnType.datetime and self.utc:
            return pa.timestamp("us", tz="UTC")
        return ARROW[self.kind]


ARROW: dict[ColumnType, pa.DataType] = {  # the types that take no detail (decimals and UTC do: Contract.arrow)
    ColumnType.string: pa.string(),
    ColumnType.integer: pa.int64(),
    ColumnType.number: pa.float64(),
    ColumnType.boolean: pa.bool_(),
    ColumnType.date: pa.date32(),
    ColumnType.datetime: pa.timestamp("us"),
}


def show(value: Any) -> str:
    """A value as an engineer reads it in an error or a quarantine reason."""
    if isinstance(value, Unreadable):
        return repr(str(value))
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    return repr(value)


# -- one value --------------------------------------------------------------------------------------


def _kind_name(value: Any) -> str:
    names = {str: "text", bytes: "binary data", bool: "a boolean", float: "a floating-point number", int: "an integer"}
    return names.get(type(value), f"a {type(value).__name__}")


def _unreadable(value: Any) -> None:
    if isinstance(value, Unreadable):
        raise Problem(value.reason)


def _in_int64(value: int) -> int:
    if not INT64[0] <= value <= INT64[1]:
        raise Problem("is beyond the 64-bit integer range")
    return value


def to_integer(value: Any) -> int:
    """An integer the contract holds exactly, or :class:`Problem`."""
    if type(value) is int:
        return _in_int64(value)
    _unreadable(value)
    if isinstance(value, bool):
        raise Problem("is a boolean, not an integer")
    if isinstance(value, int):
        return _in_int64(int(value))
    if isinstance(value, float | Decimal):
        if not (math.isfinite(value) if isinstance(value, float) else value.is_finite()):
            raise Problem("is not a finite number")
        if abs(Decimal(value)) >= 2**63 + 1:  # before int(): a numeric of 10^131072 would make a huge int
            raise Problem("is beyond the 64-bit integer range")
        if value != int(value):
            raise Problem("has a fraction: an integer column cannot hold it")
        return _in_int64(int(value))
    raise Problem(f"is {_kind_name(value)}, not an integer")


def _decimal(value: Any, what: str, *, text: bool = False) -> Decimal:
    """A finite Decimal of a numeric source value; ``text``: also a plain decimal literal in text."""
    _unreadable(value)
    if isinstance(value, bool):
        raise Problem(f"is a boolean, not {what}")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        if math.isnan(value):
            raise Problem("is NaN (not a number)")
        if math.isinf(value):
            raise Problem("is infinite")
        return Decimal(repr(value))
    if isinstance(value, Decimal):
        if value.is_nan():
            raise Problem("is NaN (not a number)")
        if value.is_infinite():
            raise Problem("is infinite")
        return value
    if isinstance(value, str) and text and _DECIMAL_TEXT.fullmatch(value):
        return Decimal(value)
    raise Problem(f"is {_kind_name(value)}, not {what}")


def to_number(value: Any) -> float:
    """A double whose shortest decimal form is the source value, or :class:`Problem`."""
    if type(value) is float and math.isfinite(value):
        return value
    exact = _decimal(value, "a number")
    with localcontext(_WIDE):
        try:
            result = float(exact)
        except OverflowError:  # pragma: no cover - float(Decimal) gives inf rather than raising
            result = math.inf
        if not math.isfinite(result):
            raise Problem("is beyond the range of a double")
        if Decimal(repr(result)) != exact:
            raise Problem(
                f"has more digits than a double holds exactly (it would read {result!r}); declare the column decimal"
            )
    return result


def to_decimal(value: Any, precision: int, scale: int) -> Decimal:
    """A decimal of ``precision`` digits, ``scale`` of them after the point, equal to the value; or :class:`Problem`."""
    exact = _decimal(value, "a decimal number", text=True)  # SQLite keeps exact decimals as text
    with localcontext(_WIDE):
        try:
            fixed = exact.quantize(Decimal(1).scaleb(-scale))
        except InvalidOperation:
            raise Problem(f"has more than {precision} digits") from None
        if fixed != exact:
            raise Problem(f"has more than {scale} digits after the decimal point (never rounded)")
        digits = len(fixed.as_tuple().digits)
        if digits > precision and fixed != 0:
            raise Problem(f"has more than {precision - scale} digits before the decimal point")
    return fixed


def to_boolean(value: Any) -> bool:
    """True or false (or the integers 0 and 1), or :class:`Problem`."""
    if type(value) is bool:
        return value
    _unreadable(value)
    if type(value) is int:
        if value in (0, 1):
            return bool(value)
        raise Problem("is an integer other than 0 and 1, not a boolean")
    raise Problem(f"is {_kind_name(value)}, not a boolean")


def to_string(value: Any) -> str:
    """Text without NUL characters, or :class:`Problem`."""
    _unreadable(value)
    if isinstance(value, str):
        if "\x00" in value:
            raise Problem("contains a NUL character, which PostgreSQL text cannot store")
        return value
    raise Problem(f"is {_kind_name(value)}, not text")


def to_date(value: Any) -> date:
    """A calendar date of years 1–9999, or :class:`Problem`."""
    if type(value) is date:
        return value
    _unreadable(value)
    if isinstance(value, datetime):
        raise Problem("is a timestamp, not a date")
    if isinstance(value, date):
        return date(value.year, value.month, value.day)
    if isinstance(value, str):
        match = _DATE_TEXT.fullmatch(value.strip())
        if not match:
            raise Problem("is not a date written YYYY-MM-DD")
        if int(match.group("year")) > YEARS[1]:
            raise Problem(f"is outside the years {YEARS[0]}–{YEARS[1]} the contract can hold")
        try:
            return date.fromisoformat(value.strip())
        except ValueError as exc:
            raise Problem(f"is not a real date ({exc})") from None
    raise Problem(f"is {_kind_name(value)}, not a date")


def _parse_timestamp(text: str) -> datetime:
    match = _DATETIME_TEXT.fullmatch(text.strip())
    if not match:
        raise Problem("is not a timestamp written YYYY-MM-DD HH:MM:SS[.ffffff][±HH:MM]")
    if int(match.group("year")) > YEARS[1]:
        raise Problem(f"is outside the years {YEARS[0]}–{YEARS[1]} the contract can hold")
    fraction = match.group("fraction") or ""
    if len(fraction) > 6 and fraction[6:].strip("0"):
        raise Problem("has digits below the microsecond, which the contract cannot hold")
    clean = text.strip()
    if len(fraction) > 6:
        clean = clean.replace("." + fraction, "." + fraction[:6], 1)
    try:
        return datetime.fromisoformat(clean)
    except ValueError as exc:
        raise Problem(f"is not a real timestamp ({exc})") from None


def to_datetime(value: Any, zone: ZoneInfo, utc: bool) -> datetime:
    """The value under the column's time-zone rule: naive wall time in ``zone``, or an aware UTC instant."""
    if type(value) is datetime and value.tzinfo is None and not utc:
        return value
    _unreadable(value)
    if isinstance(value, str):
        value = _parse_timestamp(value)
    elif not isinstance(value, datetime):
        raise Problem(f"is {'a date' if isinstance(value, date) else _kind_name(value)}, not a timestamp")
    try:
        if value.tzinfo is None:
            if not utc:
                return value
            instant = value.replace(tzinfo=zone)
            if instant.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != value:
                raise Problem(f"does not exist in {zone.key} (a clock change skips it)")
            if value.replace(fold=1, tzinfo=zone).utcoffset() != instant.utcoffset():
                raise Problem(f"is ambiguous in {zone.key} (a clock change repeats it)")
            return instant.astimezone(UTC)
        if utc:
            return value.astimezone(UTC)
        return value.astimezone(zone).replace(tzinfo=None)
    except OverflowError:
        raise Problem(f"is outside the years {YEARS[0]}–{YEARS[1]} once converted to {zone.key}") from None


def converter(contract: Contract) -> Callable[[Any], Any]:
    """The function that turns one non-null source value into the contract's value (or raises Problem)."""
    kind = contract.kind
    if kind == ColumnType.integer:
        return to_integer
    if kind == ColumnType.number:
        return to_number
    if kind == ColumnType.decimal:
        p, s = contract.precision, contract.scale
        return lambda v: to_decimal(v, p, s)  # type: ignore[arg-type]
    if kind == ColumnType.boolean:
        return to_boolean
    if kind == ColumnType.string:
        return to_string
    if kind == ColumnType.date:
        return to_date
    zone, utc = contract.zone, contract.utc
    return lambda v: to_datetime(v, zone, utc)


# -- many values --------------------------------------------------------------------------------------

_PLAIN: dict[ColumnType, type] = {
    ColumnType.integer: int,
    ColumnType.number: float,
    ColumnType.string: str,
    ColumnType.boolean: bool,
    ColumnType.date: date,
}


def _clean(values: list[Any], contract: Contract) -> bool:
    """Whether every value already is the contract's plain Python type (the common case, checked in bulk)."""
    kind = contract.kind
    if kind == ColumnType.datetime:
        return not contract.utc and all(v is None or (type(v) is datetime and v.tzinfo is None) for v in values)
    plain = _PLAIN.get(kind)
    return plain is not None and set(map(type, values)) <= {plain, type(None)}


def conform_values(values: list[Any], contract: Contract) -> tuple[pa.Array, dict[int, str]]:
    """Python values of one column as an Arrow array of the contract's type, and the problems by row.

    A value with a problem is null in the array; the problem names column and value.
    """
    target = contract.arrow
    if _clean(values, contract):
        try:
            array = pa.array(values, type=target)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            array = None  # an int beyond int64: the value-by-value pass names it
        if array is not None:
            bad = _bad_mask(array, contract)
            if bad is None:
                return array, {}
    convert = converter(contract)
    out: list[Any] = []
    problems: dict[int, str] = {}
    for row, value in enumerate(values):
        if value is None:
            out.append(None)
            continue
        try:
            out.append(convert(value))
        except Problem as exc:
            problems[row] = f"column {contract.name!r}: {show(value)} {exc}"
            out.append(None)
    return pa.array(out, type=target), problems


def _bad_mask(array: pa.Array, contract: Contract) -> pa.Array | None:
    """Rows of an array already of the contract's type that still break it (NaN, years beyond 9999...), or None."""
    t = array.type
    if pa.types.is_floating(t):
        bad = pc.invert(pc.is_finite(array))
    elif pa.types.is_timestamp(t):
        us = array.cast(pa.timestamp("us", tz=t.tz), safe=False).cast(pa.int64())
        bad = pc.or_(pc.less(us, _MIN_US), pc.greater(us, _MAX_US))
    elif pa.types.is_date32(t):
        days = array.view(pa.int32())
        bad = pc.or_(pc.less(days, _MIN_DAY), pc.greater(days, _MAX_DAY))
    elif pa.types.is_string(t) or pa.types.is_large_string(t):
        bad = pc.match_substring(array, "\x00")
    else:
        return None
    bad = pc.fill_null(bad, False)
    return bad if pc.any(bad).as_py() else None


def python_values(array: pa.Array) -> list[Any]:
    """An Arrow array as Python values; dates and timestamps Python cannot hold become :class:`Unreadable`."""
    t = array.type
    if not (pa.types.is_timestamp(t) or pa.types.is_date(t)):
        return array.to_pylist()
    raw = array.cast(pa.int64()) if pa.types.is_timestamp(t) else array.view(pa.int32())
    out: list[Any] = []
    for i, scalar in enumerate(array):
        try:
            out.append(scalar.as_py())
        except (OverflowError, ValueError):
            import numpy as np

            unit: Any = t.unit if pa.types.is_timestamp(t) else "D"  # numpy types units as literals
            text = str(np.datetime64(raw[i].as_py(), unit)).replace("T", " ")
            out.append(unreadable_time(text))
    return out


def conform_array(array: pa.Array, contract: Contract) -> tuple[pa.Array, dict[int, str]]:
    """An Arrow array as the contract's type, exactly, and the problems by row (see :func:`conform_values`).

    Arrays already of the contract's type, or of an integer or float type that widens exactly, are
    checked in bulk; anything else goes value by value, so every rule has one implementation.
    """
    target = contract.arrow
    t = array.type
    if pa.types.is_null(t):
        return pa.nulls(len(array), target), {}
    candidate = None
    if t.equals(target):
        candidate = array
    elif (pa.types.is_integer(t) and target == pa.int64()) or (pa.types.is_float32(t) and target == pa.float64()):
        try:
            candidate = array.cast(target, safe=True)
        except pa.ArrowInvalid:
            candidate = None
    if candidate is not None and _bad_mask(candidate, contract) is None:
        return candidate, {}
    return conform_values(python_values(array), contract)


def fits(array: pa.Array, contract: Contract) -> pa.Array | None:
    """``array`` as the contract's type when every value fits without a value-by-value pass, else None.

    The fast readers use it: None sends the source to the SQLAlchemy path, which names the values.
    """
    target = contract.arrow
    t = array.type
    if pa.types.is_null(t):
        return pa.nulls(len(array), target)
    if t.equals(target):
        candidate = array
    elif pa.types.is_integer(t) and target in (pa.int64(), pa.float64()):
        try:
            candidate = array.cast(target, safe=True)  # checks the range, and that a double holds the integer
        except pa.ArrowInvalid:
            return None
    else:
        return None
    return candidate if _bad_mask(candidate, contract) is None else None


# -- what becomes of problems ----------------------------------------------------------------------


def problems_column(spec: DatasetSpec) -> Column | None:
    """The computed column that collects source problems, if the spec has one."""
    return next((c for c in spec.columns if c.source_problems), None)


def _suite_quarantines(spec: DatasetSpec, column: str) -> bool:
    """Whether the dataset's suite expects ``column`` to be null, i.e. quarantines rows where it is not."""
    import json

    from datashare.settings import Settings

    path = Settings.from_env().expectations_dir / f"{spec.suite_name}.json"
    try:
        suite = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return any(
        e.get("type") == "expect_column_values_to_be_null" and (e.get("kwargs") or {}).get("column") == column
        for e in suite.get("expectations", [])
        if isinstance(e, dict)
    )


def settle_problems(
    spec: DatasetSpec,
    collector: Column | None,
    problems: dict[int, list[str]],
    rows: int,
    *,
    stage: str,
    where: Callable[[int], str],
) -> dict[int, str]:
    """The problem text of each row that has any, for the ``source_problems`` column; else :class:`ContractError`.

    ``collector`` is that column (:func:`problems_column` of the whole spec); ``stage`` prefixes each
    text (``source``, ``contract``), as a transform's name prefixes its own; ``where`` describes a row
    (its key) for the error.
    """
    if problems and (collector is None or not _suite_quarantines(spec, collector.name)):
        first = min(problems)
        how = (
            "declare a computed string column with source_problems: true and a suite rule "
            "expect_column_values_to_be_null on it to quarantine such rows"
            if collector is None
            else f"the suite has no rule expect_column_values_to_be_null on {collector.name!r}, so the rows "
            "cannot be quarantined"
        )
        when = {"source": "as read from the source", "contract": "after the transforms"}.get(stage, stage)
        raise ContractError(
            f"{spec.id}: {len(problems)} row(s) of {rows} hold values the contract's types cannot hold exactly "
            f"({when}); {where(first)}: {problems[first][0]}. Nothing was published: fix the value at the source, "
            f"or {how}."
        )
    return {row: "; ".join(f"{stage}: {p}" for p in found) for row, found in problems.items()}
