"""Simulated database of the water-resources unit: extraction licences and groundwater monitoring.

Tables `licences` (water extraction licences), `wells` (national monitoring wells and licensed
production wells) and `well_levels` (one water-level reading a well a day, 07:00 local time).
The dirt a real register carries (DOMAIN.md §4, §7):

- about 10% of licence holders stored as TCVN3 or VNI mojibake (`units.legacy_text`);
- `max_flow` is text in m³/day with "." between thousands and a decimal comma ("1.250,5"); about
  1% of values are negative or garbage ("-5", "N/A", "khoảng 500");
- `issued_on` and `expires_on` are dd/mm/yyyy text; 0.5% of licences carry an impossible date
  such as 31/02/2024 (both kinds placed exactly: 2 and 1 in every 200 licences);
- about 2% of well-days have no reading, and about 1% of readings were entered days late. The
  database holds a reading only once it was entered: a late reading whose entry time lies past the
  generated period is pending, and a later `append_day` adds it on the day it is entered, so an
  `updated_at` cursor never skips it.

Licences and wells are drawn from RNGs seeded by (seed, index), readings by (seed, well, day), so
a day added by `append_day` equals the same day of a longer `generate`.

    python -m units.water_resources generate --url sqlite:///var/water.db --scale 0.1 --days 30
    python -m units.water_resources append-day --url sqlite:///var/water.db
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import sqlalchemy as sa

from units._common import (
    PROVINCES,
    ChunkWriter,
    check_scale,
    recreate,
    require_rows,
    safe_url,
    scaled,
    seeded_rng,
    vn_date,
    vn_number,
)
from units.legacy_text import encode_tcvn3, encode_vni

log = logging.getLogger(__name__)

LICENCES_AT_SCALE_1 = 2000
WELLS_AT_SCALE_1 = 300
AS_OF = dt.date(2026, 11, 1)  # the day the register's statuses are true for
MOJIBAKE_RATE = 0.10
DIRT_BLOCK = 200  # licences per block; each block has exactly 2 bad flows (1%) and 1 bad date (0.5%)
MISSING_READING_RATE = 0.02
LATE_ENTRY_RATE = 0.01
LATE_ENTRY_MAX_DAYS = 21  # a late reading is entered 1-20 days and a few hours after it was taken

_TAG_LICENCE, _TAG_WELL, _TAG_LEVEL, _TAG_DIRT = 1, 2, 3, 4
_BAD_FLOWS = ("-5", "-120,5", "N/A", "khoảng 500", "1.2.3", "12,5,0", "")
_BAD_DATES = ("31/02/2024", "30/02/2023", "31/04/2022", "31/06/2021", "29/02/2023", "00/01/2020")

metadata = sa.MetaData()

licences_table = sa.Table(
    "licences",
    metadata,
    sa.Column("licence_no", sa.String(30), primary_key=True),
    sa.Column("holder", sa.String(300), nullable=False),
    sa.Column("province_code", sa.CHAR(2), nullable=False),
    sa.Column("water_kind", sa.String(10), nullable=False),
    sa.Column("max_flow", sa.Text),
    sa.Column("issued_on", sa.Text),
    sa.Column("expires_on", sa.Text),
    sa.Column("status", sa.String(10), nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    mysql_charset="utf8mb4",
    mysql_collate="utf8mb4_bin",
)

wells_table = sa.Table(
    "wells",
    metadata,
    sa.Column("well_code", sa.String(16), primary_key=True),
    sa.Column("licence_no", sa.String(30)),
    sa.Column("province_code", sa.CHAR(2), nullable=False),
    sa.Column("depth_m", sa.Double, nullable=False),
    sa.Column("lat", sa.Double, nullable=False),
    sa.Column("lon", sa.Double, nullable=False),
    mysql_charset="utf8mb4",
    mysql_collate="utf8mb4_bin",
)

well_levels_table = sa.Table(
    "well_levels",
    metadata,
    sa.Column("well_code", sa.String(16), primary_key=True),
    sa.Column("observed_at", sa.DateTime, primary_key=True),
    sa.Column("level_m", sa.Double, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    sa.Index("ix_well_levels_updated_at", "updated_at"),
    mysql_charset="utf8mb4",
    mysql_collate="utf8mb4_bin",
)

# Holder names by water kind: (template, share). {p} is the province name, {n} a company name.
_HOLDERS: dict[bool, tuple[tuple[str, int], ...]] = {
    True: (
        ("Công ty Cổ phần Cấp nước {p}", 3),
        ("Công ty TNHH MTV Kinh doanh nước sạch {p}", 2),
        ("Công ty TNHH {n} Việt Nam", 2),
        ("Ban Quản lý các khu công nghiệp {p}", 1),
        ("Công ty Cổ phần Nước giải khát {n}", 1),
        ("Công ty TNHH Thủy sản {n}", 1),
        ("Trung tâm Nước sạch và Vệ sinh môi trường nông thôn {p}", 1),
    ),
    False: (
        ("Công ty Cổ phần Cấp nước {p}", 3),
        ("Công ty Cổ phần Thủy điện {n}", 3),
        ("Công ty TNHH {n} Việt Nam", 1),
        ("Công ty Cổ phần Nhiệt điện {n}", 1),
        ("Ban Quản lý các khu công nghiệp {p}", 1),
        ("Công ty TNHH Thủy sản {n}", 1),
    ),
}
_HOLDER_P = {k: np.array([w for _, w in v], dtype=float) / sum(w for _, w in v) for k, v in _HOLDERS.items()}
_NAMES = (
    "Sông Đà",
    "Hòa Bình",
    "Thái Bình Dương",
    "Đông Á",
    "Hưng Phát",
    "Trường Sơn",
    "Miền Trung",
    "Phú Mỹ",
    "Tân Hiệp",
    "Vĩnh Hảo",
    "Bình An",
    "Đại Dương",
    "Sài Gòn Xanh",
    "Hoàng Long",
)


@dataclass
class WaterResourcesSummary:
    """What a run wrote and the dirt it planted."""

    licences: int = 0
    wells: int = 0
    level_rows: int = 0
    mojibake_tcvn3: int = 0
    mojibake_vni: int = 0
    bad_flows: int = 0
    bad_dates: int = 0
    missing_readings: int = 0
    late_entries: int = 0
    pending_entries: int = 0
    """Late readings not entered yet at the end of the period (left out, added by a later append_day)."""
    first_observed_at: dt.datetime | None = None
    last_observed_at: dt.datetime | None = None


@dataclass(frozen=True)
class _Licence:
    row: dict[str, Any]
    kind: str  # "clean", "tcvn3" or "vni" for the holder
    bad_flow: bool
    bad_date: bool


@functools.lru_cache(maxsize=256)
def _dirty_positions(seed: int, block: int) -> tuple[frozenset[int], frozenset[int]]:
    """Licences of a block with a bad flow and with a bad date, placed exactly so small scales show both."""
    positions = (seeded_rng(seed, _TAG_DIRT, block).permutation(DIRT_BLOCK) + block * DIRT_BLOCK).tolist()
    return frozenset(positions[:2]), frozenset(positions[2:3])


def _licence(seed: int, index: int) -> _Licence:
    """Licence number `index + 1`, from its own RNG."""
    rng = seeded_rng(seed, _TAG_LICENCE, index)
    province = PROVINCES[int(rng.integers(len(PROVINCES)))]
    ground = bool(rng.random() < 0.55)
    template = _HOLDERS[ground][int(rng.choice(len(_HOLDERS[ground]), p=_HOLDER_P[ground]))][0]
    holder = template.format(p=province.name, n=_NAMES[int(rng.integers(len(_NAMES)))])
    issued = dt.date(2012, 1, 1) + dt.timedelta(days=int(rng.integers(0, (AS_OF - dt.date(2012, 1, 1)).days)))
    years = int(rng.choice([5, 10]) if ground else rng.choice([10, 15]))
    expires = (
        issued.replace(year=issued.year + years)
        if (issued.month, issued.day) != (2, 29)
        else dt.date(issued.year + years, 3, 1)
    )
    flow = float(rng.lognormal(math.log(1500 if ground else 20000), 1.0))
    flow = max(flow, 20.0)
    flow_text = vn_number(flow, 1) if rng.random() < 0.4 else vn_number(round(flow, -1 if flow < 1e4 else -2))
    status = "revoked" if rng.random() < 0.03 else ("expired" if expires < AS_OF else "active")
    issued_text, expires_text = vn_date(issued), vn_date(expires)
    draws = rng.random(2)
    kind = "clean"
    if draws[0] < MOJIBAKE_RATE:
        kind = "tcvn3" if draws[1] < 0.5 else "vni"
        holder = encode_tcvn3(holder) if kind == "tcvn3" else encode_vni(holder)
    bad_flows, bad_dates = _dirty_positions(seed, index // DIRT_BLOCK)
    bad_flow, bad_date = index in bad_flows, index in bad_dates
    if bad_flow:
        flow_text = _BAD_FLOWS[int(rng.integers(len(_BAD_FLOWS)))]
    if bad_date:
        bad = _BAD_DATES[int(rng.integers(len(_BAD_DATES)))]
        issued_text, expires_text = (bad, expires_text) if rng.random() < 0.5 else (issued_text, bad)
    updated = dt.datetime.combine(issued, dt.time(8)) + dt.timedelta(seconds=int(rng.integers(0, 9 * 3600)))
    row = {
        "licence_no": f"{index + 1}/GP-BTNMT",
        "holder": holder,
        "province_code": province.code,
        "water_kind": "ground" if ground else "surface",
        "max_flow": flow_text,
        "issued_on": issued_text,
        "expires_on": expires_text,
        "status": status,
        "updated_at": updated,
    }
    return _Licence(row, kind, bad_flow, bad_date)


def _well(seed: int, index: int, licences: int) -> dict[str, Any]:
    """Well `index`: 60% national monitoring wells (QT...), the rest production wells of a groundwater licence."""
    rng = seeded_rng(seed, _TAG_WELL, index)
    licence_no = None
    province = PROVINCES[int(rng.integers(len(PROVINCES)))]
    if rng.random() >= 0.6:
        for _ in range(50):  # find a groundwater licence; its province is the well's
            candidate = _licence(seed, int(rng.integers(licences))).row
            if candidate["water_kind"] == "ground":
                licence_no = candidate["licence_no"]
                province = next(p for p in PROVINCES if p.code == candidate["province_code"])
                break
    prefix = "QT" if licence_no is None else "KT"
    return {
        "well_code": f"{prefix}{province.code}{index + 1:05d}",
        "licence_no": licence_no,
        "province_code": province.code,
        "depth_m": round(float(rng.uniform(20, 150)), 1),
        "lat": round(province.lat + float(rng.uniform(-0.2, 0.2)), 5),
        "lon": round(province.lon + float(rng.uniform(-0.2, 0.2)), 5),
    }


def _well_number(well_code: str) -> int:
    return int(well_code[4:])


@functools.lru_cache(maxsize=4096)
def _character(seed: int, number: int) -> tuple[float, float, float, float]:
    """A well's base level (m), trend (m/day), seasonal amplitude (m) and peak day of year."""
    rng = seeded_rng(seed, _TAG_WELL, number, 0)
    return (
        float(rng.uniform(-25, 5)),
        float(rng.uniform(-0.003, 0.0005)),
        float(rng.uniform(0.5, 3.0)),
        float(rng.uniform(240, 290)),
    )  # the peak comes late in the rainy season


def _level_row(seed: int, well_code: str, day: dt.date, summary: WaterResourcesSummary) -> dict[str, Any] | None:
    """One well-day: a level (m above sea level) with a slow decline, a rainy-season rise and noise."""
    number = _well_number(well_code)
    base, trend, amplitude, peak = _character(seed, number)
    rng = seeded_rng(seed, _TAG_LEVEL, number, day.toordinal())
    draws = rng.random(3)
    if draws[0] < MISSING_READING_RATE and number != 1:  # well 1 never misses, so the last day always shows
        summary.missing_readings += 1
        return None
    season = math.cos(2 * math.pi * (day.timetuple().tm_yday - peak) / 365.25)
    level = base + trend * (day - dt.date(2020, 1, 1)).days + amplitude * season + 0.03 * rng.standard_normal()
    observed = dt.datetime.combine(day, dt.time(7))
    delay = dt.timedelta(hours=2, seconds=int(rng.integers(0, 8 * 3600)))
    if draws[1] < LATE_ENTRY_RATE and number != 1:  # nor is it late, so the newest day is always there
        delay += dt.timedelta(days=int(rng.integers(1, LATE_ENTRY_MAX_DAYS)))
        summary.late_entries += 1
    summary.level_rows += 1
    summary.first_observed_at = min(summary.first_observed_at or observed, observed)
    summary.last_observed_at = max(summary.last_observed_at or observed, observed)
    return {"well_code": well_code, "observed_at": observed, "level_m": round(level, 2), "updated_at": observed + delay}


def _day_rows(
    seed: int, well_codes: Sequence[str], day: dt.date, summary: WaterResourcesSummary, until: dt.datetime
) -> Iterator[dict[str, Any]]:
    """The day's readings entered by `until`; the others are counted as pending."""
    for code in well_codes:
        row = _level_row(seed, code, day, summary)
        if row is None:
            continue
        if row["updated_at"] > until:  # always a late entry: on-time ones are in by 17:00 the same day
            summary.pending_entries += 1
            summary.level_rows -= 1
            summary.late_entries -= 1
            continue
        yield row


def _entered_between(
    seed: int, well_codes: Sequence[str], days: Sequence[dt.date], after: dt.datetime, until: dt.datetime
) -> Iterator[dict[str, Any]]:
    """Readings of earlier `days` whose late entry falls in (after, until]."""
    scratch = WaterResourcesSummary()
    for day in days:
        for code in well_codes:
            row = _level_row(seed, code, day, scratch)
            if row is not None and after < row["updated_at"] <= until:
                yield row


def generate(
    url: str, *, seed: int = 2026, scale: float = 1.0, days: int = 365, start: dt.date = dt.date(2025, 11, 1)
) -> WaterResourcesSummary:
    """(Re)create the tables at `url`: 2000 x scale licences, 300 x scale wells, `days` days of readings."""
    check_scale(scale)
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    n_licences, n_wells = scaled(LICENCES_AT_SCALE_1, scale), scaled(WELLS_AT_SCALE_1, scale)
    summary = WaterResourcesSummary()
    engine = sa.create_engine(url)
    try:
        log.info(
            "water_resources: recreating tables at %s (%d licences, %d wells, %d days from %s, seed %d)",
            safe_url(url),
            n_licences,
            n_wells,
            days,
            start,
            seed,
        )
        recreate(engine, metadata)
        writer = ChunkWriter(engine, licences_table)
        for index in range(n_licences):
            licence = _licence(seed, index)
            summary.mojibake_tcvn3 += licence.kind == "tcvn3"
            summary.mojibake_vni += licence.kind == "vni"
            summary.bad_flows += licence.bad_flow
            summary.bad_dates += licence.bad_date
            writer.extend([licence.row])
        writer.flush()
        summary.licences = writer.written
        wells = [_well(seed, index, n_licences) for index in range(n_wells)]
        with engine.begin() as conn:
            conn.execute(sa.insert(wells_table), wells)
        summary.wells = len(wells)
        codes = [w["well_code"] for w in wells]
        writer = ChunkWriter(engine, well_levels_table)
        until = dt.datetime.combine(start + dt.timedelta(days=days), dt.time())  # the end of the period
        for offset in range(days):
            writer.extend(_day_rows(seed, codes, start + dt.timedelta(days=offset), summary, until))
        writer.flush()
    finally:
        engine.dispose()
    log.info("water_resources: %s", summary)
    return summary


def append_day(url: str, *, seed: int = 2026) -> dt.date:
    """Add the day after the newest reading for every well, as a longer `generate` would have; returns it.

    Late readings of earlier days that are entered during the new day are added too.
    """
    engine = sa.create_engine(url)
    try:
        require_rows(engine, [wells_table, well_levels_table], url)
        with engine.connect() as conn:
            first, newest = conn.execute(
                sa.select(sa.func.min(well_levels_table.c.observed_at), sa.func.max(well_levels_table.c.observed_at))
            ).one()
            codes = list(conn.execute(sa.select(wells_table.c.well_code)).scalars())
        codes.sort(key=_well_number)
        day = newest.date() + dt.timedelta(days=1)
        after = dt.datetime.combine(day, dt.time())
        until = after + dt.timedelta(days=1)
        earlier = [
            day - dt.timedelta(days=back)
            for back in range(LATE_ENTRY_MAX_DAYS, 0, -1)
            if day - dt.timedelta(days=back) >= first.date()
        ]
        summary = WaterResourcesSummary(wells=len(codes))
        writer = ChunkWriter(engine, well_levels_table)
        writer.extend(_entered_between(seed, codes, earlier, after, until))
        writer.extend(_day_rows(seed, codes, day, summary, until))
        writer.flush()
    finally:
        engine.dispose()
    log.info("water_resources: appended %s: %s", day, summary)
    return day


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: `generate` a whole database or `append-day` to one."""
    parser = argparse.ArgumentParser(prog="python -m units.water_resources", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    gen = commands.add_parser("generate", help="drop, recreate and fill the tables")
    app = commands.add_parser("append-day", help="add the day after the newest reading")
    for sub in (gen, app):
        sub.add_argument("--url", required=True, help="SQLAlchemy URL of the target database")
        sub.add_argument("--seed", type=int, default=2026)
    gen.add_argument("--scale", type=float, default=1.0, help="1.0 = 2000 licences, 300 wells")
    gen.add_argument("--days", type=int, default=365)
    gen.add_argument("--start", type=dt.date.fromisoformat, default=dt.date(2025, 11, 1), help="YYYY-MM-DD")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "generate":
        generate(args.url, seed=args.seed, scale=args.scale, days=args.days, start=args.start)
    else:
        append_day(args.url, seed=args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
