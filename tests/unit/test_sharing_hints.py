"""Predicate hints judged against footer statistics: a file is skipped only when it provably holds no match."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datashare.catalog.hints import ColumnStats, FileStats, footer_stats, may_match


def _stats(**columns: ColumnStats | None) -> FileStats:
    return FileStats(rows=100, columns=dict(columns))


PARCELS = _stats(
    parcel_id=ColumnStats(1000, 1999, 0),
    area=ColumnStats(10.5, 900.0, 3),
    owner=ColumnStats("An", "Vy", 0),
    surveyed=ColumnStats(dt.date(2025, 1, 1), dt.date(2025, 6, 30), 0),
    note=ColumnStats(None, None, 100),  # only nulls
)


@pytest.mark.parametrize(
    ("hints", "kept"),
    [
        (["parcel_id = 1500"], True),
        (["parcel_id = 2500"], False),
        (["2500 = parcel_id"], False),
        (["parcel_id > 1999"], False),
        (["parcel_id >= 1999"], True),
        (["parcel_id < 1000"], False),
        (["1000 > parcel_id"], False),
        (["parcel_id <= 1000"], True),
        (["parcel_id <> 1500"], True),
        (["area > 900.5"], False),
        (["owner = 'Zoe'"], False),
        (["owner = 'Bình'"], True),
        (["owner = 'O''Brien'"], True),
        (["surveyed > '2025-07-01'"], False),
        (["surveyed = '2025-03-01'"], True),
        (["note IS NULL"], True),
        (["note IS NOT NULL"], False),
        (["note = 'x'"], False),  # a comparison with only nulls is never true
        (["parcel_id IS NULL"], False),
        (["parcel_id = 1500", "parcel_id = 2500"], False),  # hints are AND-ed
        # Anything not understood keeps the file:
        (["unknown_column = 1"], True),
        (["parcel_id IN (1, 2)"], True),
        (["parcel_id = 'not a number'"], True),
        (["parcel_id = 1 OR parcel_id = 2"], True),
        (["DROP TABLE parcels"], True),
    ],
)
def test_sql_hints(hints: list[str], kept: bool) -> None:
    assert may_match(PARCELS, hints, None) is kept


def _col(name: str, kind: str = "long") -> dict:
    return {"op": "column", "name": name, "valueType": kind}


def _lit(value: str, kind: str = "long") -> dict:
    return {"op": "literal", "value": value, "valueType": kind}


@pytest.mark.parametrize(
    ("tree", "kept"),
    [
        ({"op": "equal", "children": [_col("parcel_id"), _lit("1500")]}, True),
        ({"op": "equal", "children": [_col("parcel_id"), _lit("99")]}, False),
        ({"op": "lessThan", "children": [_lit("1999"), _col("parcel_id")]}, False),  # 1999 < parcel_id
        ({"op": "greaterThanOrEqual", "children": [_col("surveyed", "date"), _lit("2025-06-30", "date")]}, True),
        ({"op": "not", "children": [{"op": "equal", "children": [_col("parcel_id"), _lit("1500")]}]}, True),
        ({"op": "not", "children": [{"op": "lessThan", "children": [_col("parcel_id"), _lit("5000")]}]}, False),
        ({"op": "not", "children": [{"op": "isNull", "children": [_col("note")]}]}, False),
        (
            {
                "op": "and",
                "children": [
                    {"op": "greaterThan", "children": [_col("parcel_id"), _lit("1500")]},
                    {"op": "equal", "children": [_col("owner", "string"), _lit("Zoe", "string")]},
                ],
            },
            False,
        ),
        (
            {
                "op": "or",
                "children": [
                    {"op": "equal", "children": [_col("parcel_id"), _lit("5")]},
                    {"op": "equal", "children": [_col("owner", "string"), _lit("Bình", "string")]},
                ],
            },
            True,
        ),
        (
            {
                "op": "or",
                "children": [
                    {"op": "equal", "children": [_col("parcel_id"), _lit("5")]},
                    {"op": "equal", "children": [_col("parcel_id"), _lit("6")]},
                ],
            },
            False,
        ),
        ({"op": "and", "children": [{"op": "equal", "children": [_col("parcel_id"), _lit("5")]}]}, True),  # malformed
        ({"op": "frobnicate"}, True),
        ({"op": "equal", "children": [_col("parcel_id"), _col("area")]}, True),
        ("not a tree", True),
    ],
)
def test_json_hints(tree: object, kept: bool) -> None:
    assert may_match(PARCELS, [], tree) is kept


def test_a_file_without_statistics_is_always_kept() -> None:
    assert may_match(None, ["parcel_id = -1"], {"op": "equal", "children": [_col("x"), _lit("1")]})
    assert may_match(_stats(parcel_id=None), ["parcel_id = -1"], None)


def test_footer_statistics_span_row_groups_and_count_nulls(tmp_path: Path) -> None:
    path = tmp_path / "f.parquet"
    table = pa.table(
        {
            "id": pa.array([5, 3, 9, 7], pa.int64()),
            "name": pa.array(["b", None, "a", "x" * 40]),
            "at": pa.array([dt.datetime(2026, 1, 1)] * 4, pa.timestamp("us")),
            "day": pa.array([dt.date(2026, 1, 2), None, None, dt.date(2026, 1, 1)]),
        }
    )
    pq.write_table(table, path, row_group_size=2)

    stats = footer_stats(path, 4)

    assert stats.columns["id"] == ColumnStats(3, 9, 0)
    assert stats.columns["name"] == ColumnStats("a", "x" * 40, 1)
    assert stats.columns["day"] == ColumnStats(dt.date(2026, 1, 1), dt.date(2026, 1, 2), 2)
    delta = json.loads(stats.to_delta())
    assert delta["numRecords"] == 4
    assert delta["minValues"] == {"id": 3, "day": "2026-01-01"}  # long strings and zone-less times left out
    assert delta["nullCount"] == {"id": 0, "name": 1, "at": 0, "day": 2}
