"""The type details of a column: decimals carry precision and scale, timestamps a time zone, problems a home."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from datashare.exceptions import SpecError
from datashare.source.typemap import arrow_schema, table_schema
from datashare.spec import DEFAULT_TIMEZONE, load_spec, parse_spec

REAL = Path(__file__).resolve().parents[2] / "dags" / "datasets" / "air_quality_hourly.yaml"
DATASETS = REAL.parent


def _with(**changes: Any) -> dict[str, Any]:
    """The real spec with column ``aqi`` changed, or an extra column appended (``extra``)."""
    data = yaml.safe_load(REAL.read_text(encoding="utf-8"))
    aqi = next(c for c in data["columns"] if c["name"] == "aqi")
    extra = changes.pop("extra", None)
    aqi.update(changes)
    if extra:
        data["columns"].append(extra)
    return data


def _problem() -> dict[str, Any]:
    return {"name": "problems", "type": "string", "computed": True, "source_problems": True,
            "description": {"vi": "Lỗi", "en": "Problems"}}  # fmt: skip


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"type": "decimal"}, "columns.aqi.precision: a decimal column declares 'precision' and 'scale'"),
        ({"type": "decimal", "precision": 5, "scale": 6}, "columns.aqi.scale: 6 is more than the precision 5"),
        (
            {"type": "decimal", "precision": 39, "scale": 0},
            "columns.aqi.precision: Input should be less than or equal to 38",
        ),
        ({"precision": 5, "scale": 2}, "'precision' and 'scale' belong to decimal columns"),
        ({"timezone": "Asia/Ho_Chi_Minh"}, "'timezone' and 'publish_time' belong to datetime columns"),
        ({"type": "datetime", "timezone": "Asia/Hanoi City"}, "is not an IANA time zone"),
        ({"type": "datetime", "timezone": "../../etc/passwd"}, "is not an IANA time zone"),
        ({"type": "datetime", "publish_time": "gmt"}, "columns.aqi.publish_time: Input should be 'local' or 'utc'"),
        ({"source_problems": True}, "only a computed string column collects source problems"),
        ({"extra": {**_problem(), "name": "p2"}, "source_problems": False}, None),
    ],
)
def test_type_details_are_checked_naming_the_column(changes: dict[str, Any], says: str | None) -> None:
    data = _with(**changes)
    if says is None:
        parse_spec(data, source="x.yaml")
        return
    with pytest.raises(SpecError) as info:
        parse_spec(data, source="air_quality_hourly.yaml")
    assert says in str(info.value), str(info.value)


def test_one_column_at_most_collects_source_problems() -> None:
    data = _with(extra=_problem())
    data["columns"].append({**_problem(), "name": "more_problems"})
    with pytest.raises(SpecError, match=r"only one column may declare source_problems"):
        parse_spec(data, source="x.yaml")


def test_a_boolean_cursor_is_refused() -> None:
    data = _with()
    data["columns"].append(
        {"name": "flag", "type": "boolean", "nullable": False, "description": {"vi": "c", "en": "c"}}
    )
    data["mode"] = {"kind": "incremental", "cursor": "flag"}
    with pytest.raises(SpecError, match=r"mode.cursor: column 'flag' is boolean"):
        parse_spec(data, source="x.yaml")


def test_decimal_and_utc_columns_have_their_arrow_and_table_schema_types() -> None:
    sent = {"name": "sent_at", "type": "datetime", "publish_time": "utc", "description": {"vi": "Gửi", "en": "Sent"}}
    spec = parse_spec(_with(type="decimal", precision=12, scale=2, extra=sent), source="x.yaml")
    schema = arrow_schema(spec)
    assert str(schema.field("aqi").type) == "decimal128(12, 2)"
    assert str(schema.field("sent_at").type) == "timestamp[us, tz=UTC]"
    assert str(schema.field("observed_at").type) == "timestamp[us]"
    fields = {f["name"]: f["type"] for f in table_schema(spec)["fields"]}  # type: ignore[index,union-attr]
    assert fields["aqi"] == "number" and fields["sent_at"] == "datetime"


def test_every_timestamp_column_of_the_real_specs_declares_vietnam_time() -> None:
    """The units store naive Vietnam time; the specs say so, and the published values stay as they were."""
    for path in sorted(DATASETS.glob("*.yaml")):
        spec = load_spec(path)
        for column in spec.columns:
            if column.type.value == "datetime":
                assert column.timezone == DEFAULT_TIMEZONE and not column.utc, f"{path.name}: {column.name}"
                assert str(arrow_schema(spec).field(column.name).type) == "timestamp[us]"


def test_the_freshness_column_publishes_vietnam_time() -> None:
    data = _with()
    observed = next(c for c in data["columns"] if c["name"] == "observed_at")
    observed["publish_time"] = "utc"
    with pytest.raises(SpecError, match=r"freshness.column: 'observed_at' must publish local Asia/Ho_Chi_Minh time"):
        parse_spec(data, source="x.yaml")
