"""Typed cursors: compared as their column's type everywhere, never as text (``max("999", "1500") == "999"``)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from datashare.exceptions import ContractError
from datashare.pipeline.stages import stage_combine
from datashare.source import cursor
from datashare.spec import DatasetSpec, load_spec

REAL = Path(__file__).resolve().parents[2] / "dags" / "datasets" / "air_quality_hourly.yaml"


def _spec(column: dict[str, Any]) -> DatasetSpec:
    """The real incremental spec with its cursor column ``c`` of the given type."""
    base = load_spec(REAL).model_dump(mode="json", exclude_none=True)
    base["columns"] = [
        {"name": "id", "type": "integer", "nullable": False, "description": {"vi": "Mã", "en": "Id"}},
        {"name": "c", "nullable": False, "description": {"vi": "Con trỏ", "en": "Cursor"}, **column},
    ]
    base.update(key=["id"], mode={"kind": "incremental", "cursor": "c"}, transforms=[], freshness={})
    return DatasetSpec.model_validate(base)


CASES = [
    # (column, texts in any order, the newest as text)
    ({"type": "integer"}, ["999", "1500", "1000"], "1500"),
    ({"type": "integer"}, ["-5", "9223372036854775807", "10"], "9223372036854775807"),
    ({"type": "decimal", "precision": 12, "scale": 2}, ["9.50", "10.25", "10.2"], "10.25"),
    ({"type": "number"}, ["9.5", "10.25", "1e3"], "1000.0"),
    ({"type": "date"}, ["2026-09-30", "2026-10-01", "2026-01-31"], "2026-10-01"),
    (
        {"type": "datetime"},
        ["2026-11-01T09:00:00", "2026-11-01T10:00:00", "2026-11-01T08:59:59.999999"],
        "2026-11-01T10:00:00",
    ),
    ({"type": "string"}, ["B", "A", "AB"], "B"),
]


@pytest.mark.parametrize(
    ("column", "texts", "newest"), CASES, ids=[f"{c['type']}-{i}" for i, (c, _, _) in enumerate(CASES)]
)
def test_newest_compares_as_the_type_not_as_text(column: dict[str, Any], texts: list[str], newest: str) -> None:
    spec = _spec(column)
    assert cursor.newest(cursor.cursor_column(spec), [None, *texts]) == newest
    for text in texts:  # every text reads back to an equal value
        value = cursor.parse(text, cursor.cursor_column(spec))
        assert cursor.parse(cursor.text(value), cursor.cursor_column(spec)) == value


def test_text_max_would_have_been_wrong() -> None:
    """The latent bug of #10: as text, 999 beats 1500; 9.50 beats 10.25; typed, they do not."""
    assert max("999", "1500") == "999" and max("9.50", "10.25") == "9.50"
    assert cursor.newest(cursor.cursor_column(_spec({"type": "integer"})), ["999", "1500"]) == "1500"


def test_timestamps_of_other_offsets_compare_as_instants() -> None:
    local = cursor.cursor_column(_spec({"type": "datetime"}))
    # 03:00 UTC is 10:00 in Vietnam: later than 09:30 Vietnam time
    assert cursor.newest(local, ["2026-11-01T09:30:00", "2026-11-01T03:00:00+00:00"]) == "2026-11-01T10:00:00"
    utc = cursor.cursor_column(_spec({"type": "datetime", "publish_time": "utc"}))
    assert cursor.parse("2026-11-01T10:00:00", utc) == datetime(2026, 11, 1, 3, 0, tzinfo=UTC)
    assert cursor.newest(utc, ["2026-11-01T03:00:00+00:00", "2026-11-01T09:30:00"]) == "2026-11-01T03:00:00+00:00"
    assert cursor.bind_value(cursor.parse("2026-11-01T03:00:00+00:00", utc), utc) == datetime(2026, 11, 1, 10, 0)


def test_a_cursor_that_is_not_of_its_type_is_named() -> None:
    column = cursor.cursor_column(_spec({"type": "integer"}))
    for bad in ("1.5", "abc", "", "1e3"):
        with pytest.raises(ContractError, match=rf"cursor of column 'c': {bad!r} is not of type integer"):
            cursor.parse(bad, column)
    with pytest.raises(ContractError, match="is not of type number"):
        cursor.parse("NaN", cursor.cursor_column(_spec({"type": "number"})))


def test_the_manifest_records_the_type_and_old_manifests_read_by_the_spec() -> None:
    spec = _spec({"type": "integer"})
    assert cursor.type_record(spec) == {"type": "integer"}
    assert cursor.stored(spec, {"source_cursor": "1500", "source_cursor_type": {"type": "integer"}}) == "1500"
    assert cursor.stored(spec, {"source_cursor": "999"}) == "999"  # written before the type was recorded
    assert cursor.stored(spec, {"source_cursor": None}) is None
    stamp = _spec({"type": "datetime", "timezone": "Asia/Bangkok"})
    assert cursor.type_record(stamp) == {"type": "datetime", "timezone": "Asia/Bangkok"}
    # A release written while the column was declared in UTC reads back as the same instant.
    recorded = {"source_cursor": "2026-11-01T03:00:00", "source_cursor_type": {"type": "datetime", "timezone": "UTC"}}
    assert cursor.stored(stamp, recorded) == "2026-11-01T10:00:00"


def test_a_cursor_column_retyped_in_the_spec_is_named_when_it_cannot_compare() -> None:
    spec = _spec({"type": "integer"})
    recorded = {"source_cursor": "2026-11-01T10:00:00", "source_cursor_type": {"type": "datetime"}}
    with pytest.raises(ContractError, match=r"cursor .*is a datetime, but the spec's cursor column 'c' is now integer"):
        cursor.stored(spec, recorded)
    assert (
        cursor.stored(
            _spec({"type": "decimal", "precision": 10, "scale": 0}),
            {"source_cursor": "42", "source_cursor_type": {"type": "integer"}},
        )
        == "42"
    )


@pytest.mark.parametrize(
    ("column", "cursors", "newest"),
    [
        ({"type": "integer"}, ["999", None, "1500"], "1500"),
        ({"type": "date"}, ["2026-10-01", "2026-09-30"], "2026-10-01"),
        ({"type": "decimal", "precision": 6, "scale": 1}, ["99.5", "100.0"], "100.0"),
    ],
)
def test_combining_key_ranges_keeps_the_newest_cursor_by_type(column: dict, cursors: list, newest: str) -> None:
    ctx = SimpleNamespace(spec=_spec(column))
    parts = [
        {
            "files": [
                {"key": f"_staging/x/r/extract-{i}/part-{i:05d}.parquet", "rows": 1, "sha256": "0" * 64, "bytes": 1}
            ],
            "rows": 1,
            "cursor_from": None,
            "cursor_max": c,
            "ignored_columns": [],
            "base_version": None,
        }
        for i, c in enumerate(cursors)
    ]
    assert stage_combine(ctx, parts).cursor_max == newest  # type: ignore[arg-type]


def test_bound_values_have_the_column_type() -> None:
    assert cursor.parse("1500", cursor.cursor_column(_spec({"type": "integer"}))) == 1500
    assert cursor.parse(
        "10.25", cursor.cursor_column(_spec({"type": "decimal", "precision": 5, "scale": 2}))
    ) == Decimal("10.25")
    assert cursor.parse("2026-10-01", cursor.cursor_column(_spec({"type": "date"}))) == date(2026, 10, 1)
