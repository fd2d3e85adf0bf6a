"""Administrative unit codes resolved as of a record's date, and mapped to the units of 1 July 2025.

Decision 19/2025/QĐ-TTg replaced the code table on 1 July 2025 (34 provinces, no districts) and new
units inherit old codes: 15 was Yên Bái and is now Lào Cai (DOMAIN.md §6). A code therefore names a
unit only together with a date, and a record is checked against the unit valid on the record's date.

The reference is a small table of units (code, name, level, valid_from, valid_to; inclusive dates,
null meaning open) and of successors (old code -> post-2025 code, each marked confirmed or not). The
bundled one is ``transforms/data/admin_units.json``; specs may pass another as a JSON or CSV path or
as the same structure inline.
"""

from __future__ import annotations

import csv
import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

BUNDLED = Path(__file__).resolve().parent / "data" / "admin_units.json"


@dataclass(frozen=True)
class Unit:
    """One administrative unit for the period its code denoted it."""

    code: str
    name: str
    level: str
    valid_from: date | None
    """First day the code denoted this unit; None when earlier than the table records."""
    valid_to: date | None
    """Last day; None while the unit exists."""
    confirmed: bool

    def valid_on(self, day: date) -> bool:
        return (self.valid_from is None or self.valid_from <= day) and (self.valid_to is None or day <= self.valid_to)

    def period(self) -> str:
        return f"{self.valid_from or '…'} to {self.valid_to or 'now'}"


@dataclass(frozen=True)
class Reference:
    """Units by code, and the post-2025 successor of each retired unit keyed by (old code, level)."""

    name: str
    units: dict[str, tuple[Unit, ...]]
    successors: dict[tuple[str, str], tuple[str, bool]]


def _day(value: Any) -> date | None:
    if value in (None, ""):
        return None
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def _flag(value: Any) -> bool:
    return value if isinstance(value, bool) else str(value).strip().lower() in ("true", "1", "yes")


def build_reference(data: Mapping[str, Any], name: str = "inline reference") -> Reference:
    """A Reference from the structure of ``admin_units.json``; ValueError naming the entry at fault."""
    units: dict[str, list[Unit]] = {}
    for i, row in enumerate(data.get("units", [])):
        try:
            unit = Unit(
                code=str(row["code"]),
                name=str(row["name"]),
                level=str(row.get("level", "")),
                valid_from=_day(row.get("valid_from")),
                valid_to=_day(row.get("valid_to")),
                confirmed=_flag(row.get("confirmed", False)),
            )
        except (KeyError, ValueError) as exc:
            raise ValueError(f"{name}: unit #{i} ({row!r}) is malformed: {exc}") from None
        for other in units.get(unit.code, []):
            if other.level == unit.level and _overlap(other, unit):
                raise ValueError(f"{name}: code {unit.code!r} has overlapping periods ({other.name}, {unit.name})")
        units.setdefault(unit.code, []).append(unit)
    successors: dict[tuple[str, str], tuple[str, bool]] = {}
    for row in data.get("successors", []):
        successors[(str(row["old"]), str(row.get("level", "")))] = (str(row["new"]), _flag(row.get("confirmed", False)))
    for row in data.get("units", []):  # CSV form: the successor in the unit's row
        if row.get("successor"):
            key = (str(row["code"]), str(row.get("level", "")))
            successors[key] = (str(row["successor"]), _flag(row.get("successor_confirmed", False)))
    return Reference(name, {code: tuple(us) for code, us in units.items()}, successors)


def _overlap(a: Unit, b: Unit) -> bool:
    return (a.valid_to is None or b.valid_from is None or b.valid_from <= a.valid_to) and (
        b.valid_to is None or a.valid_from is None or a.valid_from <= b.valid_to
    )


@functools.lru_cache(maxsize=8)
def _load_file(path: str, mtime: float) -> Reference:
    source = Path(path)
    if source.suffix.lower() == ".csv":
        with source.open(encoding="utf-8", newline="") as f:
            return build_reference({"units": list(csv.DictReader(f))}, name=str(source))
    return build_reference(json.loads(source.read_text(encoding="utf-8")), name=str(source))


def load_reference(reference: str | Path | Mapping[str, Any] | None = None) -> Reference:
    """The reference: the bundled file when None, the structure itself, or a JSON or CSV path.

    A relative path is looked up from the working directory, then in ``transforms/data/``.
    ValueError (which the transform stage reports with the transform's name) when it is not found.
    """
    if isinstance(reference, Mapping):
        return build_reference(reference)
    path = Path(reference) if reference is not None else BUNDLED
    if not path.is_file() and not path.is_absolute() and (BUNDLED.parent / path).is_file():
        path = BUNDLED.parent / path
    if not path.is_file():
        raise ValueError(f"admin unit reference {str(path)!r} not found")
    return _load_file(str(path.resolve()), path.stat().st_mtime)


def pre_2025_province_codes() -> frozenset[str]:
    """The 63 province codes in use before 1 July 2025, from the bundled reference."""
    ref = load_reference()
    return frozenset(
        u.code for units in ref.units.values() for u in units if u.level == "province" and u.valid_to is not None
    )


def _as_day(value: Any) -> date | None:
    return value.date() if isinstance(value, datetime) else value


def _pick(units: tuple[Unit, ...], day: date) -> Unit:
    """The unit closest in time: the latest that ended before ``day``, else the earliest that starts after it."""
    before = [u for u in units if u.valid_to is not None and u.valid_to < day]
    if before:
        return max(before, key=lambda u: u.valid_to)  # type: ignore[arg-type, return-value]
    return min(units, key=lambda u: u.valid_from or date.min)


def resolve_admin_code(
    batch: pa.RecordBatch,
    *,
    column: str,
    date_column: str,
    new_column: str,
    reference: str | Mapping[str, Any] | None = None,
    level: str | None = None,
    allow_other_period: bool = False,
    confirmed_only: bool = False,
    confirmed_column: str | None = None,
) -> pa.RecordBatch:
    """Check each code against the unit valid on the record's date and add its post-2025 code.

    Args:
        column: the code column (text: codes keep their leading zeros).
        date_column: the record's date (date or timestamp).
        new_column: added column with the post-2025 code; null where no successor is known.
        reference: the reference (see ``load_reference``); the bundled file when omitted.
        level: consider only units of this level ('province', 'commune', 'ward').
        allow_other_period: accept a code that was valid at another time than the record's date
            (a record that still uses a retired code) and map it from the nearest period.
        confirmed_only: use only confirmed units and successors.
        confirmed_column: if set, added bool column telling whether the mapping used is confirmed.

    Raises:
        ValueError: a code that is in no period of the reference, a code not valid on the record's
            date (unless ``allow_other_period``), or a missing date; naming row, code and date.
    """
    for name in (column, date_column):
        if name not in batch.schema.names:
            raise KeyError(f"resolve_admin_code: column {name!r} not in the data")
    codes = batch.column(column)
    if not (pa.types.is_string(codes.type) or pa.types.is_large_string(codes.type)):
        raise TypeError(f"resolve_admin_code: column {column!r} has type {codes.type}; codes must be text")
    days = batch.column(date_column)
    if not (pa.types.is_date(days.type) or pa.types.is_timestamp(days.type)):
        raise TypeError(
            f"resolve_admin_code: column {date_column!r} has type {days.type}; parse it to a date first "
            "(transform parse_date_dmy)"
        )
    for added in (new_column, confirmed_column):
        if added and added in batch.schema.names:
            raise ValueError(f"resolve_admin_code: column {added!r} already exists")
    ref = load_reference(reference)
    new_codes: list[str | None] = []
    confirmed: list[bool | None] = []
    for row, (code, raw_day) in enumerate(zip(codes.to_pylist(), days.to_pylist(), strict=True)):
        if code is None:
            new_codes.append(None)
            confirmed.append(None)
            continue
        where = f"resolve_admin_code: column {column!r}, row {row}: code {code!r}"
        day = _as_day(raw_day)
        if day is None:
            raise ValueError(f"{where} has no date in {date_column!r} to check it against")
        units = tuple(
            u
            for u in ref.units.get(code, ())
            if (level is None or u.level == level) and (u.confirmed or not confirmed_only)
        )
        if not units:
            raise ValueError(f"{where} (dated {day}) never existed: it is not in {ref.name}")
        valid = [u for u in units if u.valid_on(day)]
        if not valid and not allow_other_period:
            periods = "; ".join(f"{u.name} {u.period()}" for u in units)
            raise ValueError(f"{where} was not in use on {day} (in use: {periods})")
        unit = valid[0] if valid else _pick(units, day)
        new: str | None
        if unit.valid_to is None:
            new, sure = unit.code, unit.confirmed
        else:
            new, sure = ref.successors.get((unit.code, unit.level), (None, False))
        if new is not None and confirmed_only and not sure:
            new = None
        new_codes.append(new)
        confirmed.append(sure if new is not None else None)
    out = batch.append_column(new_column, pa.array(new_codes, pa.string()))
    if confirmed_column:
        out = out.append_column(confirmed_column, pa.array(confirmed, pa.bool_()))
    return out
