"""The mapping between the spec's logical column types and Arrow, SQLAlchemy and Table Schema types."""

from __future__ import annotations

import pyarrow as pa
import sqlalchemy as sa

from datashare.source.conform import Contract
from datashare.spec import Column, ColumnType, DatasetSpec

SQLALCHEMY: dict[ColumnType, type[sa.types.TypeEngine]] = {
    ColumnType.string: sa.String,
    ColumnType.integer: sa.BigInteger,
    ColumnType.number: sa.Float,
    ColumnType.boolean: sa.Boolean,
    ColumnType.date: sa.Date,
    ColumnType.datetime: sa.DateTime,
    ColumnType.decimal: sa.Numeric,
}

TABLE_SCHEMA: dict[ColumnType, str] = {ColumnType.decimal: "number"}
"""Table Schema names of our types where they differ (Frictionless has no decimal: it is an exact number)."""


def arrow_type(column: Column, *, source: bool = False) -> pa.DataType:
    """The Arrow type of a column as published, or (``source``) as staged from the source."""
    return Contract.of(column, source=source).arrow


def arrow_field(column: Column) -> pa.Field:
    """The published Arrow field of a column, carrying its description as metadata."""
    meta = {
        b"description": f"{column.description.vi} / {column.description.en}".encode(),
        b"description_vi": column.description.vi.encode(),
        b"description_en": column.description.en.encode(),
    }
    if column.unit:
        meta[b"unit"] = column.unit.encode()
    return pa.field(column.name, arrow_type(column), nullable=True, metadata=meta)


def arrow_schema(spec: DatasetSpec) -> pa.Schema:
    """The published Arrow schema of a dataset, in contract order."""
    return pa.schema(
        [arrow_field(c) for c in spec.columns if c.personal_data.value != "drop"],
        metadata={b"dataset_id": spec.id.encode()},
    )


def source_type(column: Column) -> ColumnType:
    """The type a column has in the source."""
    return column.source_type or column.type


def table_schema(spec: DatasetSpec) -> dict[str, object]:
    """Frictionless Table Schema of the published data."""
    fields = []
    for c in spec.columns:
        if c.personal_data.value == "drop":
            continue
        field: dict[str, object] = {
            "name": c.name,
            "type": TABLE_SCHEMA.get(c.type, c.type.value),
            "title": c.description.en,
            "description": c.description.vi,
        }
        if c.unit:
            field["unit"] = c.unit
        if not c.nullable:
            field["constraints"] = {"required": True}
        fields.append(field)
    return {"fields": fields, "primaryKey": list(spec.key)}
