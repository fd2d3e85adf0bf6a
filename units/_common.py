"""Helpers shared by the simulated unit databases: provinces, seeded RNGs and chunked inserts.

Province codes are the pre-2025 statistics-office (GSO) codes of Decision 124/2004/QĐ-TTg, which the
unit databases still carry; the 2025 merger's codes need validity dates (DOMAIN.md §6).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import sqlalchemy as sa

log = logging.getLogger(__name__)

#: Rows per INSERT chunk; one transaction per chunk keeps memory and lock time bounded.
CHUNK_ROWS = 50_000


@dataclass(frozen=True)
class Province:
    """A pre-2025 province with what the generators need to make its data plausible.

    Attributes:
        code: two-digit GSO code, e.g. "01" for Hà Nội.
        name: display name as used in station names (NFC).
        lat, lon: centre of the provincial capital, decimal degrees (WGS84).
        pm25_base: typical annual-mean PM2.5 in µg/m³; northern industrial provinces are dirtier.
        winter_amp: relative size of the dry/winter-season peak (strongest in the north).
        so2_base: typical SO2 in µg/m³ (coal and industry raise it).
        sites: real or plausible monitoring-site names in the province.
    """

    code: str
    name: str
    lat: float
    lon: float
    pm25_base: float
    winter_amp: float
    so2_base: float
    sites: tuple[str, ...]


PROVINCES: tuple[Province, ...] = (
    Province(
        "01",
        "Hà Nội",
        21.028,
        105.834,
        35.0,
        0.45,
        14.0,
        (
            "556 Nguyễn Văn Cừ",
            "Hàng Đậu",
            "Minh Khai - Bắc Từ Liêm",
            "Kim Liên",
            "Thành Công",
            "Trung Yên 3",
            "Tân Mai",
            "Đại học Bách khoa",
        ),
    ),
    Province(
        "79",
        "TP. Hồ Chí Minh",
        10.776,
        106.700,
        26.0,
        0.15,
        10.0,
        ("Thảo Cầm Viên", "Đại học Tôn Đức Thắng", "Hồng Bàng", "Tân Sơn Hòa", "Lãnh sự quán Mỹ"),
    ),
    Province("31", "Hải Phòng", 20.845, 106.688, 33.0, 0.40, 18.0, ("Lê Chân", "Cầu Rào", "An Dương")),
    Province("48", "Đà Nẵng", 16.054, 108.202, 16.0, 0.20, 7.0, ("41 Lê Duẩn", "Hòa Khánh", "Sơn Trà")),
    Province("92", "Cần Thơ", 10.045, 105.747, 22.0, 0.15, 8.0, ("Ninh Kiều", "Cái Răng")),
    Province("46", "Thừa Thiên Huế", 16.463, 107.590, 19.0, 0.20, 7.0, ("83 Hùng Vương", "Kim Long")),
    Province("22", "Quảng Ninh", 20.951, 107.080, 29.0, 0.40, 26.0, ("Bãi Cháy", "Cẩm Phả", "Uông Bí")),
    Province("56", "Khánh Hòa", 12.238, 109.197, 15.0, 0.15, 6.0, ("Nha Trang - Lê Thánh Tôn", "Cam Ranh")),
    Province("38", "Thanh Hóa", 19.807, 105.776, 30.0, 0.40, 15.0, ("Đông Vệ", "Nghi Sơn")),
    Province("40", "Nghệ An", 18.679, 105.681, 26.0, 0.35, 10.0, ("Vinh - Quang Trung", "Cửa Lò")),
    Province("75", "Đồng Nai", 10.957, 106.843, 27.0, 0.15, 16.0, ("Biên Hòa", "Khu công nghiệp Amata")),
    Province("74", "Bình Dương", 10.980, 106.652, 28.0, 0.15, 15.0, ("Thủ Dầu Một", "Dĩ An")),
    Province("26", "Vĩnh Phúc", 21.309, 105.605, 34.0, 0.45, 13.0, ("Vĩnh Yên", "Phúc Yên")),
    Province("27", "Bắc Ninh", 21.186, 106.076, 34.0, 0.45, 17.0, ("Suối Hoa", "Khu công nghiệp Quế Võ")),
    Province("68", "Lâm Đồng", 11.940, 108.458, 13.0, 0.15, 5.0, ("Đà Lạt - Hồ Xuân Hương", "Bảo Lộc")),
    Province("19", "Thái Nguyên", 21.594, 105.848, 35.0, 0.45, 22.0, ("Hoàng Văn Thụ", "Sông Công")),
    Province("30", "Hải Dương", 20.940, 106.333, 32.0, 0.45, 16.0, ("Nguyễn Lương Bằng", "Phả Lại")),
    Province("77", "Bà Rịa - Vũng Tàu", 10.346, 107.084, 20.0, 0.15, 12.0, ("Bãi Trước", "Phú Mỹ")),
)

PROVINCES_BY_CODE: dict[str, Province] = {p.code: p for p in PROVINCES}

#: Street names for stations past a province's named sites (large scales).
STREETS: tuple[str, ...] = (
    "Lê Lợi",
    "Trần Hưng Đạo",
    "Nguyễn Trãi",
    "Hai Bà Trưng",
    "Lý Thường Kiệt",
    "Quang Trung",
    "Hùng Vương",
    "Nguyễn Huệ",
    "Phan Chu Trinh",
    "Điện Biên Phủ",
    "Võ Thị Sáu",
    "Nguyễn Du",
    "Bà Triệu",
    "Hoàng Diệu",
    "Lê Thánh Tông",
    "Nguyễn Thị Minh Khai",
)


def seeded_rng(*keys: int) -> np.random.Generator:
    """A numpy Generator determined only by the keys (e.g. seed, station, day ordinal).

    Seeding per (seed, entity, day) makes each day's data independent of the scale and of the
    order of generation, so an appended day equals the same day from a larger full run.
    """
    return np.random.default_rng([int(k) for k in keys])


def insert_chunk(engine: sa.Engine, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert rows with one Core executemany inside one transaction.

    PostgreSQL through psycopg 3 uses COPY instead, several times faster for large scales.
    """
    if not rows:
        return
    if engine.dialect.name == "postgresql" and engine.dialect.driver == "psycopg":
        _copy_chunk(engine, table, rows)
        return
    with engine.begin() as conn:
        conn.execute(sa.insert(table), list(rows))


def _copy_chunk(engine: sa.Engine, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
    """Load rows into a PostgreSQL table with psycopg 3's COPY FROM STDIN, in one transaction."""
    columns = list(rows[0].keys())
    column_list = ", ".join(f'"{c}"' for c in columns)
    statement = f'COPY "{table.name}" ({column_list}) FROM STDIN'
    with engine.begin() as conn:
        driver_conn = conn.connection.driver_connection
        if driver_conn is None:
            raise RuntimeError(f"no psycopg connection behind the engine to COPY into {table.name}")
        with driver_conn.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row([row[c] for c in columns])


class ChunkWriter:
    """Buffers rows and flushes them in chunks of CHUNK_ROWS, logging progress."""

    def __init__(self, engine: sa.Engine, table: sa.Table, *, chunk_rows: int = CHUNK_ROWS) -> None:
        self.engine = engine
        self.table = table
        self.chunk_rows = chunk_rows
        self.buffer: list[dict[str, Any]] = []
        self.written = 0

    def extend(self, rows: Iterable[dict[str, Any]]) -> None:
        """Add rows, flushing whenever a full chunk is buffered."""
        self.buffer.extend(rows)
        if len(self.buffer) >= self.chunk_rows:
            self.flush()

    def flush(self) -> None:
        """Write whatever is buffered."""
        if not self.buffer:
            return
        insert_chunk(self.engine, self.table, self.buffer)
        self.written += len(self.buffer)
        log.info("%s: %d rows written", self.table.name, self.written)
        self.buffer = []


def safe_url(url: str) -> str:
    """The URL for logs and errors, password hidden."""
    return sa.make_url(url).render_as_string(hide_password=True)


def recreate(engine: sa.Engine, metadata: sa.MetaData) -> None:
    """Drop and create a unit's tables, so a generate run always starts from nothing."""
    metadata.drop_all(engine)
    metadata.create_all(engine)


def require_rows(engine: sa.Engine, tables: Sequence[sa.Table], url: str) -> None:
    """Raise LookupError naming the first table that is missing or empty (append before generate)."""
    inspector = sa.inspect(engine)
    for table in tables:
        if not inspector.has_table(table.name):
            raise LookupError(f"table {table.name} not found at {safe_url(url)}: run generate first")
    with engine.connect() as conn:
        for table in tables:
            if conn.execute(sa.select(sa.literal(1)).select_from(table).limit(1)).first() is None:
                raise LookupError(f"table {table.name} at {safe_url(url)} has no rows: run generate first")


def check_scale(scale: float) -> None:
    """Reject a scale that is not a positive number."""
    if not scale > 0:
        raise ValueError(f"scale must be a positive number, got {scale!r}")


def scaled(base: int, scale: float) -> int:
    """`base` entities at scale 1.0, at least one at any positive scale."""
    return max(1, round(base * scale))


def vn_number(value: float, decimals: int = 0, *, thousands: bool = True) -> str:
    """A number written the Vietnamese way: "." between thousands, "," before decimals ("1.250,5")."""
    text = f"{value:,.{decimals}f}" if thousands else f"{value:.{decimals}f}"
    return text.replace(",", "\0").replace(".", ",").replace("\0", ".")


def vn_date(day: dt.date) -> str:
    """A date as dd/mm/yyyy text, the way Vietnamese forms and legacy databases write it."""
    return f"{day.day:02d}/{day.month:02d}/{day.year:04d}"
