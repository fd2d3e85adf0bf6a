"""Hourly VN_AQI against hand-computed values (breakpoints in DOMAIN.md §4)."""

import math

import pytest

from transforms.aqi import HOURLY_BREAKPOINTS, INDEX_LEVELS, SENTINEL, sub_index, vn_aqi_hourly


def aqi(**values: float | None) -> int | None:
    readings = {name: None for name in ("pm25", "pm10", "no2", "so2", "co", "o3")}
    readings.update(values)
    return vn_aqi_hourly(**readings)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"pm25": 0}, 0),
        ({"pm25": 25}, 50),  # top of the first band
        ({"pm25": 37.5}, 75),  # halfway between 25 (50) and 50 (100)
        ({"pm25": 65}, 125),  # 100 + 50 * 15/30
        ({"pm25": 200}, 250),  # 200 + 100 * 50/100
        ({"pm10": 100}, 75),  # 50 + 50 * 50/100
        ({"pm25": 12.6}, 25),  # 25.2 rounds down
        ({"pm25": 12.75}, 26),  # 25.5 rounds half up, not to even
        ({"pm25": 10, "no2": 300}, 110),  # NO2 dominates: 100 + 50 * 100/500
        ({"pm25": 10, "o3": 180}, 75),  # 1-hour O3 table: 50 + 50 * 20/40
        ({"pm25": 10, "co": 20000}, 75),  # CO in µg/m³: 50 + 50 * 10000/20000
        ({"pm25": 10, "so2": 125}, 50),
        ({"pm25": 600}, 500),  # above the table: capped at the top of the scale
    ],
)
def test_hand_computed_values(values: dict[str, float], expected: int) -> None:
    assert aqi(**values) == expected


def test_no_usable_value_gives_none() -> None:
    assert aqi() is None


def test_pm_is_required() -> None:
    """Decision 1459 computes the index only when PM2.5 or PM10 is available."""
    assert aqi(no2=300, o3=180) is None
    assert aqi(pm25=SENTINEL, pm10=SENTINEL, no2=300) is None


@pytest.mark.parametrize("missing", [None, SENTINEL, -1.0, math.nan])
def test_missing_values_are_ignored(missing: float | None) -> None:
    assert aqi(pm25=missing, pm10=100, so2=missing) == 75
    assert aqi(pm25=37.5, pm10=missing, no2=missing, co=missing, o3=missing) == 75


def test_breakpoint_tables_align_with_index_levels() -> None:
    for name, table in HOURLY_BREAKPOINTS.items():
        assert len(table) == len(INDEX_LEVELS), name
        assert list(table) == sorted(table), name
        for concentration, level in zip(table, INDEX_LEVELS, strict=True):
            assert sub_index(concentration, table) == level, (name, concentration)
