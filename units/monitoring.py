"""Simulated database of the environmental-monitoring unit: automatic air-quality stations.

Tables `stations` and `air_observations` (hourly, naive Vietnam local time, µg/m³, CO too), filled
with plausible values and the dirt a real sector database carries (DOMAIN.md §4, §7): about 2% of
station-hours absent, about 0.3% of values at the sensor sentinel -9999, about 0.1% exact duplicate
rows, and 2-3 station names stored in Unicode NFD.

Every station-day is drawn from an RNG seeded by (seed, station, day), so the data is deterministic,
independent of scale, and a day added by `append_day` equals the same day of a longer `generate`.

    python -m units.monitoring generate --url sqlite:///var/monitoring.db --stations 12 --days 7
    python -m units.monitoring append-day --url sqlite:///var/monitoring.db
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import logging
import math
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import sqlalchemy as sa

from transforms.aqi import SENTINEL, vn_aqi_hourly
from units._common import PROVINCES, PROVINCES_BY_CODE, STREETS, ChunkWriter, Province, seeded_rng

log = logging.getLogger(__name__)

POLLUTANTS: tuple[str, ...] = ("pm25", "pm10", "no2", "so2", "co", "o3")

# Dirt rates (per station-hour, per value, per row).
MISSING_HOUR_RATE = 0.016
OUTAGE_RATE = 0.015  # per station-day; an outage drops 2-10 consecutive hours (adds ~0.4%)
SENTINEL_RATE = 0.003
DUPLICATE_RATE = 0.001

# RNG stream tags, so that independent draws never share a seed.
_TAG_SITE, _TAG_NAME, _TAG_NFD, _TAG_WEATHER, _TAG_PM_EPISODE, _TAG_O3_EPISODE, _TAG_HOURS, _TAG_CHARACTER = range(1, 9)

# Where the first stations go; beyond these, provinces are taken in turn.
_FIRST_SLOTS: tuple[str, ...] = ("01", "79", "31", "48", "01", "79", "92", "46", "22", "56", "27", "74")

metadata = sa.MetaData()

# Double, not Float: MariaDB's FLOAT is single precision and would not round-trip the values.
stations_table = sa.Table(
    "stations",
    metadata,
    sa.Column("station_code", sa.String(16), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("province_code", sa.CHAR(2), nullable=False),
    sa.Column("latitude", sa.Double),
    sa.Column("longitude", sa.Double),
    sa.Column("kind", sa.String(20), nullable=False),
    mysql_charset="utf8mb4",
    mysql_collate="utf8mb4_bin",
)

air_observations_table = sa.Table(
    "air_observations",
    metadata,
    # A surrogate key, so exact duplicate readings can coexist as they do in the real source.
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("station_code", sa.String(16), nullable=False),
    sa.Column("observed_at", sa.DateTime, nullable=False),
    *(sa.Column(name, sa.Double) for name in POLLUTANTS),
    sa.Column("aqi", sa.Integer),
    sa.Index("ix_air_observations_observed_at", "observed_at"),
    sa.Index("ix_air_observations_station_observed", "station_code", "observed_at"),
    mysql_charset="utf8mb4",
    mysql_collate="utf8mb4_bin",
)


@dataclass(frozen=True)
class Station:
    """One automatic monitoring station as stored in `stations`."""

    station_code: str
    name: str
    province_code: str
    latitude: float
    longitude: float
    kind: str = "automatic"


@dataclass
class GenerateSummary:
    """What a run wrote, with the dirt it planted (for tests, demos and logs).

    Attributes:
        stations: stations written.
        rows: observation rows written, duplicates included.
        first_observed_at, last_observed_at: range of observed_at (None when no rows).
        duplicates: extra rows that exactly repeat another row.
        sentinels: pollutant values stored as -9999.
        missing_hours: station-hours with no row at all.
    """

    stations: int = 0
    rows: int = 0
    first_observed_at: dt.datetime | None = None
    last_observed_at: dt.datetime | None = None
    duplicates: int = 0
    sentinels: int = 0
    missing_hours: int = 0


def build_stations(seed: int, count: int) -> list[Station]:
    """The station list for a scale, sorted by code; 2-3 names are stored in NFD."""
    allocation = list(_FIRST_SLOTS[:count])
    while len(allocation) < count:
        allocation.extend(p.code for p in PROVINCES)
    sequence: dict[str, int] = {}
    result: list[Station] = []
    for code in allocation[:count]:
        province = PROVINCES_BY_CODE[code]
        seq = sequence[code] = sequence.get(code, 0) + 1
        if seq <= len(province.sites):
            site = province.sites[seq - 1]
        else:
            rng = seeded_rng(seed, _TAG_NAME, int(code), seq)
            site = f"{int(rng.integers(1, 400))} {STREETS[int(rng.integers(len(STREETS)))]}"
        jitter = seeded_rng(seed, _TAG_SITE, int(code), seq).uniform(-0.05, 0.05, size=2)
        result.append(
            Station(
                station_code=f"AQ{code}{seq:03d}",
                name=unicodedata.normalize("NFC", f"{province.name} - {site}"),
                province_code=code,
                latitude=round(province.lat + float(jitter[0]), 5),
                longitude=round(province.lon + float(jitter[1]), 5),
            )
        )
    nfd_count = min(count, 2 if count < 6 else 3)
    nfd = seeded_rng(seed, _TAG_NFD).choice(min(count, len(_FIRST_SLOTS)), size=nfd_count, replace=False)
    for i in nfd.tolist():
        result[i] = replace(result[i], name=unicodedata.normalize("NFD", result[i].name))
    return sorted(result, key=lambda s: s.station_code)


# Daily shapes, hour 0..23: traffic rush peaks, night-time inversion, afternoon sunshine.
_HOURS = np.arange(24, dtype=float)
_TRAFFIC = np.exp(-((_HOURS - 7.5) ** 2) / 4.5) + 1.1 * np.exp(-((_HOURS - 18.5) ** 2) / 8.0)
_NIGHT = 0.5 * (1 + np.cos(2 * math.pi * (_HOURS - 2) / 24))  # 1 at 02:00, 0 at 14:00
_SUN = np.clip(np.sin(math.pi * (_HOURS - 7) / 12), 0, None) ** 1.5
# AR(1) filter (phi 0.75) as a matrix: hourly noise that drifts instead of jumping.
_PHI = 0.75
_AR = np.array(
    [
        [(_PHI ** (i - j)) * (1.0 if j == 0 else math.sqrt(1 - _PHI**2)) if j <= i else 0.0 for j in range(24)]
        for i in range(24)
    ]
)


@dataclass(frozen=True)
class _ProvinceDay:
    """Weather and episodes shared by every station of a province on one day."""

    weather: float
    pm_episode: float
    o3_episode: float


@functools.lru_cache(maxsize=4096)
def _province_day(seed: int, province: Province, day: dt.date) -> _ProvinceDay:
    """Regional drivers: a smooth weather factor, multi-day PM episodes, one-day O3 episodes."""
    p, d = int(province.code), day.toordinal()
    z = [float(seeded_rng(seed, _TAG_WEATHER, p, d - k).standard_normal()) for k in range(3)]
    smoothed = (0.75 * z[0] + 0.55 * z[1] + 0.35 * z[2]) / math.sqrt(0.75**2 + 0.55**2 + 0.35**2)
    weather = math.exp(0.35 * smoothed)  # lognormal, correlated with the previous two days
    pm_episode = 1.0
    for k in range(4):  # an episode starting up to 3 days ago may still be running
        rng = seeded_rng(seed, _TAG_PM_EPISODE, p, d - k)
        if rng.random() < 0.03 and k < int(rng.integers(2, 5)):
            pm_episode = max(pm_episode, float(rng.uniform(1.8, 3.0)))
    rng = seeded_rng(seed, _TAG_O3_EPISODE, p, d)
    o3_episode = float(rng.uniform(1.6, 2.0)) if rng.random() < 0.02 else 1.0
    return _ProvinceDay(weather, pm_episode, o3_episode)


def _station_day_rows(seed: int, station: Station, day: dt.date, summary: GenerateSummary) -> Iterator[dict[str, Any]]:
    """The rows of one station-day, dirt included; counts the dirt into summary."""
    province = PROVINCES_BY_CODE[station.province_code]
    code_no = int(station.station_code[2:])
    drivers = _province_day(seed, province, day)
    character = seeded_rng(seed, _TAG_CHARACTER, code_no)  # roadside or background, for every day
    local = character.lognormal(0, 0.15)
    pm10_ratio = character.uniform(1.4, 1.7)
    no2_base = character.uniform(22, 40)
    o3_amp = character.uniform(60, 110)

    rng = seeded_rng(seed, _TAG_HOURS, code_no, day.toordinal())
    noise = _AR @ rng.standard_normal((24, 5))
    season = math.cos(2 * math.pi * (day.timetuple().tm_yday - 15) / 365.25)  # 1 mid-January
    # Rush-hour peaks, and winter nights that trap pollution under an inversion; normalised below
    # to a daily mean of 1 so the season and the province set the level.
    shape = 0.7 + 0.35 * _TRAFFIC + max(season, 0.0) * province.winter_amp * _NIGHT
    base = province.pm25_base * (1 + province.winter_amp * season) * drivers.weather * local
    pm25 = base * drivers.pm_episode * shape / shape.mean() * np.exp(0.25 * noise[:, 0])
    pm25 = np.where(pm25 > 300, 300 + 300 * np.tanh((pm25 - 300) / 300), pm25)  # soft ceiling at 600
    pm10 = pm25 * np.clip(pm10_ratio + 0.08 * rng.standard_normal(24), 1.3, 1.8)
    no2 = no2_base * (0.75 + 0.8 * _TRAFFIC) * math.sqrt(drivers.weather) * np.exp(0.2 * noise[:, 1])
    if rng.random() < 0.01:  # a short local NO2 spike (fire, jammed traffic) above the 1 h limit
        start = int(rng.integers(0, 22))
        no2[start : start + 2] *= rng.uniform(3.5, 5.0)
    so2 = province.so2_base * drivers.weather**0.3 * (0.85 + 0.3 * _TRAFFIC) * np.exp(0.3 * noise[:, 2])
    co = 450 + 1100 * (pm25 / max(base, 1.0)) ** 0.5 * (0.6 + 0.5 * _TRAFFIC) * np.exp(0.15 * noise[:, 3])
    o3 = (24 + o3_amp * (1 - 0.2 * season) * drivers.o3_episode * _SUN / drivers.weather**0.2) * np.exp(
        0.15 * noise[:, 4]
    )
    values = np.round(np.column_stack([pm25, pm10, np.maximum(no2, 5), np.maximum(so2, 2), co, o3]), 1)

    missing = rng.random(24) < MISSING_HOUR_RATE
    if rng.random() < OUTAGE_RATE:
        start = int(rng.integers(0, 24))
        missing[start : start + int(rng.integers(2, 11))] = True
    sentinel = rng.random((24, len(POLLUTANTS))) < SENTINEL_RATE
    duplicated = rng.random(24) < DUPLICATE_RATE
    values[sentinel] = SENTINEL

    for hour, row_values in enumerate(values.tolist()):
        if missing[hour]:
            summary.missing_hours += 1
            continue
        observed_at = dt.datetime.combine(day, dt.time(hour))
        row: dict[str, Any] = {"station_code": station.station_code, "observed_at": observed_at}
        row.update(zip(POLLUTANTS, row_values, strict=True))
        row["aqi"] = vn_aqi_hourly(*row_values)
        copies = 2 if duplicated[hour] else 1
        summary.rows += copies
        summary.duplicates += copies - 1
        summary.sentinels += copies * int(sentinel[hour].sum())
        summary.first_observed_at = min(summary.first_observed_at or observed_at, observed_at)
        summary.last_observed_at = max(summary.last_observed_at or observed_at, observed_at)
        for _ in range(copies):
            yield dict(row)


def _write_day(
    writer: ChunkWriter, seed: int, stations: Sequence[Station], day: dt.date, summary: GenerateSummary
) -> None:
    """Generate one day for every station (bounded memory) and hand it to the writer."""
    for station in stations:
        writer.extend(_station_day_rows(seed, station, day, summary))


def _safe_url(url: str) -> str:
    """The URL for logs and errors, password hidden."""
    return sa.make_url(url).render_as_string(hide_password=True)


def generate(
    url: str, *, seed: int = 2026, stations: int = 12, days: int = 7, start: dt.date = dt.date(2026, 11, 1)
) -> GenerateSummary:
    """(Re)create the unit's tables at `url` and fill `days` days of hourly data from `start`.

    Existing `stations` and `air_observations` tables are dropped first. Rows go in chunks of
    50 000, one transaction each (COPY on PostgreSQL), generated day by day so memory stays
    bounded: 200 stations x 1042 days gives about 5 M rows.
    """
    if stations < 1:
        raise ValueError(f"stations must be at least 1, got {stations}")
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    station_list = build_stations(seed, stations)
    summary = GenerateSummary(stations=len(station_list))
    engine = sa.create_engine(url)
    try:
        log.info(
            "monitoring: recreating tables at %s (%d stations, %d days from %s, seed %d)",
            _safe_url(url),
            stations,
            days,
            start,
            seed,
        )
        metadata.drop_all(engine)
        metadata.create_all(engine)
        with engine.begin() as conn:
            conn.execute(sa.insert(stations_table), [asdict(s) for s in station_list])
        writer = ChunkWriter(engine, air_observations_table)
        for offset in range(days):
            _write_day(writer, seed, station_list, start + dt.timedelta(days=offset), summary)
        writer.flush()
    finally:
        engine.dispose()
    log.info("monitoring: %s", summary)
    return summary


def append_day(url: str, *, seed: int = 2026) -> dt.date:
    """Add the full day after the newest observed_at, for incremental demos; returns that date.

    The day's rows are the ones `generate` with the same seed would have written for that day.
    """
    engine = sa.create_engine(url)
    try:
        inspector = sa.inspect(engine)
        for table in (stations_table, air_observations_table):
            if not inspector.has_table(table.name):
                raise LookupError(f"table {table.name} not found at {_safe_url(url)}: run generate first")
        with engine.connect() as conn:
            newest = conn.execute(sa.select(sa.func.max(air_observations_table.c.observed_at))).scalar()
            rows = conn.execute(sa.select(stations_table).order_by(stations_table.c.station_code)).all()
        if newest is None:
            raise LookupError(f"air_observations at {_safe_url(url)} has no rows: run generate first")
        unknown = sorted({r.province_code for r in rows} - PROVINCES_BY_CODE.keys())
        if unknown:
            raise ValueError(f"stations at {_safe_url(url)} have unknown province_code {unknown}")
        station_list = [Station(**r._mapping) for r in rows]
        day = newest.date() + dt.timedelta(days=1)
        summary = GenerateSummary(stations=len(station_list))
        writer = ChunkWriter(engine, air_observations_table)
        _write_day(writer, seed, station_list, day, summary)
        writer.flush()
    finally:
        engine.dispose()
    log.info("monitoring: appended %s: %s", day, summary)
    return day


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: `generate` a whole database or `append-day` to one."""
    parser = argparse.ArgumentParser(prog="python -m units.monitoring", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    gen = commands.add_parser("generate", help="drop, recreate and fill the tables")
    app = commands.add_parser("append-day", help="add the day after the newest observation")
    for sub in (gen, app):
        sub.add_argument("--url", required=True, help="SQLAlchemy URL of the target database")
        sub.add_argument("--seed", type=int, default=2026)
    gen.add_argument("--stations", type=int, default=12)
    gen.add_argument("--days", type=int, default=7)
    gen.add_argument("--start", type=dt.date.fromisoformat, default=dt.date(2026, 11, 1), help="first day, YYYY-MM-DD")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "generate":
        generate(args.url, seed=args.seed, stations=args.stations, days=args.days, start=args.start)
    else:
        append_day(args.url, seed=args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
