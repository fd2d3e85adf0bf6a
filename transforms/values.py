"""Value transforms: sensor sentinels and other in-band markers of missing data."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc


def null_sentinel(batch: pa.RecordBatch, *, columns: Sequence[str], value: float = -9999) -> pa.RecordBatch:
    """Turn a sentinel (the monitoring stations write -9999 for "no reading") into null.

    A sentinel left in place would be averaged into means and break every range rule.
    """
    missing = [n for n in columns if n not in batch.schema.names]
    if missing:
        raise KeyError(f"null_sentinel: column(s) {missing} not in the data")
    arrays = []
    for i, field in enumerate(batch.schema):
        col = batch.column(i)
        if field.name in columns:
            col = pc.if_else(pc.equal(col, pa.scalar(value).cast(field.type)), pa.nulls(len(col), field.type), col)
        arrays.append(col)
    return pa.RecordBatch.from_arrays(arrays, schema=batch.schema)
