"""Builders of derived, cross-sector datasets: pure functions from other datasets' releases to a table.

``province_environment_indicators`` summarises, per province and month, air quality (mean PM2.5,
hours over the QCVN 05:2023 one-hour limits), surface-water quality (WQI class counts) and water
extraction (active licences). It reads its inputs batch by batch and keeps only the small per-group
aggregates in memory.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator, Mapping, Sequence
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

#: One-hour limits of QCVN 05:2023/BTNMT, µg/Nm³ (DOMAIN.md §4). PM2.5 and PM10 have no one-hour limit.
QCVN05_HOURLY_LIMITS: dict[str, float] = {"so2": 350.0, "co": 30_000.0, "no2": 200.0, "o3": 200.0}

#: VN_WQI classes as column suffixes; the surface-water dataset writes them as transforms.indices.wqi_class
#: labels ("very good"), matched here with the space as an underscore.
WQI_CLASSES: tuple[str, ...] = ("very_good", "good", "medium", "bad", "poor", "very_poor")

KEY = ["province_code", "month"]


def _batches(paths: Sequence[Path], columns: list[str]) -> Iterator[pa.RecordBatch]:
    for path in paths:
        yield from pq.ParquetFile(path).iter_batches(batch_size=200_000, columns=columns)


def _month(column: pa.Array) -> pa.Array:
    return pc.strftime(column, format="%Y-%m")


def _air(paths: Sequence[Path]) -> pa.Table:
    """Per province and month: hours observed, PM2.5 sum and count, hours over a one-hour limit."""
    partials = []
    for batch in _batches(paths, ["province_code", "observed_at", "pm25", *QCVN05_HOURLY_LIMITS]):
        over = pa.array([False] * batch.num_rows)
        for name, limit in QCVN05_HOURLY_LIMITS.items():
            over = pc.or_(over, pc.fill_null(pc.greater(batch.column(name), limit), False))
        table = pa.table(
            {
                "province_code": batch.column("province_code"),
                "month": _month(batch.column("observed_at")),
                "pm25": batch.column("pm25"),
                "over": pc.cast(over, pa.int64()),
            }
        )
        partials.append(
            table.group_by(KEY).aggregate([("pm25", "sum"), ("pm25", "count"), ("over", "sum"), ("over", "count")])
        )
    if not partials:
        return pa.table({k: pa.array([], pa.string()) for k in KEY})
    total = (
        pa.concat_tables(partials)
        .group_by(KEY)
        .aggregate([("pm25_sum", "sum"), ("pm25_count", "sum"), ("over_sum", "sum"), ("over_count", "sum")])
    )
    mean = pc.divide(total["pm25_sum_sum"], pc.cast(total["pm25_count_sum"], pa.float64()))
    return pa.table(
        {
            "province_code": total["province_code"],
            "month": total["month"],
            "pm25_mean": pc.if_else(pc.equal(total["pm25_count_sum"], 0), None, pc.round(mean, 2)),
            "air_hours": total["over_count_sum"],
            "hours_over_qcvn05": total["over_sum_sum"],
        }
    )


def _water(paths: Sequence[Path]) -> dict[tuple[str, str], dict[str, int]]:
    counts: dict[tuple[str, str], dict[str, int]] = {}
    for batch in _batches(paths, ["province_code", "sampled_at", "wqi_class"]):
        months = _month(batch.column("sampled_at")).to_pylist()
        for province, month, cls in zip(
            batch.column("province_code").to_pylist(), months, batch.column("wqi_class").to_pylist(), strict=True
        ):
            cls = cls.replace(" ", "_") if isinstance(cls, str) else cls
            if province is None or month is None or cls not in WQI_CLASSES:
                continue
            slot = counts.setdefault((province, month), dict.fromkeys(WQI_CLASSES, 0))
            slot[cls] += 1
    return counts


def _licences(paths: Sequence[Path]) -> list[tuple[str, date, date | None]]:
    out = []
    for batch in _batches(paths, ["province_code", "status", "issued_on", "expires_on"]):
        for province, status, issued, expires in zip(
            *(batch.column(c).to_pylist() for c in ("province_code", "status", "issued_on", "expires_on")), strict=True
        ):
            if province and issued and status != "revoked":
                out.append((province, issued, expires))
    return out


def _active(licences: list[tuple[str, date, date | None]], province: str, month: str) -> int:
    """Licences of a province valid on any day of the month (issued before its end, not expired before its start)."""
    year, mon = (int(x) for x in month.split("-"))
    first, last = date(year, mon, 1), date(year, mon, calendar.monthrange(year, mon)[1])
    return sum(
        1
        for p, issued, expires in licences
        if p == province and issued <= last and (expires is None or expires >= first)
    )


def province_environment_indicators(inputs: Mapping[str, Sequence[Path]]) -> pa.Table:
    """Indicators per pre-2025 province and month, over the months the air-quality stations cover."""
    air = _air(inputs["air_quality_hourly"])
    water = _water(inputs.get("surface_water_quality", []))
    licences = _licences(inputs.get("water_extraction_licences", []))
    keys = sorted(set(zip(air["province_code"].to_pylist(), air["month"].to_pylist(), strict=True)) | set(water))
    air_rows = {
        (p, m): (mean, hours, over)
        for p, m, mean, hours, over in zip(
            *(air[c].to_pylist() for c in ("province_code", "month", "pm25_mean", "air_hours", "hours_over_qcvn05")),
            strict=True,
        )
    }
    columns: dict[str, list] = {
        c: [] for c in ["province_code", "month", "pm25_mean", "air_hours", "hours_over_qcvn05"]
    }
    for cls in WQI_CLASSES:
        columns[f"wqi_{cls}"] = []
    columns["active_licences"] = []
    has_licences = "water_extraction_licences" in inputs
    for province, month in keys:
        mean, hours, over = air_rows.get((province, month), (None, 0, 0))
        columns["province_code"].append(province)
        columns["month"].append(month)
        columns["pm25_mean"].append(mean)
        columns["air_hours"].append(hours)
        columns["hours_over_qcvn05"].append(over)
        classes = water.get((province, month), dict.fromkeys(WQI_CLASSES, 0))
        for cls in WQI_CLASSES:
            columns[f"wqi_{cls}"].append(classes[cls])
        columns["active_licences"].append(_active(licences, province, month) if has_licences else None)
    types = {"province_code": pa.string(), "month": pa.string(), "pm25_mean": pa.float64()}
    return pa.table({c: pa.array(v, types.get(c, pa.int64())) for c, v in columns.items()})
