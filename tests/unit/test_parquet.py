"""Staged Parquet depends only on the rows, not on how they were batched."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datashare.parquet import BatchWriter, parquet_rows

TABLE = pa.table({"a": list(range(2500)), "b": [f"Hà Nội {i}" for i in range(2500)]})


@pytest.mark.parametrize("sizes", [[2500], [300, 700, 1100, 400], [999, 1, 1500], [1000, 1000, 500]])
def test_same_rows_same_bytes_whatever_the_batches(tmp_path: Path, sizes: list[int]) -> None:
    reference = tmp_path / "reference.parquet"
    with BatchWriter(reference, TABLE.schema, row_group_rows=1000) as writer:
        writer.write(TABLE.to_batches()[0])
    path = tmp_path / "batched.parquet"
    with BatchWriter(path, TABLE.schema, row_group_rows=1000) as writer:
        start = 0
        for size in sizes:
            for batch in TABLE.slice(start, size).to_batches():
                writer.write(batch)
            start += size
    assert hashlib.sha256(path.read_bytes()).digest() == hashlib.sha256(reference.read_bytes()).digest()
    meta = pq.ParquetFile(path).metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [1000, 1000, 500]
    assert parquet_rows(path) == 2500 and pq.read_table(path).equals(TABLE)


def test_empty_file_keeps_the_schema(tmp_path: Path) -> None:
    path = tmp_path / "empty.parquet"
    with BatchWriter(path, TABLE.schema):
        pass
    assert parquet_rows(path) == 0 and pq.read_schema(path).names == ["a", "b"]
