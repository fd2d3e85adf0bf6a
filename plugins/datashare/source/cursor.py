"""Typed cursors: the newest source value an incremental dataset has released, compared as its type.

A cursor travels as text (XCom, the manifest's ``source_cursor``), but it is never compared as
text: ``max("999", "1500") == "999"``. Every comparison parses the text as the cursor column's
type first: integers and decimals as numbers, dates and timestamps as time. The manifest records
the type beside the text (``source_cursor_type``) so a release reads back exactly even if the spec
changes; manifests written before that field existed are typed by the spec's cursor column.

Timestamps: the text of a ``publish_time: local`` column is naive wall time in the column's zone;
a ``utc`` column's carries ``+00:00``. Bound into a query, a cursor is always wall time in the
column's zone (the source's naive values are in that zone; PostgreSQL sessions are set to it so a
``timestamptz`` column compares the same instant).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from datashare.exceptions import ContractError
from datashare.spec import Column, ColumnType, DatasetSpec

TYPE_FIELD = "source_cursor_type"
"""Manifest field (in the ``datashare`` section) beside ``source_cursor``: the cursor's type."""


def cursor_column(spec: DatasetSpec) -> Column | None:
    """The spec's cursor column, None for snapshot datasets."""
    if spec.mode.cursor is None:
        return None
    return next(c for c in spec.columns if c.name == spec.mode.cursor)


def _kind(column: Column) -> ColumnType:
    return column.source_type or column.type


def parse(text: str, column: Column, *, zone: str | None = None) -> Any:
    """The typed value of a cursor text; ``zone`` says which zone naive timestamp text is in (default: the column's).

    Raises :class:`ContractError` naming the column and the text when it is not a value of the type.
    """
    kind = _kind(column)
    try:
        if kind == ColumnType.integer:
            if text.strip().lstrip("+-").isdigit():
                return int(text)
            raise ValueError("not an integer")
        if kind == ColumnType.decimal:
            value = Decimal(text)
            if not value.is_finite():
                raise ValueError("not a finite decimal")
            return value
        if kind == ColumnType.number:
            number = float(text)
            if not math.isfinite(number):
                raise ValueError("not a finite number")
            return number
        if kind == ColumnType.date:
            return date.fromisoformat(text)
        if kind == ColumnType.datetime:
            return _timestamp(datetime.fromisoformat(text), column, ZoneInfo(zone or column.zone))
    except (ValueError, InvalidOperation) as exc:
        raise ContractError(f"cursor of column {column.name!r}: {text!r} is not of type {kind.value} ({exc})") from None
    return text


def _timestamp(value: datetime, column: Column, zone: ZoneInfo) -> datetime:
    """A timestamp under the column's rule: aware UTC for ``utc`` columns, else naive wall time in its zone."""
    instant = value if value.tzinfo is not None else value.replace(tzinfo=zone)
    if column.utc:
        return instant.astimezone(UTC)
    if value.tzinfo is None and zone.key == column.zone:
        return value
    return instant.astimezone(ZoneInfo(column.zone)).replace(tzinfo=None)


def text(value: Any) -> str:
    """The exact text of a typed cursor value (parses back to an equal value)."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, float):
        return repr(value)
    return str(value)


def newest(column: Column | None, texts: Iterable[str | None]) -> str | None:
    """The greatest of the cursor texts, compared as the column's type (None when there are none)."""
    present = [t for t in texts if t is not None]
    if column is None or not present:
        return None
    return text(max(parse(t, column) for t in present))


def stored(spec: DatasetSpec, section: Mapping[str, Any]) -> str | None:
    """The cursor a release's manifest stored, as text of the spec's cursor column as it is now.

    ``section`` is the manifest's ``datashare`` section. Without a recorded type (older releases) the
    text is typed by the spec; with one, by that type, then checked against the spec's column.
    """
    column = cursor_column(spec)
    raw = section.get("source_cursor")
    if column is None or raw is None:
        return None
    recorded = section.get(TYPE_FIELD)
    zone = None
    if isinstance(recorded, Mapping):
        if recorded.get("type") not in (None, _kind(column).value):
            try:
                return text(parse(str(raw), column))
            except ContractError:
                raise ContractError(
                    f"{spec.id}: the latest release's cursor {raw!r} is a {recorded.get('type')}, but the spec's "
                    f"cursor column {column.name!r} is now {_kind(column).value}; it cannot be compared"
                ) from None
        zone = recorded.get("timezone")
    return text(parse(str(raw), column, zone=zone))


def type_record(spec: DatasetSpec) -> dict[str, Any] | None:
    """What the manifest records as ``source_cursor_type``: the type, and the zone naive timestamps are in."""
    column = cursor_column(spec)
    if column is None:
        return None
    record: dict[str, Any] = {"type": _kind(column).value}
    if _kind(column) == ColumnType.datetime:
        record["timezone"] = column.zone
    return record


def bind_value(value: Any, column: Column) -> Any:
    """A typed cursor as the query binds it: timestamps as naive wall time in the column's zone."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(ZoneInfo(column.zone)).replace(tzinfo=None)
    return value


def session_zone(spec: DatasetSpec) -> str | None:
    """The zone a PostgreSQL session reading this dataset is set to: its timestamp cursor's, if it has one."""
    column = cursor_column(spec)
    if column is not None and _kind(column) == ColumnType.datetime:
        return column.zone
    return None
