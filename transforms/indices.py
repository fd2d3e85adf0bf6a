"""Environmental indices: the VN_WQI class of a water-quality index, and VN_AQI recomputed from pollutants.

WQI bands follow DOMAIN.md §4 (Decision 1460/QĐ-TCMT, as tabulated in biomedcentral s42834-022-00133-y).
Computing the WQI itself from the parameter groups is out of scope: the formula was not confirmed.
The AQI is the hourly VN_AQI of ``transforms.aqi`` (Decision 1459/QĐ-TCMT), vectorised, so that a
suite can compare it with the index a monitoring station reports.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pyarrow as pa

from transforms.aqi import HOURLY_BREAKPOINTS, INDEX_LEVELS

#: Lower bound of each VN_WQI band, best first (91-100 very good ... below 10 very poor).
WQI_BANDS: tuple[tuple[float, str], ...] = (
    (91, "very good"),
    (76, "good"),
    (51, "medium"),
    (26, "bad"),
    (10, "poor"),
    (0, "very poor"),
)

POLLUTANTS: tuple[str, ...] = ("pm25", "pm10", "no2", "so2", "co", "o3")


def wqi_class(value: float) -> str:
    """The VN_WQI band of one index value (0-100); ValueError for anything else."""
    if value is None or isinstance(value, bool) or math.isnan(value) or not 0 <= value <= 100:
        raise ValueError(f"WQI {value!r} is not a number from 0 to 100")
    return next(label for low, label in WQI_BANDS if value >= low)


def add_wqi_class(batch: pa.RecordBatch, *, column: str, new_column: str) -> pa.RecordBatch:
    """Add ``new_column`` with the VN_WQI band of ``column``; null stays null.

    Raises:
        ValueError: a value outside 0-100, naming column, row (within the batch) and value.
    """
    if column not in batch.schema.names:
        raise KeyError(f"add_wqi_class: column {column!r} not in the data")
    if new_column in batch.schema.names:
        raise ValueError(f"add_wqi_class: column {new_column!r} already exists")
    col = batch.column(column)
    if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type) or pa.types.is_decimal(col.type)):
        raise TypeError(f"add_wqi_class: column {column!r} has type {col.type}, expected a number")
    labels: list[str | None] = []
    for row, value in enumerate(col.to_pylist()):
        try:
            labels.append(None if value is None else wqi_class(float(value)))
        except ValueError as exc:
            raise ValueError(f"add_wqi_class: column {column!r}, row {row}: {exc}") from None
    return batch.append_column(new_column, pa.array(labels, pa.string()))


def add_vn_aqi(
    batch: pa.RecordBatch, *, new_column: str = "aqi_computed", columns: Mapping[str, str | None] | None = None
) -> pa.RecordBatch:
    """Add the hourly VN_AQI computed from the pollutant columns (µg/m³, CO too), as int64.

    Same result as ``transforms.aqi.vn_aqi_hourly`` row by row: null, NaN and negative values (the
    -9999 sentinel) count as not measured, the index is null without PM2.5 or PM10, halves round up.

    Args:
        new_column: name of the added column.
        columns: pollutant -> column name where the source names differ; None for a pollutant the
            source does not measure. By default each pollutant is read from the column of its name.
    """
    mapping: dict[str, str | None] = {p: p for p in POLLUTANTS}
    mapping.update(columns or {})
    unknown = sorted(set(mapping) - set(POLLUTANTS))
    if unknown:
        raise KeyError(f"add_vn_aqi: unknown pollutant(s) {unknown}; known: {list(POLLUTANTS)}")
    missing = [c for c in mapping.values() if c is not None and c not in batch.schema.names]
    if missing:
        raise KeyError(f"add_vn_aqi: column(s) {missing} not in the data")
    if new_column in batch.schema.names:
        raise ValueError(f"add_vn_aqi: column {new_column!r} already exists")
    subs, usable = [], {}
    for pollutant in POLLUTANTS:
        name = mapping[pollutant]
        if name is None:
            values = np.full(batch.num_rows, np.nan)
        else:
            values = batch.column(name).cast(pa.float64()).to_numpy(zero_copy_only=False)
        ok = np.greater_equal(values, 0, where=~np.isnan(values), out=np.zeros(batch.num_rows, bool))
        usable[pollutant] = ok
        sub = np.interp(np.where(ok, values, 0.0), HOURLY_BREAKPOINTS[pollutant], INDEX_LEVELS)
        subs.append(np.where(ok, sub, np.nan))
    has_pm = usable["pm25"] | usable["pm10"]
    best = np.fmax.reduce(np.vstack(subs), axis=0) if batch.num_rows else np.zeros(0)
    index = np.floor(np.where(has_pm, best, 0.0) + 0.5).astype(np.int64)
    return batch.append_column(new_column, pa.array(index, pa.int64(), mask=~has_pm))
