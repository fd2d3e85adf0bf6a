"""Simulated database of the land-administration unit: the cadastral parcel register.

Table `parcels`: map sheet and parcel number in a (pre-2025) commune, area, land-use code of the
national list, the land user's name and 12-digit citizen ID, address, certificate number and
`updated_at`. Scale 1.0 is 200 000 parcels. The dirt real registers carry (DOMAIN.md §3, §4, §7):

- about 0.3% of parcels keep a retired land-use code and 0.2% a code that never existed;
- about 1% of users' names are stored in Unicode NFD, and 2% carry an "Ông"/"Bà" honorific;
- about 0.2% of citizen IDs have the wrong length: a 9-digit old identity-card number, or an ID
  whose leading zero was lost on a trip through a spreadsheet (11 digits);
- organisations (about 3%) have no citizen ID; about 7% of parcels have no certificate yet.

Parcels come in blocks of 500 (one map sheet of one commune), each drawn from an RNG seeded by
(seed, block), so a parcel is the same at any scale and memory stays bounded. `touch_parcels`
re-surveys some parcels later (new area, newer `updated_at`) for incremental-extraction demos.

    python -m units.land generate --url sqlite:///var/land.db --scale 0.05
    python -m units.land touch --url sqlite:///var/land.db --n 25
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import sqlalchemy as sa

from units._common import STREETS, ChunkWriter, check_scale, recreate, require_rows, safe_url, scaled, seeded_rng
from units.codes import (
    PRE_2025_COMMUNES,
    PRE_2025_PROVINCES,
    RETIRED_LAND_USE_CODES,
    AdminUnit,
)

log = logging.getLogger(__name__)

ROWS_AT_SCALE_1 = 200_000
BLOCK = 500  # parcels per map sheet; one RNG per block
UNKNOWN_LAND_USE_CODES: tuple[str, ...] = ("LUX", "OTN", "ZZZ", "DT", "ON")  # typos, never in any list
FIRST_UPDATE = dt.datetime(2016, 1, 1)
LAST_UPDATE = dt.datetime(2025, 6, 30, 23, 59, 59)  # the register predates the 2025 commune codes

_TAG_BLOCK, _TAG_TOUCH = 1, 2

metadata = sa.MetaData()

# citizen_id is VARCHAR(12), not CHAR(12): PostgreSQL pads a short CHAR value with blanks and
# MariaDB strips them, so the wrong-length IDs would read back differently per engine.
parcels_table = sa.Table(
    "parcels",
    metadata,
    sa.Column("parcel_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("map_sheet", sa.Integer, nullable=False),
    sa.Column("parcel_no", sa.Integer, nullable=False),
    sa.Column("commune_code", sa.CHAR(5), nullable=False),
    sa.Column("area_m2", sa.Double, nullable=False),
    sa.Column("land_use_code", sa.String(3), nullable=False),
    sa.Column("user_name", sa.String(200), nullable=False),
    sa.Column("citizen_id", sa.String(12)),
    sa.Column("address", sa.String(300), nullable=False),
    sa.Column("certificate_no", sa.String(20)),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    sa.Index("ix_parcels_updated_at", "updated_at"),
    mysql_charset="utf8mb4",
    mysql_collate="utf8mb4_bin",
)

# Family names with their rough shares; middle and given names by gender.
_SURNAMES = (
    "Nguyễn",
    "Trần",
    "Lê",
    "Phạm",
    "Hoàng",
    "Huỳnh",
    "Phan",
    "Vũ",
    "Võ",
    "Đặng",
    "Bùi",
    "Đỗ",
    "Hồ",
    "Ngô",
    "Dương",
    "Lý",
)
_SURNAME_P = np.array([38, 11, 9.5, 7, 4, 3, 4.5, 2, 2, 2.1, 2, 1.4, 1.3, 1.3, 1, 0.5])
_SURNAME_P = _SURNAME_P / _SURNAME_P.sum()
_MIDDLE = {
    0: ("Văn", "Đức", "Minh", "Quang", "Hữu", "Công", "Thanh", "Xuân", "Ngọc", "Đình"),
    1: ("Thị", "Thị", "Thị", "Ngọc", "Thu", "Thanh", "Minh", "Kim", "Phương", "Hồng"),
}
_GIVEN = {
    0: (
        "An",
        "Bình",
        "Cường",
        "Dũng",
        "Đạt",
        "Hải",
        "Hùng",
        "Huy",
        "Khoa",
        "Long",
        "Minh",
        "Nam",
        "Phong",
        "Quân",
        "Sơn",
        "Thắng",
        "Trung",
        "Tuấn",
        "Việt",
        "Vinh",
    ),
    1: (
        "Anh",
        "Hà",
        "Hằng",
        "Hạnh",
        "Hoa",
        "Hương",
        "Lan",
        "Linh",
        "Mai",
        "Ngọc",
        "Nhung",
        "Phương",
        "Thảo",
        "Trang",
        "Tuyết",
        "Vân",
        "Yến",
        "Thủy",
        "Liên",
        "Dung",
    ),
}
_COMPANY_KINDS = ("Công ty TNHH", "Công ty Cổ phần", "Hợp tác xã nông nghiệp")
_COMPANY_NAMES = ("Hưng Thịnh", "Phú Gia", "Thành Đạt", "Việt Phát", "An Khang", "Minh Long", "Hoàng Gia")

# Land-use mix of a ward (urban) and a rural commune, over CURRENT_LAND_USE_CODES.
_URBAN_MIX = {"ODT": 70, "SKC": 8, "LNK": 5, "BHK": 5, "TSN": 2, "SKK": 3, "LUC": 5, "LNQ": 2}
_RURAL_MIX = {
    "ONT": 25,
    "LUC": 20,
    "LUK": 10,
    "BHK": 10,
    "LNK": 8,
    "LNQ": 7,
    "LNC": 4,
    "RSX": 6,
    "RPH": 2,
    "RDD": 0.5,
    "TSN": 3,
    "TSL": 1,
    "LMU": 0.5,
    "NHK": 1.5,
    "LUN": 1,
    "SKC": 0.5,
    "SKK": 0.3,
    "SKS": 0.2,
}
# Median area in m² by land use (lognormal around it).
_AREA = {
    "ODT": 90,
    "ONT": 250,
    "LUC": 1200,
    "LUK": 900,
    "LUN": 2500,
    "BHK": 800,
    "NHK": 3000,
    "LNC": 4000,
    "LNQ": 1500,
    "LNK": 1200,
    "RSX": 20000,
    "RPH": 40000,
    "RDD": 60000,
    "TSL": 5000,
    "TSN": 2500,
    "LMU": 3000,
    "SKC": 3000,
    "SKK": 15000,
    "SKS": 25000,
}
_CERT_SERIES = ("AĐ", "BA", "BK", "BN", "BV", "BX", "CĐ", "CH", "CS", "CT", "CX", "DA", "DB", "DĐ")


def _mix(weights: Mapping[str, float]) -> tuple[list[str], np.ndarray]:
    p = np.array(list(weights.values()), dtype=float)
    return list(weights), p / p.sum()


_MIXES = {True: _mix(_URBAN_MIX), False: _mix(_RURAL_MIX)}
_PROVINCE_NAMES = {p.code: p.name for p in PRE_2025_PROVINCES}
_PREFIXES = sorted(_PROVINCE_NAMES)


@dataclass
class LandSummary:
    """What a run wrote and the dirt it planted."""

    rows: int = 0
    retired_codes: int = 0
    unknown_codes: int = 0
    nfd_names: int = 0
    bad_citizen_ids: int = 0
    organisations: int = 0
    first_updated_at: dt.datetime | None = None
    last_updated_at: dt.datetime | None = None


@dataclass(frozen=True)
class TouchSummary:
    """The parcels `touch_parcels` re-surveyed and the `updated_at` they now carry."""

    parcel_ids: tuple[int, ...]
    updated_at: dt.datetime


def citizen_id(province: str, birth_year: int, female: bool, serial: int) -> str:
    """A 12-digit ID: "0" + birth-province GSO code, century/gender digit, 2-digit year, 6 random digits."""
    century_gender = (0 if birth_year < 2000 else 2) + int(female)
    return f"0{province}{century_gender}{birth_year % 100:02d}{serial:06d}"


def _pick(options: Sequence[str], index: np.ndarray) -> list[str]:
    return [options[i] for i in index.tolist()]


def _block_rows(seed: int, block: int) -> Iterator[dict[str, Any]]:
    """The 500 parcels of one map sheet, dirt included (drawn as arrays: about 10 µs a parcel)."""
    commune: AdminUnit = PRE_2025_COMMUNES[block % len(PRE_2025_COMMUNES)]
    province = commune.parent_code or ""
    place = f"{commune.name}, {_PROVINCE_NAMES[province]}"
    urban = commune.name.startswith("Phường")
    codes, weights = _MIXES[urban]
    rng = seeded_rng(seed, _TAG_BLOCK, block)
    n = BLOCK
    parcel_nos = np.sort(rng.choice(np.arange(1, 801), size=n, replace=False)).tolist()
    uses = _pick(codes, rng.choice(len(codes), size=n, p=weights))
    spread = rng.lognormal(0, 0.5, size=n).tolist()
    female = (rng.random(n) < 0.45).tolist()
    birth_years = rng.integers(1940, 2006, size=n).tolist()
    homes = [
        province if stay else _PREFIXES[i]
        for stay, i in zip((rng.random(n) < 0.75).tolist(), rng.integers(len(_PREFIXES), size=n).tolist(), strict=True)
    ]
    serials = rng.integers(0, 1_000_000, size=n).tolist()
    surnames = _pick(_SURNAMES, rng.choice(len(_SURNAMES), size=n, p=_SURNAME_P))
    middles, givens = rng.integers(10, size=n).tolist(), rng.integers(20, size=n).tolist()
    house_no, street = rng.integers(1, 300, size=n).tolist(), rng.integers(len(STREETS), size=n).tolist()
    hamlet = rng.integers(1, 15, size=n).tolist()
    no_certificate = (rng.random(n) < 0.07).tolist()
    series, cert_no = rng.integers(len(_CERT_SERIES), size=n).tolist(), rng.integers(0, 10**6, size=n).tolist()
    seconds = rng.integers(0, int((LAST_UPDATE - FIRST_UPDATE).total_seconds()), size=n).tolist()
    # Exactly placed dirt, so every block carries the same rates and small scales still show it.
    dirt = rng.permutation(n).tolist()
    retired = set(dirt[: 1 + int(rng.random() < 0.5)])
    unknown, bad_id = dirt[2], dirt[3]
    organisation, nfd, honorific = set(dirt[4:19]), set(dirt[19:24]), set(dirt[24:34])
    extra = rng.integers(0, 10**9, size=4).tolist()  # draws for the dirt rows
    for j in range(n):
        use = uses[j]
        if j in retired:
            use = RETIRED_LAND_USE_CODES[extra[0] % len(RETIRED_LAND_USE_CODES)]
        elif j == unknown:
            use = UNKNOWN_LAND_USE_CODES[extra[1] % len(UNKNOWN_LAND_USE_CODES)]
        sex = int(female[j])
        ident: str | None = citizen_id(homes[j], birth_years[j], female[j], serials[j])
        name = f"{surnames[j]} {_MIDDLE[sex][middles[j]]} {_GIVEN[sex][givens[j]]}"
        if j in organisation:
            kind = _COMPANY_KINDS[serials[j] % len(_COMPANY_KINDS)]
            name = f"UBND {commune.name}" if givens[j] < 6 else f"{kind} {_COMPANY_NAMES[middles[j] % 7]}"
            ident = None
        elif j == bad_id and ident is not None:
            ident = ident[1:] if extra[2] % 2 else f"{10**8 + extra[3] % (9 * 10**8)}"
        if j in honorific and ident is not None:
            name = f"{'Bà' if sex else 'Ông'} {name}"
        if j in nfd:
            name = unicodedata.normalize("NFD", name)
        if use in ("ODT", "ONT") and urban:
            address = f"Số {house_no[j]} {STREETS[street[j]]}, {place}"
        else:
            address = f"{'Tổ dân phố' if urban else 'Thôn'} {hamlet[j]}, {place}"
        yield {
            "parcel_id": block * n + j + 1,
            "map_sheet": block // len(PRE_2025_COMMUNES) + 1,
            "parcel_no": parcel_nos[j],
            "commune_code": commune.code,
            "area_m2": round(_AREA.get(use, 500) * spread[j], 1),
            "land_use_code": use,
            "user_name": name,
            "citizen_id": ident,
            "address": address,
            "certificate_no": None if no_certificate[j] else f"{_CERT_SERIES[series[j]]} {cert_no[j]:06d}",
            "updated_at": FIRST_UPDATE + dt.timedelta(seconds=seconds[j]),
        }


def generate(url: str, *, seed: int = 2026, scale: float = 1.0) -> LandSummary:
    """(Re)create `parcels` at `url` with 200 000 x scale parcels, block by block (bounded memory)."""
    check_scale(scale)
    rows = scaled(ROWS_AT_SCALE_1, scale)
    engine = sa.create_engine(url)
    try:
        log.info("land: recreating parcels at %s (%d rows, seed %d)", safe_url(url), rows, seed)
        recreate(engine, metadata)
        writer = ChunkWriter(engine, parcels_table)
        summary = LandSummary()
        for block in range((rows + BLOCK - 1) // BLOCK):
            block_rows = list(_block_rows(seed, block))[: rows - block * BLOCK]
            _count(summary, block_rows)
            writer.extend(block_rows)
        writer.flush()
    finally:
        engine.dispose()
    log.info("land: %s", summary)
    return summary


def _count(summary: LandSummary, rows: Sequence[dict[str, Any]]) -> None:
    """Add the rows and the dirt they visibly carry (an NFD name differs from its NFC form) to summary."""
    summary.rows += len(rows)
    for r in rows:
        summary.retired_codes += r["land_use_code"] in RETIRED_LAND_USE_CODES
        summary.unknown_codes += r["land_use_code"] in UNKNOWN_LAND_USE_CODES
        summary.nfd_names += not unicodedata.is_normalized("NFC", r["user_name"])
        summary.organisations += r["citizen_id"] is None
        summary.bad_citizen_ids += r["citizen_id"] is not None and len(r["citizen_id"]) != 12
        summary.first_updated_at = min(summary.first_updated_at or r["updated_at"], r["updated_at"])
        summary.last_updated_at = max(summary.last_updated_at or r["updated_at"], r["updated_at"])


def touch_parcels(url: str, n: int, seed: int = 2026) -> TouchSummary:
    """Re-survey n parcels: a new area and an `updated_at` one hour past the newest, as late updates do.

    Which parcels is decided by the seed and the current newest `updated_at`, so repeated calls
    touch different parcels, and the same database state with the same seed touches the same ones.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    engine = sa.create_engine(url)
    try:
        require_rows(engine, [parcels_table], url)
        t = parcels_table.c
        with engine.connect() as conn:
            low, high, newest = conn.execute(
                sa.select(sa.func.min(t.parcel_id), sa.func.max(t.parcel_id), sa.func.max(t.updated_at))
            ).one()
        count = min(n, high - low + 1)
        rng = seeded_rng(seed, _TAG_TOUCH, int(newest.timestamp()))
        ids = sorted(int(i) + low for i in rng.choice(high - low + 1, size=count, replace=False))
        updated_at = newest.replace(microsecond=0) + dt.timedelta(hours=1)
        with engine.begin() as conn:
            areas = dict(conn.execute(sa.select(t.parcel_id, t.area_m2).where(t.parcel_id.in_(ids))).all())
            factors = rng.uniform(0.95, 1.05, size=len(ids))
            conn.execute(
                sa.update(parcels_table)
                .where(t.parcel_id == sa.bindparam("pid"))
                .values(area_m2=sa.bindparam("area"), updated_at=sa.bindparam("ts")),
                [
                    {"pid": pid, "area": round(areas[pid] * float(f), 1), "ts": updated_at}
                    for pid, f in zip(ids, factors, strict=True)
                    if pid in areas
                ],
            )
    finally:
        engine.dispose()
    log.info("land: touched %d parcels at %s", len(ids), updated_at)
    return TouchSummary(tuple(ids), updated_at)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: `generate` the register or `touch` some parcels."""
    parser = argparse.ArgumentParser(prog="python -m units.land", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    gen = commands.add_parser("generate", help="drop, recreate and fill `parcels`")
    touch = commands.add_parser("touch", help="re-survey n parcels (late updates)")
    for sub in (gen, touch):
        sub.add_argument("--url", required=True, help="SQLAlchemy URL of the target database")
        sub.add_argument("--seed", type=int, default=2026)
    gen.add_argument("--scale", type=float, default=1.0, help="1.0 = 200 000 parcels")
    touch.add_argument("--n", type=int, default=100)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "generate":
        generate(args.url, seed=args.seed, scale=args.scale)
    else:
        touch_parcels(args.url, args.n, seed=args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
