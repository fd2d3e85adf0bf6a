"""Vietnam's air-quality index (VN_AQI, Decision 1459/QĐ-TCMT of 12/11/2019), hourly variant.

Pure Python, no dependencies, so the unit generator, transforms and quality rules can all share it.
Breakpoints come from DOMAIN.md §4: they agree across several independent implementations but were
not read from the decision itself.

The reported index is the maximum of the pollutants' sub-indices, and the decision requires at
least one of PM2.5 or PM10 to compute it. Concentrations are µg/m³ for every pollutant, CO included.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

#: Index levels shared by every pollutant's breakpoint table.
INDEX_LEVELS: tuple[int, ...] = (0, 50, 100, 150, 200, 300, 400, 500)

#: Hourly breakpoints (µg/m³), aligned with INDEX_LEVELS.
HOURLY_BREAKPOINTS: dict[str, tuple[float, ...]] = {
    "pm25": (0, 25, 50, 80, 150, 250, 350, 500),
    "pm10": (0, 50, 150, 250, 350, 420, 500, 600),
    "no2": (0, 100, 200, 700, 1200, 2350, 3100, 3850),
    "so2": (0, 125, 350, 550, 800, 1600, 2100, 2630),
    "co": (0, 10000, 30000, 45000, 60000, 90000, 120000, 150000),
    "o3": (0, 160, 200, 300, 400, 800, 1000, 1200),  # the 1-hour O3 table
}

# Tables in the argument order of vn_aqi_hourly: PM2.5 and PM10 first.
_TABLES: tuple[tuple[float, ...], ...] = tuple(
    HOURLY_BREAKPOINTS[name] for name in ("pm25", "pm10", "no2", "so2", "co", "o3")
)

#: Value that the monitoring stations write when a sensor has no reading.
SENTINEL: float = -9999.0


def _usable(value: float | None) -> float | None:
    """Return the value if it is a real measurement, else None.

    None, NaN and negative values (which covers the -9999 sensor sentinel) carry no information.
    """
    if value is None or math.isnan(value) or value < 0:
        return None
    return float(value)


def _round_half_up(value: float) -> int:
    """Round to the nearest integer, halves upwards (Python's round() would round 62.5 to 62)."""
    return math.floor(value + 0.5)


def sub_index(concentration: float, breakpoints: Sequence[float]) -> float:
    """Linear interpolation of one pollutant's sub-index between the surrounding breakpoints.

    Concentrations above the top breakpoint are capped at 500: the decision's treatment of values
    beyond the table could not be confirmed, and the scale ends at 500 (UNCONFIRMED).

    Args:
        concentration: a usable (non-negative) concentration in µg/m³.
        breakpoints: the pollutant's breakpoints, aligned with INDEX_LEVELS.
    """
    if concentration >= breakpoints[-1]:
        return float(INDEX_LEVELS[-1])
    for i in range(1, len(breakpoints)):
        low, high = breakpoints[i - 1], breakpoints[i]
        if concentration <= high:
            i_low, i_high = INDEX_LEVELS[i - 1], INDEX_LEVELS[i]
            return (i_high - i_low) / (high - low) * (concentration - low) + i_low
    raise AssertionError("unreachable: concentration below the top breakpoint was not bracketed")


def vn_aqi_hourly(
    pm25: float | None,
    pm10: float | None,
    no2: float | None,
    so2: float | None,
    co: float | None,
    o3: float | None,
) -> int | None:
    """Hourly VN_AQI of one station-hour: the rounded maximum of the available sub-indices.

    Simplification: the official hourly index feeds PM2.5 and PM10 through a 12-hour NowCast
    (weighted average of the last 12 hours). This function uses the raw hourly PM value instead,
    so it can be computed from a single row; a NowCast needs the station's history.

    Args:
        pm25, pm10, no2, so2, co, o3: hourly concentrations in µg/m³ (CO too). None, NaN and
            negative values, including the -9999 sensor sentinel, count as not measured.

    Returns:
        The integer index (0-500), or None when neither PM2.5 nor PM10 is usable, as the
        decision requires at least one of them.
    """
    readings = [_usable(raw) for raw in (pm25, pm10, no2, so2, co, o3)]
    if readings[0] is None and readings[1] is None:
        return None  # the decision requires PM2.5 or PM10
    indices = [sub_index(v, table) for v, table in zip(readings, _TABLES, strict=True) if v is not None]
    return _round_half_up(max(indices))
