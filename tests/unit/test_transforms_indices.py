"""VN_WQI classes and the vectorised hourly VN_AQI on tiny inline tables."""

from __future__ import annotations

import math
import random

import pyarrow as pa
import pytest

from transforms.aqi import HOURLY_BREAKPOINTS, SENTINEL, vn_aqi_hourly
from transforms.indices import POLLUTANTS, add_vn_aqi, add_wqi_class, wqi_class
from transforms.registry import resolve


@pytest.mark.parametrize(
    ("value", "label"),
    [
        (100, "very good"),
        (91, "very good"),
        (90, "good"),
        (76, "good"),
        (75, "medium"),
        (51, "medium"),
        (50, "bad"),
        (26, "bad"),
        (25, "poor"),
        (10, "poor"),
        (9, "very poor"),
        (0, "very poor"),
    ],
)
def test_wqi_bands(value: float, label: str) -> None:
    """DOMAIN.md §4: 91-100 very good, 76-90 good, 51-75 medium, 26-50 bad, 10-25 poor, below 10 very poor."""
    assert wqi_class(value) == label


@pytest.mark.parametrize("value", [-1, 100.5, math.nan])
def test_wqi_out_of_range(value: float) -> None:
    with pytest.raises(ValueError, match="is not a number from 0 to 100"):
        wqi_class(value)


def test_add_wqi_class() -> None:
    raw = pa.RecordBatch.from_pydict({"wqi": [95.0, None, 40.0]})

    out = add_wqi_class(raw, column="wqi", new_column="wqi_class")

    assert out.column("wqi_class").to_pylist() == ["very good", None, "bad"]
    assert out.schema.names == ["wqi", "wqi_class"]


def test_add_wqi_class_names_column_row_and_value() -> None:
    raw = pa.RecordBatch.from_pydict({"wqi": [95.0, 140.0]})
    with pytest.raises(ValueError, match=r"^add_wqi_class: column 'wqi', row 1: WQI 140\.0 is not a number"):
        add_wqi_class(raw, column="wqi", new_column="wqi_class")


def _readings(**values: list[float | None]) -> pa.RecordBatch:
    n = len(next(iter(values.values())))
    return pa.RecordBatch.from_pydict(
        {p: pa.array(values.get(p, [None] * n), pa.float64(), from_pandas=False) for p in POLLUTANTS}
    )


def test_add_vn_aqi_hand_computed() -> None:
    raw = _readings(
        pm25=[25.0, 12.75, 10.0, None, SENTINEL, 600.0],
        pm10=[None, None, None, 100.0, None, None],
        no2=[None, None, 300.0, None, 300.0, None],
    )

    out = add_vn_aqi(raw)

    # 25 -> 50; 12.75 -> 25.5 rounds up; NO2 dominates; PM10 alone; no PM -> null; capped at 500
    assert out.column("aqi_computed").to_pylist() == [50, 26, 110, 75, None, 500]
    assert out.schema.field("aqi_computed").type == pa.int64()


def test_add_vn_aqi_matches_the_scalar_function() -> None:
    rng = random.Random(7)
    columns: dict[str, list[float | None]] = {p: [] for p in POLLUTANTS}
    for _ in range(2000):
        for p in POLLUTANTS:
            top = HOURLY_BREAKPOINTS[p][-1]
            roll = rng.random()
            if roll < 0.1:
                value = None
            elif roll < 0.15:
                value = SENTINEL
            elif roll < 0.2:
                value = math.nan
            elif roll < 0.35:
                value = float(rng.choice(HOURLY_BREAKPOINTS[p]))
            else:
                value = rng.uniform(0, top * 1.1)
            columns[p].append(value)

    got = add_vn_aqi(_readings(**columns), new_column="aqi").column("aqi").to_pylist()

    expected = [vn_aqi_hourly(*(columns[p][i] for p in POLLUTANTS)) for i in range(2000)]
    assert got == expected


def test_add_vn_aqi_column_mapping() -> None:
    raw = pa.RecordBatch.from_pydict({"bui_pm25": [65.0], "pm10": [None], "no2": [1.0], "so2": [1.0], "co": [1.0]})

    out = add_vn_aqi(raw, columns={"pm25": "bui_pm25", "o3": None})

    assert out.column("aqi_computed").to_pylist() == [125]


def test_add_vn_aqi_bad_arguments() -> None:
    raw = _readings(pm25=[1.0])
    with pytest.raises(KeyError, match="o3x"):
        add_vn_aqi(raw, columns={"o3": "o3x"})
    with pytest.raises(KeyError, match="unknown pollutant"):
        add_vn_aqi(raw, columns={"pm1": "pm25"})
    with pytest.raises(ValueError, match="already exists"):
        add_vn_aqi(raw, new_column="pm25")


def test_registered() -> None:
    assert resolve("add_wqi_class") is add_wqi_class
    assert resolve("add_vn_aqi") is add_vn_aqi
