"""The transform stage: apply the spec's transforms batch by batch, drop duplicate keys, enforce the contract.

Input is the extraction's staged Parquet, ordered by key; output is the Parquet that is validated
and, if it passes, released. The contract check runs last: every column of the spec must be there
with a value of its declared type, or the run stops naming the column.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from datashare.exceptions import ContractError, TransformError
from datashare.parquet import BatchWriter, iter_batches
from datashare.source.typemap import arrow_schema
from datashare.spec import DatasetSpec
from transforms.registry import resolve

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TransformResult:
    """What the transform stage wrote."""

    path: Path
    rows: int
    duplicates_dropped: int
    """Rows dropped because an earlier row had the same key and the same values."""
    conflicts_dropped: int
    """Rows dropped because an earlier row had the same key but other values (reported)."""


def _same(a: pa.Array, b: pa.Array) -> pa.Array:
    """Element-wise equality where two nulls count as equal."""
    eq = pc.fill_null(pc.equal(a, b), False)
    return pc.or_(eq, pc.and_(pc.is_null(a), pc.is_null(b)))


def _all(masks: list[pa.Array]) -> pa.Array:
    return functools.reduce(pc.and_, masks)


def _head(previous: pa.RecordBatch | None, name: str) -> pa.Array | None:
    """The last value of ``name`` in the previous batch (one element), None for the first batch."""
    return previous.column(name).slice(previous.num_rows - 1, 1) if previous is not None else None


def _equals_preceding(col: pa.Array, head: pa.Array | None) -> pa.Array:
    """Per row, whether the value equals the preceding row's (nulls equal nothing); slices, no copies."""
    rest = pc.equal(col.slice(1), col.slice(0, len(col) - 1))
    first = pc.equal(col.slice(0, 1), head) if head is not None else pa.array([False])
    return pc.fill_null(pa.concat_arrays([first.cast(pa.bool_()), rest]), False)


def _same_as_preceding(col: pa.Array, head: pa.Array | None, rows: pa.Array, first: bool) -> pa.Array:
    """For the rows at ``rows`` (row 0 first when ``first``), whether they equal their preceding row."""
    later = rows.slice(1) if first else rows
    same = _same(col.take(later), col.take(pc.subtract(later, 1)))
    if first:
        same = pa.concat_arrays([_same(col.slice(0, 1), head), same])
    return same


def drop_duplicate_keys(
    batch: pa.RecordBatch, previous: pa.RecordBatch | None, key: list[str]
) -> tuple[pa.RecordBatch, int, int]:
    """Drop rows whose key equals the preceding row's (input ordered by key); keep the first.

    Returns the batch kept, the exact duplicates dropped and the conflicting rows dropped. Only the
    duplicate rows are compared column by column, so a clean batch costs one pass over its key.
    """
    if batch.num_rows == 0:
        return batch, 0, 0
    dup = _all([_equals_preceding(batch.column(k), _head(previous, k)) for k in key])
    ndup = pc.sum(dup).as_py() or 0
    if not ndup:
        return batch, 0, 0
    rows = pc.indices_nonzero(dup)
    first = bool(dup[0].as_py())
    same_row = _all([_same_as_preceding(batch.column(n), _head(previous, n), rows, first) for n in batch.schema.names])
    conflicts = ndup - (pc.sum(same_row).as_py() or 0)
    return batch.filter(pc.invert(dup)), ndup - conflicts, conflicts


def enforce_contract(batch: pa.RecordBatch, spec: DatasetSpec, target: pa.Schema | None = None) -> pa.RecordBatch:
    """Select the contract's columns in order, as the contract's types exactly, or name what is wrong.

    A value the type cannot hold exactly (a fraction in an integer column, NaN, text in a number
    column...) is a problem (:mod:`datashare.source.conform`): recorded in the spec's ``source_problems``
    column so the suite quarantines the row, or, without one, a :class:`ContractError` naming the
    dataset, the column and the value. Nothing is cast by truncation.
    """
    from datashare.source.conform import Contract, conform_array, problems_column, settle_problems, show

    target = target if target is not None else arrow_schema(spec)
    columns = {c.name: c for c in spec.columns}
    collector = problems_column(spec)
    arrays: dict[str, pa.Array] = {}
    problems: dict[int, list[str]] = {}
    retyped: list[str] = []
    for field in target:
        if collector is not None and field.name == collector.name:
            continue  # filled below (created when nothing wrote a problem yet)
        if field.name not in batch.schema.names:
            raise ContractError(f"{spec.id}: column {field.name!r} of the contract is missing after the transforms")
        col = batch.column(field.name)
        array, found = conform_array(col, Contract.of(columns[field.name]))
        if found and len(found) == len(col) - col.null_count and not col.type.equals(field.type):
            first = found[min(found)]
            retyped.append(f"column {field.name!r} has type {col.type}, the contract says {field.type}: e.g. {first}")
        arrays[field.name] = array
        for row, text in found.items():
            problems.setdefault(row, []).append(text)
    if retyped and collector is None:  # every value of a column: a type that changed, not a few dirty rows
        raise ContractError(f"{spec.id}: " + "; ".join(retyped))

    def where(row: int) -> str:
        return "row with key " + ", ".join(f"{k}={show(_value(batch, k, row))}" for k in spec.key)

    found = settle_problems(spec, collector, problems, batch.num_rows, stage="contract", where=where)
    if collector is not None:
        from transforms.parse import add_problems

        arrays[collector.name] = add_problems(batch, collector.name, found).column(collector.name).cast(pa.string())
    return pa.RecordBatch.from_arrays([arrays[f.name] for f in target], schema=target)


def _value(batch: pa.RecordBatch, name: str, row: int) -> object:
    try:
        return batch.column(name)[row].as_py()
    except (OverflowError, ValueError):
        return batch.column(name)[row]


def protect_personal_data(batch: pa.RecordBatch, spec: DatasetSpec, key: bytes | None) -> pa.RecordBatch:
    """Pseudonymise or mask the columns the spec marks as personal data (dropping happens in the contract)."""
    from transforms.privacy import mask_array, pseudonymise_array

    arrays = []
    for i, field in enumerate(batch.schema):
        col = batch.column(i)
        handling = _handling(spec, field.name)
        if handling == "pseudonymise":
            col = pseudonymise_array(col, key)  # type: ignore[arg-type]
        elif handling == "mask":
            col = mask_array(col)
        arrays.append(col)
    names = batch.schema.names
    return pa.RecordBatch.from_arrays(arrays, names=names)


def _handling(spec: DatasetSpec, name: str) -> str:
    for c in spec.columns:
        if c.name == name:
            return c.personal_data.value
    return "none"


def _batches(paths: Sequence[Path], size: int) -> Iterator[pa.RecordBatch]:
    for path in paths:
        yield from iter_batches(path, size)


def transform(spec: DatasetSpec, source: Path | Sequence[Path], target: Path) -> TransformResult:
    """Run the transform stage from ``source`` (staged extraction, or its key ranges in order) to ``target``."""
    sources = [source] if isinstance(source, Path) else list(source)
    steps = []
    for step in spec.transforms:
        try:
            steps.append((step.name, resolve(step.name), step.args))
        except KeyError as exc:
            raise TransformError(f"{spec.id}: {exc.args[0]}") from None
    schema = arrow_schema(spec)
    protected = any(c.personal_data.value in ("pseudonymise", "mask") for c in spec.columns)
    key = None
    if any(c.personal_data.value == "pseudonymise" for c in spec.columns):
        from transforms.privacy import PseudonymKeyMissing, pseudonym_key

        try:
            key = pseudonym_key()
        except PseudonymKeyMissing as exc:
            raise TransformError(f"{spec.id}: {exc}") from None
    target.parent.mkdir(parents=True, exist_ok=True)
    rows = dups = conflicts = 0
    previous: pa.RecordBatch | None = None
    with BatchWriter(target, schema, background=True) as writer:
        for raw in _batches(sources, spec.source.batch_rows):
            batch = raw
            for name, func, args in steps:
                try:
                    batch = func(batch, **args)
                except (KeyError, TypeError, ValueError, pa.ArrowException) as exc:
                    raise TransformError(f"{spec.id}: transform {name!r} failed: {exc}") from None
            kept, d, c = drop_duplicate_keys(batch, previous, list(spec.key))
            if batch.num_rows:
                previous = batch
            dups += d
            conflicts += c
            if protected:
                kept = protect_personal_data(kept, spec, key)
            out = enforce_contract(kept, spec, schema)
            writer.write(out)
            rows += out.num_rows
    if dups:
        log.info("%s: dropped %s exact duplicate rows", spec.id, dups)
    if conflicts:
        log.warning("%s: dropped %s rows whose key repeats with other values (kept the first)", spec.id, conflicts)
    return TransformResult(path=target, rows=rows, duplicates_dropped=dups, conflicts_dropped=conflicts)
