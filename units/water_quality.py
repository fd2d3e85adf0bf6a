"""Simulated database of the water-quality unit: surface-water samples with the QCVN 08:2023 parameters.

Tables `sites` (sampling points on named rivers) and `samples` (one sample a site and sampling day:
automatic stations every day, periodic points every 7 or 14 days). The measured values are TEXT, as
laboratories hand them over (DOMAIN.md §4, §7):

- a value below the detection limit is written as the limit with "<", e.g. "<0,05" or "<0.001";
- each site writes decimals its own way: a decimal comma ("7,25") at about two sites in three,
  a decimal point ("7.25") at the rest; no thousands separators, so a lone "." is always decimal;
- about 2% of values are missing (not analysed), and automatic stations measure only pH, DO, TSS,
  COD and NH4-N.

Each sample also carries the unit's own water-quality index `wqi` (0-100, integer), as monitoring
centres report it. The VN_WQI formula of Decision 1460/QĐ-TCMT is UNCONFIRMED (DOMAIN.md §4), so the
simulator's index is a PLACEHOLDER: the mean of per-parameter scores that put the QCVN 08:2023 class
A/B/C limits on the VN_WQI band edges 91/76/51. The pipelines only classify the reported index.

Units: mg/L, total coliform in MPN/100 mL, pH unitless. Every site-day is drawn from an RNG seeded
by (seed, site, day), so `append_day` adds exactly what a longer `generate` would have.

    python -m units.water_quality generate --url sqlite:///var/water_quality.db --scale 0.1 --days 30
    python -m units.water_quality append-day --url sqlite:///var/water_quality.db
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
)

log = logging.getLogger(__name__)

SITES_AT_SCALE_1 = 120
MISSING_VALUE_RATE = 0.02
_TAG_SITE, _TAG_SAMPLE = 1, 2

# Parameter: (decimals, detection limit, measured at automatic stations).
PARAMETERS: dict[str, tuple[int, float, bool]] = {
    "ph": (2, 0.0, True),
    "bod5": (1, 2.0, False),
    "cod": (1, 3.0, True),
    "tss": (1, 2.0, True),
    "do_mg_l": (2, 0.0, True),
    "nh4_n": (3, 0.02, True),
    "no2": (3, 0.005, False),
    "po4": (3, 0.02, False),
    "total_coliform": (0, 3.0, False),
    "as_": (4, 0.001, False),
    "cd": (4, 0.0005, False),
    "pb": (4, 0.002, False),
    "hg": (5, 0.0001, False),
    "fe": (3, 0.05, False),
}

# Rivers of each province: (name, pollution factor, sediment factor). Urban drains are dirtiest.
RIVERS: dict[str, tuple[tuple[str, float, float], ...]] = {
    "01": (
        ("Sông Hồng", 1.2, 3.0),
        ("Sông Nhuệ", 4.0, 1.2),
        ("Sông Tô Lịch", 6.0, 1.0),
        ("Sông Đáy", 2.0, 1.5),
        ("Sông Đuống", 1.3, 2.5),
    ),
    "79": (("Sông Sài Gòn", 1.8, 1.5), ("Kênh Nhiêu Lộc - Thị Nghè", 3.5, 1.0), ("Kênh Tân Hóa - Lò Gốm", 5.0, 1.0)),
    "31": (("Sông Cấm", 1.8, 2.0), ("Sông Lạch Tray", 1.6, 2.0)),
    "48": (("Sông Hàn", 1.3, 1.0), ("Sông Cu Đê", 0.9, 1.0), ("Sông Cẩm Lệ", 1.1, 1.2)),
    "92": (("Sông Hậu", 1.2, 2.5), ("Sông Cần Thơ", 1.6, 2.0)),
    "46": (("Sông Hương", 0.8, 1.0), ("Sông Bồ", 0.8, 1.2)),
    "22": (("Sông Diễn Vọng", 1.2, 1.5), ("Sông Ka Long", 1.0, 1.2)),
    "56": (("Sông Cái Nha Trang", 1.0, 1.2),),
    "38": (("Sông Mã", 1.1, 2.0), ("Sông Chu", 0.9, 1.5)),
    "40": (("Sông Lam", 1.0, 1.8), ("Sông Hiếu", 0.9, 1.5)),
    "75": (("Sông Đồng Nai", 1.2, 1.5), ("Sông La Ngà", 0.9, 1.2)),
    "74": (("Sông Sài Gòn", 1.5, 1.5), ("Sông Thị Tính", 1.8, 1.2)),
    "26": (("Sông Phó Đáy", 1.4, 1.5), ("Sông Lô", 1.0, 2.0)),
    "27": (("Sông Cầu", 1.6, 1.5), ("Sông Ngũ Huyện Khê", 4.0, 1.2), ("Sông Đuống", 1.3, 2.5)),
    "68": (("Sông Đa Nhim", 0.6, 1.0), ("Sông Đồng Nai", 0.8, 1.2)),
    "19": (("Sông Cầu", 1.5, 1.5), ("Sông Công", 1.2, 1.2)),
    "30": (("Sông Thái Bình", 1.3, 2.0), ("Sông Kinh Thầy", 1.2, 2.0)),
    "77": (("Sông Thị Vải", 2.0, 1.2), ("Sông Dinh", 1.5, 1.2), ("Sông Ray", 0.8, 1.2)),
}
_RIVER_INFO = {(code, name): (p, s) for code, rivers in RIVERS.items() for name, p, s in rivers}

# PLACEHOLDER index (the VN_WQI formula is UNCONFIRMED): parameter -> (concentrations, scores) for
# linear interpolation. Class limits of QCVN 08:2023 (DOMAIN.md §4) sit on the band edges 91 / 76 / 51;
# NH4-N uses its health limit 0.3 mg/L as class A; DO grows better upwards; A for DO is UNCONFIRMED.
_WQI_SCORES: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "bod5": ((0, 4, 6, 10, 20, 40, 80), (100, 91, 76, 51, 26, 10, 1)),
    "cod": ((0, 10, 15, 20, 40, 80, 160), (100, 91, 76, 51, 26, 10, 1)),
    "nh4_n": ((0, 0.3, 0.6, 0.9, 1.8, 3.6, 7.2), (100, 91, 76, 51, 26, 10, 1)),
    "total_coliform": ((0, 1000, 5000, 7500, 15000, 30000, 60000), (100, 91, 76, 51, 26, 10, 1)),
    "do_mg_l": ((0, 1, 2, 4, 5, 6, 8), (1, 10, 26, 51, 76, 91, 100)),
    "ph": ((4.5, 5.5, 6.0, 6.5, 8.5, 9.0, 10.0), (1, 26, 51, 100, 100, 51, 1)),
}

metadata = sa.MetaData()

sites_table = sa.Table(
    "sites",
    metadata,
    sa.Column("site_code", sa.String(16), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("river", sa.String(100), nullable=False),
    sa.Column("province_code", sa.CHAR(2), nullable=False),
    sa.Column("latitude", sa.Double),
    sa.Column("longitude", sa.Double),
    sa.Column("kind", sa.String(10), nullable=False),  # "automatic" or "periodic"
    mysql_charset="utf8mb4",
    mysql_collate="utf8mb4_bin",
)

samples_table = sa.Table(
    "samples",
    metadata,
    sa.Column("sample_id", sa.String(32), primary_key=True),
    sa.Column("site_code", sa.String(16), nullable=False),
    sa.Column("river", sa.String(100), nullable=False),
    sa.Column("province_code", sa.CHAR(2), nullable=False),
    sa.Column("sampled_at", sa.DateTime, nullable=False),
    *(sa.Column(name, sa.Text) for name in PARAMETERS),
    sa.Column("wqi", sa.Integer),  # the unit's own index (PLACEHOLDER formula, see the module docstring)
    sa.Column("updated_at", sa.DateTime, nullable=False),
    sa.Index("ix_samples_updated_at", "updated_at"),
    mysql_charset="utf8mb4",
    mysql_collate="utf8mb4_bin",
)


@dataclass
class WaterQualitySummary:
    """What a run wrote and the dirt it planted."""

    sites: int = 0
    rows: int = 0
    below_limit: int = 0
    missing_values: int = 0
    first_sampled_at: dt.datetime | None = None
    last_sampled_at: dt.datetime | None = None


@dataclass(frozen=True)
class _Site:
    code: str
    river: str
    province_code: str
    automatic: bool
    interval: int  # days between samples
    phase: int
    comma: bool  # writes decimal commas


@functools.lru_cache(maxsize=4096)
def _site(seed: int, index: int) -> _Site:
    """Site `index`; site 0 is automatic, so every day has at least one sample."""
    rng = seeded_rng(seed, _TAG_SITE, index)
    province = PROVINCES[index % len(PROVINCES)]
    rivers = RIVERS[province.code]
    river = rivers[int(rng.integers(len(rivers)))][0]
    draw = float(rng.random())
    interval = 1 if index == 0 or draw < 0.2 else (7 if draw < 0.7 else 14)
    return _Site(
        f"SW{province.code}{index + 1:04d}",
        river,
        province.code,
        interval == 1,
        interval,
        int(rng.integers(interval)),
        bool(rng.random() < 0.65),
    )


def _site_row(seed: int, index: int) -> dict[str, Any]:
    site = _site(seed, index)
    province = next(p for p in PROVINCES if p.code == site.province_code)
    jitter = seeded_rng(seed, _TAG_SITE, index, 1).uniform(-0.1, 0.1, size=2)
    return {
        "site_code": site.code,
        "name": f"{site.river} - điểm {index + 1}",
        "river": site.river,
        "province_code": site.province_code,
        "latitude": round(province.lat + float(jitter[0]), 5),
        "longitude": round(province.lon + float(jitter[1]), 5),
        "kind": "automatic" if site.automatic else "periodic",
    }


def _wqi(values: dict[str, float], measured: dict[str, bool]) -> int | None:
    """The unit's reported index: mean of the scores of the measured parameters (PLACEHOLDER formula)."""
    scores = [float(np.interp(values[name], xs, ys)) for name, (xs, ys) in _WQI_SCORES.items() if measured.get(name)]
    return max(1, min(100, round(sum(scores) / len(scores)))) if scores else None


def _text(value: float, decimals: int, limit: float, comma: bool) -> str:
    """A lab value as text, "<limit" below the detection limit, in the site's decimal style."""
    text = f"<{limit:g}" if value < limit else f"{value:.{decimals}f}"
    return text.replace(".", ",") if comma else text


def _sample(seed: int, index: int, day: dt.date, summary: WaterQualitySummary) -> dict[str, Any] | None:
    """The sample of one site on one day, or None when the site does not sample that day."""
    site = _site(seed, index)
    if (day.toordinal() + site.phase) % site.interval:
        return None
    pollution, sediment = _RIVER_INFO[(site.province_code, site.river)]
    rng = seeded_rng(seed, _TAG_SAMPLE, index, day.toordinal())
    dry = math.cos(2 * math.pi * (day.timetuple().tm_yday - 45) / 365.25)  # 1 mid-February: low flow
    p = pollution * (1 + 0.25 * dry) * float(rng.lognormal(0, 0.25))
    noise = rng.lognormal(0, 0.3, size=8).tolist()
    metal = rng.lognormal(0, 0.7, size=5).tolist()
    bod5 = 3.5 * p * noise[0]
    values = {
        "ph": min(9.0, max(5.5, float(rng.normal(7.2 - 0.05 * p, 0.25)))),
        "bod5": bod5,
        "cod": bod5 * float(rng.uniform(1.6, 2.4)),
        "tss": 25 * sediment * (1 - 0.3 * dry) * noise[1],
        "do_mg_l": max(0.3, float(rng.normal(7.0 - 0.9 * p, 0.5))),
        "nh4_n": 0.15 * p**1.8 * noise[2],
        "no2": 0.015 * p * noise[3],
        "po4": 0.06 * p * noise[4],
        "total_coliform": 1500 * p**2 * float(rng.lognormal(0, 0.6)),
        "as_": 0.002 * metal[0],
        "cd": 0.0004 * metal[1],
        "pb": 0.004 * metal[2],
        "hg": 0.00015 * metal[3],
        "fe": 0.25 * math.sqrt(sediment) * metal[4],
    }
    missing = rng.random(len(PARAMETERS)).tolist()
    sampled_at = (
        dt.datetime.combine(day, dt.time(8))
        if site.automatic
        else dt.datetime.combine(day, dt.time(7, 30)) + dt.timedelta(minutes=int(rng.integers(0, 240)))
    )
    row: dict[str, Any] = {
        "sample_id": f"{site.code}-{day:%Y%m%d}",
        "site_code": site.code,
        "river": site.river,
        "province_code": site.province_code,
        "sampled_at": sampled_at,
    }
    for k, (name, (decimals, limit, automatic)) in enumerate(PARAMETERS.items()):
        not_measured = site.automatic and not automatic
        if not_measured or missing[k] < MISSING_VALUE_RATE:
            row[name] = None
            summary.missing_values += not not_measured
            continue
        row[name] = _text(values[name], decimals, limit, site.comma)
        summary.below_limit += row[name].startswith("<")
    row["wqi"] = _wqi(values, {name: row[name] is not None for name in _WQI_SCORES})
    row["updated_at"] = sampled_at + dt.timedelta(hours=1, seconds=int(rng.integers(0, 5 * 3600)))
    summary.rows += 1
    summary.first_sampled_at = min(summary.first_sampled_at or sampled_at, sampled_at)
    summary.last_sampled_at = max(summary.last_sampled_at or sampled_at, sampled_at)
    return row


def _day_rows(seed: int, sites: int, day: dt.date, summary: WaterQualitySummary) -> Iterator[dict[str, Any]]:
    for index in range(sites):
        row = _sample(seed, index, day, summary)
        if row is not None:
            yield row


def generate(
    url: str, *, seed: int = 2026, scale: float = 1.0, days: int = 365, start: dt.date = dt.date(2025, 11, 1)
) -> WaterQualitySummary:
    """(Re)create `sites` and `samples` at `url`: 120 x scale sites sampled over `days` days from `start`."""
    check_scale(scale)
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    sites = scaled(SITES_AT_SCALE_1, scale)
    summary = WaterQualitySummary(sites=sites)
    engine = sa.create_engine(url)
    try:
        log.info(
            "water_quality: recreating tables at %s (%d sites, %d days from %s, seed %d)",
            safe_url(url),
            sites,
            days,
            start,
            seed,
        )
        recreate(engine, metadata)
        with engine.begin() as conn:
            conn.execute(sa.insert(sites_table), [_site_row(seed, i) for i in range(sites)])
        writer = ChunkWriter(engine, samples_table)
        for offset in range(days):
            writer.extend(_day_rows(seed, sites, start + dt.timedelta(days=offset), summary))
        writer.flush()
    finally:
        engine.dispose()
    log.info("water_quality: %s", summary)
    return summary


def append_day(url: str, *, seed: int = 2026) -> dt.date:
    """Add the day after the newest sample, as a longer `generate` would have; returns that day."""
    engine = sa.create_engine(url)
    try:
        require_rows(engine, [sites_table, samples_table], url)
        with engine.connect() as conn:
            newest = conn.execute(sa.select(sa.func.max(samples_table.c.sampled_at))).scalar_one()
            sites = conn.execute(sa.select(sa.func.count()).select_from(sites_table)).scalar_one()
        day = newest.date() + dt.timedelta(days=1)
        summary = WaterQualitySummary(sites=sites)
        writer = ChunkWriter(engine, samples_table)
        writer.extend(_day_rows(seed, sites, day, summary))
        writer.flush()
    finally:
        engine.dispose()
    log.info("water_quality: appended %s: %s", day, summary)
    return day


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: `generate` a whole database or `append-day` to one."""
    parser = argparse.ArgumentParser(prog="python -m units.water_quality", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    gen = commands.add_parser("generate", help="drop, recreate and fill the tables")
    app = commands.add_parser("append-day", help="add the day after the newest sample")
    for sub in (gen, app):
        sub.add_argument("--url", required=True, help="SQLAlchemy URL of the target database")
        sub.add_argument("--seed", type=int, default=2026)
    gen.add_argument("--scale", type=float, default=1.0, help="1.0 = 120 sampling sites")
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
