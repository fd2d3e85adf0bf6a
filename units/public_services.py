"""Simulated database of the online public-service desk: the ministry's procedures and their dossiers.

Table `procedures` holds the 82 administrative procedures of the 2018 plan (DOMAIN.md, "The plan"):
67 online at level 3 and 15 at level 4, 11 of which are linked to the National Single Window.
Procedure names are real kinds of the ministry's procedures; which exact procedures were at which
level, their national codes ("1.004227" is the real format), time limits and receiving units are
PLACEHOLDERS, as is the ministry's unit code in the dossier codes.

Table `dossiers` holds one row per dossier (hồ sơ): code `V1V2V3.Z1Z2.Y1Y2.MX1X2-YYMMDD-XXXX` of
Circular 01/2018/TT-VPCP Art. 19 (receiving unit, day received, number of the day), received, due
and completed times, and status: of processed dossiers about 48.6% early, 40% on time and 7.7% late
(96.3% together, DOMAIN.md §5), the rest returned or withdrawn; `processing` while not completed.
From 15 August 2022 (Decree 42/2022) each dossier is `full` or `partial` online; before, NULL.

Time limits count working days (Monday to Friday; public holidays are ignored). A dossier's outcome
is drawn from an RNG seeded by its code, so `append_day` both adds the next day and completes the
dossiers a longer `generate` would have completed by then.

    python -m units.public_services generate --url sqlite:///var/dvc.db --scale 0.1
    python -m units.public_services append-day --url sqlite:///var/dvc.db --scale 0.1
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import sqlalchemy as sa

from units._common import ChunkWriter, check_scale, recreate, require_rows, safe_url, seeded_rng

log = logging.getLogger(__name__)

ONLINE_CLASSES_FROM = dt.datetime(2022, 8, 15)  # Decree 42/2022/NĐ-CP in force
WEEKDAY_DOSSIERS_AT_SCALE_1 = 120
STATUSES: dict[str, float] = {"early": 0.486, "on_time": 0.400, "late": 0.077, "returned": 0.025, "withdrawn": 0.012}
_STATUS_NAMES = list(STATUSES)
_STATUS_CUM = np.cumsum(list(STATUSES.values()))
_TAG_DAY, _TAG_DOSSIER = 1, 2

# PLACEHOLDER unit codes (QCVN 102:2016 identifiers) of the ministry's receiving departments; the
# ministry's own "G12" is UNCONFIRMED.
AGENCIES: dict[str, str] = {
    "Đất đai": "000.00.03.G12",
    "Tài nguyên nước": "000.00.05.G12",
    "Môi trường": "000.00.07.G12",
    "Biến đổi khí hậu": "000.00.09.G12",
    "Khoáng sản": "000.00.11.G12",
    "Địa chất": "000.00.11.G12",
    "Khí tượng thủy văn": "000.00.13.G12",
    "Đo đạc và bản đồ": "000.00.15.G12",
    "Viễn thám": "000.00.17.G12",
    "Biển và hải đảo": "000.00.19.G12",
}


class Procedure(NamedTuple):
    """One procedure: name, field, online level, National Single Window link, limit (working days), volume weight."""

    name: str
    field: str
    level: int
    nsw: bool
    days: int
    weight: int


def _p(name: str, field: str, days: int, weight: int = 1, *, level: int = 3, nsw: bool = False) -> Procedure:
    return Procedure(name, field, 4 if nsw else level, nsw, days, weight)


_W, _E, _C, _M = "Tài nguyên nước", "Môi trường", "Biến đổi khí hậu", "Khoáng sản"
_SCRAP = "giấy xác nhận đủ điều kiện về bảo vệ môi trường trong nhập khẩu phế liệu làm nguyên liệu sản xuất"
_KTTV = "giấy phép hoạt động dự báo, cảnh báo khí tượng thủy văn"
PROCEDURE_LIST: tuple[Procedure, ...] = (
    _p("Cấp giấy phép thăm dò nước dưới đất", _W, 30, 3),
    _p("Gia hạn, điều chỉnh giấy phép thăm dò nước dưới đất", _W, 25),
    _p("Cấp giấy phép khai thác, sử dụng nước dưới đất", _W, 30, 5),
    _p("Gia hạn, điều chỉnh giấy phép khai thác, sử dụng nước dưới đất", _W, 25, 4),
    _p("Cấp giấy phép khai thác, sử dụng nước mặt", _W, 30, 4),
    _p("Gia hạn, điều chỉnh giấy phép khai thác, sử dụng nước mặt", _W, 25, 3),
    _p("Cấp giấy phép khai thác, sử dụng nước biển", _W, 30),
    _p("Gia hạn, điều chỉnh giấy phép khai thác, sử dụng nước biển", _W, 25),
    _p("Cấp giấy phép xả nước thải vào nguồn nước", _W, 30, 4),
    _p("Gia hạn, điều chỉnh giấy phép xả nước thải vào nguồn nước", _W, 25, 3),
    _p("Cấp lại giấy phép tài nguyên nước", _W, 10),
    _p("Cấp giấy phép hành nghề khoan nước dưới đất quy mô lớn", _W, 10),
    _p("Gia hạn, điều chỉnh giấy phép hành nghề khoan nước dưới đất quy mô lớn", _W, 10),
    _p("Phê duyệt tiền cấp quyền khai thác tài nguyên nước", _W, 20, 3),
    _p("Điều chỉnh tiền cấp quyền khai thác tài nguyên nước", _W, 20),
    _p("Thẩm định báo cáo đánh giá tác động môi trường", _E, 45, 5),
    _p("Cấp giấy phép môi trường", _E, 30, 5),
    _p("Cấp đổi giấy phép môi trường", _E, 15),
    _p("Cấp điều chỉnh giấy phép môi trường", _E, 15, 2),
    _p("Cấp lại giấy phép môi trường", _E, 30),
    _p("Thẩm định phương án cải tạo, phục hồi môi trường trong hoạt động khai thác khoáng sản", _E, 30),
    _p("Kiểm tra, xác nhận hoàn thành công trình bảo vệ môi trường", _E, 30, 2),
    _p("Cấp giấy chứng nhận đủ điều kiện hoạt động dịch vụ quan trắc môi trường", _E, 30, 2),
    _p("Điều chỉnh nội dung giấy chứng nhận đủ điều kiện hoạt động dịch vụ quan trắc môi trường", _E, 20),
    _p("Cấp giấy phép xử lý chất thải nguy hại", _E, 30, 2),
    _p("Đăng ký chủ nguồn thải chất thải nguy hại", _E, 15, 2),
    _p("Chứng nhận nhãn sinh thái Việt Nam", _E, 30),
    _p("Cấp giấy phép tiếp cận nguồn gen", _E, 30),
    _p("Gia hạn giấy phép tiếp cận nguồn gen", _E, 15),
    _p("Cấp giấy chứng nhận cơ sở bảo tồn đa dạng sinh học", _E, 30),
    _p(f"Cấp {_SCRAP}", _E, 15, 3, nsw=True),
    _p(f"Cấp lại {_SCRAP}", _E, 10, nsw=True),
    _p(f"Điều chỉnh {_SCRAP}", _E, 10, nsw=True),
    _p("Chấp thuận vận chuyển xuyên biên giới chất thải nguy hại theo Công ước Basel", _E, 30, nsw=True),
    _p("Cấp phép đưa nguồn gen ra nước ngoài phục vụ nghiên cứu", _E, 20, nsw=True),
    _p("Đăng ký sử dụng các chất được kiểm soát", _C, 10, nsw=True),
    _p("Cấp giấy phép xuất khẩu, nhập khẩu các chất được kiểm soát", _C, 7, 2, nsw=True),
    _p("Điều chỉnh hạn ngạch nhập khẩu các chất được kiểm soát", _C, 7, nsw=True),
    _p("Đăng ký nhập khẩu thiết bị, sản phẩm có chứa các chất được kiểm soát", _C, 7, nsw=True),
    _p("Cấp thư xác nhận ý tưởng dự án theo Cơ chế phát triển sạch", _C, 15),
    _p("Cấp thư phê duyệt dự án theo Cơ chế phát triển sạch", _C, 30),
    _p("Cấp giấy phép thăm dò khoáng sản", _M, 90, 2),
    _p("Gia hạn giấy phép thăm dò khoáng sản", _M, 45),
    _p("Chuyển nhượng quyền thăm dò khoáng sản", _M, 45),
    _p("Trả lại giấy phép thăm dò khoáng sản hoặc trả lại một phần diện tích khu vực thăm dò khoáng sản", _M, 45),
    _p("Phê duyệt trữ lượng khoáng sản", _M, 90),
    _p("Cấp giấy phép khai thác khoáng sản", _M, 90, 2),
    _p("Gia hạn giấy phép khai thác khoáng sản", _M, 45),
    _p("Điều chỉnh giấy phép khai thác khoáng sản", _M, 45),
    _p("Chuyển nhượng quyền khai thác khoáng sản", _M, 45),
    _p("Trả lại giấy phép khai thác khoáng sản, trả lại một phần diện tích khu vực khai thác khoáng sản", _M, 45),
    _p("Đóng cửa mỏ khoáng sản", _M, 60),
    _p("Phê duyệt tiền cấp quyền khai thác khoáng sản", _M, 30, 2),
    _p("Điều chỉnh tiền cấp quyền khai thác khoáng sản", _M, 30),
    _p("Cấp phép mang mẫu vật địa chất, khoáng sản ra nước ngoài", _M, 10, nsw=True),
    _p("Xác nhận nguồn gốc hợp pháp của khoáng sản xuất khẩu", _M, 7, nsw=True),
    _p("Cung cấp thông tin, dữ liệu địa chất, khoáng sản", "Địa chất", 5, 2),
    _p("Cấp chứng chỉ định giá đất", "Đất đai", 15),
    _p("Cấp lại chứng chỉ định giá đất", "Đất đai", 10),
    _p("Cung cấp dữ liệu đất đai", "Đất đai", 3, 3, level=4),
    _p("Thẩm định phương án sử dụng đất của công ty nông, lâm nghiệp", "Đất đai", 30),
    _p(f"Cấp {_KTTV}", "Khí tượng thủy văn", 15),
    _p(f"Sửa đổi, bổ sung, gia hạn {_KTTV}", "Khí tượng thủy văn", 10),
    _p(f"Cấp lại {_KTTV}", "Khí tượng thủy văn", 10),
    _p("Cung cấp thông tin, dữ liệu khí tượng thủy văn", "Khí tượng thủy văn", 3, 3, level=4),
    _p("Cấp giấy phép hoạt động đo đạc và bản đồ", "Đo đạc và bản đồ", 15, 2),
    _p("Bổ sung nội dung giấy phép hoạt động đo đạc và bản đồ", "Đo đạc và bản đồ", 10),
    _p("Cấp lại giấy phép hoạt động đo đạc và bản đồ", "Đo đạc và bản đồ", 10),
    _p("Cấp chứng chỉ hành nghề đo đạc và bản đồ hạng I", "Đo đạc và bản đồ", 15, 2),
    _p("Cấp lại chứng chỉ hành nghề đo đạc và bản đồ hạng I", "Đo đạc và bản đồ", 10),
    _p("Cung cấp thông tin, dữ liệu, sản phẩm đo đạc và bản đồ", "Đo đạc và bản đồ", 3, 3, level=4),
    _p("Cấp phép hoạt động đo đạc và bản đồ cho tổ chức nước ngoài", "Đo đạc và bản đồ", 30),
    _p("Giao khu vực biển", "Biển và hải đảo", 30),
    _p("Gia hạn quyết định giao khu vực biển", "Biển và hải đảo", 20),
    _p("Sửa đổi, bổ sung quyết định giao khu vực biển", "Biển và hải đảo", 20),
    _p("Trả lại khu vực biển", "Biển và hải đảo", 20),
    _p("Cấp giấy phép nhận chìm ở biển", "Biển và hải đảo", 45),
    _p("Gia hạn giấy phép nhận chìm ở biển", "Biển và hải đảo", 20),
    _p("Sửa đổi, bổ sung giấy phép nhận chìm ở biển", "Biển và hải đảo", 20),
    _p("Trả lại giấy phép nhận chìm ở biển", "Biển và hải đảo", 20),
    _p("Cung cấp thông tin, dữ liệu tài nguyên, môi trường biển và hải đảo", "Biển và hải đảo", 5),
    _p("Cung cấp thông tin, dữ liệu, sản phẩm viễn thám", "Viễn thám", 3, level=4),
)


def procedure_code(index: int) -> str:
    """PLACEHOLDER national procedure code in the real "1.004227" / "2.001234" format."""
    return f"{2 if index % 4 == 3 else 1}.{4227 + 211 * index:06d}"


PROCEDURES: dict[str, Procedure] = {procedure_code(i): p for i, p in enumerate(PROCEDURE_LIST)}
_CODES = list(PROCEDURES)
_WEIGHTS = np.array([p.weight for p in PROCEDURE_LIST], dtype=float) / sum(p.weight for p in PROCEDURE_LIST)

metadata = sa.MetaData()

procedures_table = sa.Table(
    "procedures",
    metadata,
    sa.Column("code", sa.String(10), primary_key=True),
    sa.Column("name", sa.String(300), nullable=False),
    sa.Column("field", sa.String(60), nullable=False),
    sa.Column("level", sa.SmallInteger, nullable=False),
    sa.Column("national_single_window", sa.Boolean, nullable=False),
    sa.Column("time_limit_days", sa.SmallInteger, nullable=False),
    sa.Column("agency_code", sa.String(20), nullable=False),
    mysql_charset="utf8mb4",
    mysql_collate="utf8mb4_bin",
)

dossiers_table = sa.Table(
    "dossiers",
    metadata,
    sa.Column("dossier_code", sa.String(40), primary_key=True),
    sa.Column("procedure_code", sa.String(10), nullable=False),
    sa.Column("received_at", sa.DateTime, nullable=False),
    sa.Column("due_at", sa.DateTime, nullable=False),
    sa.Column("completed_at", sa.DateTime),
    sa.Column("status", sa.String(12), nullable=False),
    sa.Column("online_class", sa.String(10)),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    sa.Index("ix_dossiers_updated_at", "updated_at"),
    sa.Index("ix_dossiers_received_at", "received_at"),
    mysql_charset="utf8mb4",
    mysql_collate="utf8mb4_bin",
)


@dataclass
class PublicServicesSummary:
    """What a run wrote: rows, and dossiers by status."""

    procedures: int = 0
    dossiers: int = 0
    by_status: dict[str, int] | None = None
    first_received_at: dt.datetime | None = None
    last_received_at: dt.datetime | None = None


def add_working_days(day: dt.date, n: int) -> dt.date:
    """The n-th working day (Monday to Friday) after `day`; public holidays are not modelled."""
    while n > 0:
        day += dt.timedelta(days=1)
        n -= day.weekday() < 5
    return day


def _office_time(day: dt.date, seconds: int) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(8)) + dt.timedelta(seconds=seconds % (9 * 3600))


class _Outcome(NamedTuple):
    due_at: dt.datetime
    status: str  # the planned outcome, reached at `completed`
    completed: dt.datetime
    online: str | None


def _outcome(seed: int, code: str, procedure: str, received_at: dt.datetime) -> _Outcome:
    """Due time, planned status and completion, and online class of a dossier, from an RNG keyed by its code."""
    agency, _, sequence = code.rpartition("-")
    rng = seeded_rng(seed, _TAG_DOSSIER, received_at.date().toordinal(), int(agency.split(".")[2]), int(sequence))
    proc = PROCEDURES[procedure]
    received = received_at.date()
    due = add_working_days(received, proc.days)
    due_at = dt.datetime.combine(due, dt.time(17))
    draws = rng.random(2)
    status = _STATUS_NAMES[int(np.searchsorted(_STATUS_CUM, draws[0] * _STATUS_CUM[-1], side="right"))]
    seconds = int(rng.integers(0, 9 * 3600))
    if status == "early":
        completed = _office_time(add_working_days(received, int(rng.integers(0, proc.days))), seconds)
        completed = max(completed, received_at + dt.timedelta(hours=2))
    elif status == "on_time":
        completed = _office_time(due, seconds)
    elif status == "late":
        completed = _office_time(add_working_days(due, 1 + int(rng.geometric(0.25))), seconds)
    elif status == "returned":
        completed = _office_time(add_working_days(received, int(rng.integers(1, 4))), seconds)
    else:
        completed = _office_time(add_working_days(received, int(rng.integers(1, proc.days))), seconds)
    online = None
    if received_at >= ONLINE_CLASSES_FROM:
        online = "full" if proc.level == 4 and draws[1] < 0.85 else "partial"
    return _Outcome(due_at, status, completed, online)


def _row(seed: int, code: str, procedure: str, received_at: dt.datetime, as_of: dt.datetime) -> dict[str, Any]:
    """The dossier as the database holds it at `as_of`: completed, or still processing."""
    planned = _outcome(seed, code, procedure, received_at)
    done = planned.completed < as_of
    return {
        "dossier_code": code,
        "procedure_code": procedure,
        "received_at": received_at,
        "due_at": planned.due_at,
        "completed_at": planned.completed if done else None,
        "status": planned.status if done else "processing",
        "online_class": planned.online,
        "updated_at": planned.completed if done else received_at,
    }


def _day_rows(seed: int, scale: float, day: dt.date, as_of: dt.datetime) -> Iterator[dict[str, Any]]:
    """Dossiers received on `day` (at least one, so the newest day is always visible)."""
    rng = seeded_rng(seed, _TAG_DAY, day.toordinal())
    rate = WEEKDAY_DOSSIERS_AT_SCALE_1 * (1.0, 1.0, 1.0, 1.0, 1.0, 0.07, 0.03)[day.weekday()]
    count = max(1, int(rng.poisson(rate * scale * (1 + 0.08 * (day.year - 2022)))))
    procedures = rng.choice(len(_CODES), size=count, p=_WEIGHTS).tolist()
    if day.weekday() < 5:
        seconds = np.sort(rng.integers(int(7.5 * 3600), 17 * 3600, size=count)).tolist()
    else:
        seconds = np.sort(rng.integers(0, 24 * 3600, size=count)).tolist()
    numbers: dict[str, int] = {}
    for index, second in zip(procedures, seconds, strict=True):
        procedure = _CODES[index]
        agency = AGENCIES[PROCEDURES[procedure].field]
        numbers[agency] = numbers.get(agency, 0) + 1
        code = f"{agency}-{day:%y%m%d}-{numbers[agency]:04d}"
        yield _row(seed, code, procedure, dt.datetime.combine(day, dt.time()) + dt.timedelta(seconds=second), as_of)


def _procedure_rows() -> list[dict[str, Any]]:
    return [
        {
            "code": code,
            "name": p.name,
            "field": p.field,
            "level": p.level,
            "national_single_window": p.nsw,
            "time_limit_days": p.days,
            "agency_code": AGENCIES[p.field],
        }
        for code, p in PROCEDURES.items()
    ]


def generate(
    url: str, *, seed: int = 2026, scale: float = 1.0, days: int = 1765, start: dt.date = dt.date(2022, 1, 1)
) -> PublicServicesSummary:
    """(Re)create the tables at `url`: the 82 procedures and `days` days of dossiers (to 2026-10-31 by default)."""
    check_scale(scale)
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    as_of = dt.datetime.combine(start + dt.timedelta(days=days), dt.time())
    summary = PublicServicesSummary(procedures=len(PROCEDURES), by_status={})
    engine = sa.create_engine(url)
    try:
        log.info(
            "public_services: recreating tables at %s (%d days from %s, scale %s, seed %d)",
            safe_url(url),
            days,
            start,
            scale,
            seed,
        )
        recreate(engine, metadata)
        with engine.begin() as conn:
            conn.execute(sa.insert(procedures_table), _procedure_rows())
        writer = ChunkWriter(engine, dossiers_table)
        for offset in range(days):
            rows = list(_day_rows(seed, scale, start + dt.timedelta(days=offset), as_of))
            _count(summary, rows)
            writer.extend(rows)
        writer.flush()
    finally:
        engine.dispose()
    log.info("public_services: %s", summary)
    return summary


def _count(summary: PublicServicesSummary, rows: Sequence[dict[str, Any]]) -> None:
    by_status = summary.by_status if summary.by_status is not None else {}
    for row in rows:
        by_status[row["status"]] = by_status.get(row["status"], 0) + 1
        summary.first_received_at = min(summary.first_received_at or row["received_at"], row["received_at"])
        summary.last_received_at = max(summary.last_received_at or row["received_at"], row["received_at"])
    summary.by_status = by_status
    summary.dossiers += len(rows)


def append_day(url: str, *, seed: int = 2026, scale: float = 1.0) -> dt.date:
    """Receive the day after the newest dossier and complete what is due by its end; returns the day.

    `seed` and `scale` must be those of `generate`; the result then equals a `generate` one day longer.
    """
    check_scale(scale)
    engine = sa.create_engine(url)
    t = dossiers_table.c
    try:
        require_rows(engine, [procedures_table, dossiers_table], url)
        with engine.connect() as conn:
            newest = conn.execute(sa.select(sa.func.max(t.received_at))).scalar_one()
            open_rows = conn.execute(
                sa.select(t.dossier_code, t.procedure_code, t.received_at).where(t.completed_at.is_(None))
            ).all()
        day = newest.date() + dt.timedelta(days=1)
        as_of = dt.datetime.combine(day + dt.timedelta(days=1), dt.time())
        finished = [r for r in (_row(seed, *o, as_of) for o in open_rows) if r["completed_at"] is not None]
        with engine.begin() as conn:
            if finished:
                conn.execute(
                    sa.update(dossiers_table)
                    .where(t.dossier_code == sa.bindparam("code"))
                    .values(
                        completed_at=sa.bindparam("done"),
                        status=sa.bindparam("new_status"),
                        updated_at=sa.bindparam("done"),
                    ),
                    [
                        {"code": r["dossier_code"], "done": r["completed_at"], "new_status": r["status"]}
                        for r in finished
                    ],
                )
        writer = ChunkWriter(engine, dossiers_table)
        writer.extend(_day_rows(seed, scale, day, as_of))
        writer.flush()
    finally:
        engine.dispose()
    log.info("public_services: appended %s (%d new, %d completed)", day, writer.written, len(finished))
    return day


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: `generate` a whole database or `append-day` to one."""
    parser = argparse.ArgumentParser(prog="python -m units.public_services", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    gen = commands.add_parser("generate", help="drop, recreate and fill the tables")
    app = commands.add_parser("append-day", help="receive the next day, complete what is due")
    for sub in (gen, app):
        sub.add_argument("--url", required=True, help="SQLAlchemy URL of the target database")
        sub.add_argument("--seed", type=int, default=2026)
        sub.add_argument("--scale", type=float, default=1.0, help="1.0 = about 120 dossiers a working day")
    gen.add_argument("--days", type=int, default=1765)
    gen.add_argument("--start", type=dt.date.fromisoformat, default=dt.date(2022, 1, 1), help="YYYY-MM-DD")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "generate":
        generate(args.url, seed=args.seed, scale=args.scale, days=args.days, start=args.start)
    else:
        append_day(args.url, seed=args.seed, scale=args.scale)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
