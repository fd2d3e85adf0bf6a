"""Fast extraction: the source's rows as Arrow record batches, read ahead in a thread, into staged Parquet.

PostgreSQL is read through ADBC (the server's binary COPY, decoded in C) and MariaDB/MySQL through
connectorx; both hand over Arrow batches, so no Python object is made per value. A reader thread
fetches the next batch while this thread converts and writes the previous one, so the database's
work and ours overlap: on two cores the server sorts and sends while we decode and encode.

The staged file equals the plain SQLAlchemy path's (same columns, types, values and row order; a test
compares the releases byte for byte). Where this path cannot promise that, for a source type it does
not map faithfully (``float4``, ``numeric``, time zones...), it raises :class:`FastPathUnsupported`
before reading a row and :func:`datashare.source.extract.extract` runs the plain path instead. It does the
same when a batch holds a value the contract cannot hold (NaN, a timestamp PostgreSQL calls
``infinity``, which ADBC wraps around to a date 290,000 years BC, a zero date connectorx cannot
convert): the plain path is the one place that names such values, so both paths fail, or
quarantine, alike.

Both readers run read-only: ADBC's session with ``default_transaction_read_only``, connectorx's
query prefixed ``SET STATEMENT tx_read_only=1 FOR`` (MariaDB; a server without it fails to start the
stream and the plain path, read-only by session, reads instead).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from datashare.parquet import STAGING_COMPRESSION, BatchWriter
from datashare.source.conform import Contract, fits
from datashare.source.connections import ConnectionInfo
from datashare.source.prefetch import read_ahead
from datashare.spec import DatasetSpec

log = logging.getLogger(__name__)

ENV_PATH = "DATASHARE_EXTRACT_PATH"
"""``plain`` forces the SQLAlchemy path everywhere (to compare, or to work around a driver)."""

# PostgreSQL types (ADBC's ``POSTGRESQL:type`` field metadata) whose values the plain path gives
# identically, per contract type. float4 is left out on purpose: psycopg parses its text form into
# a double (1.1), Arrow widens the binary float (1.100000023841858).
_PG_TYPES: dict[pa.DataType, frozenset[str]] = {
    pa.string(): frozenset({"text", "varchar", "bpchar", "name"}),
    pa.int64(): frozenset({"int2", "int4", "int8"}),
    pa.float64(): frozenset({"float8", "int2", "int4", "int8"}),
    pa.timestamp("us"): frozenset({"timestamp"}),
    pa.date32(): frozenset({"date"}),
    pa.bool_(): frozenset({"bool"}),
}


class FastPathUnsupported(Exception):
    """This source cannot be read faithfully by the fast path; the plain path should run instead."""


def fast_reader(info: ConnectionInfo) -> str | None:
    """``adbc`` or ``connectorx`` when the source has a fast path (and it is not switched off), else None."""
    if os.environ.get(ENV_PATH, "auto").strip().lower() == "plain":
        return None
    backend = info.sqlalchemy_url().get_backend_name()
    return {"postgresql": "adbc", "mysql": "connectorx", "mariadb": "connectorx"}.get(backend)


def literal_sql(sql: str, params: dict[str, Any], sa_types: dict[str, sa.types.TypeEngine], backend: str) -> str:
    """The query with its parameters rendered as escaped SQL literals (COPY and connectorx take no binds)."""
    from sqlalchemy.dialects import mysql, postgresql

    dialect = (
        postgresql.psycopg.dialect(paramstyle="named")
        if backend == "postgresql"
        else mysql.pymysql.dialect(paramstyle="named")
    )  # "named": no %% doubling of the query's own percent signs
    stmt = sa.text(sql).bindparams(*(sa.bindparam(k, v, type_=sa_types[k]) for k, v in params.items()))
    return str(stmt.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))


def _faithful(field: pa.Field, target: pa.DataType, *, pg: bool) -> bool:
    """Whether a source column converts to ``target`` exactly as the plain path converts its values."""
    t = field.type
    if pg:
        pg_type = (field.metadata or {}).get(b"POSTGRESQL:type", b"").decode()
        return pg_type in _PG_TYPES.get(target, frozenset())
    if pa.types.is_null(t):
        return True
    if target == pa.string():
        return pa.types.is_string(t) or pa.types.is_large_string(t)
    if target == pa.int64():
        return pa.types.is_integer(t)
    if target == pa.float64():
        return pa.types.is_float64(t) or pa.types.is_integer(t)
    if target == pa.timestamp("us"):
        return pa.types.is_timestamp(t) and t.tz is None
    if target == pa.date32():
        return pa.types.is_date(t)
    return False


def _conformer(field: pa.Field, contract: Contract, *, pg: bool) -> Callable[[pa.Array], pa.Array]:
    """A function bringing one source column to its staged type, or :class:`FastPathUnsupported`."""
    target = contract.arrow
    if not _faithful(field, target, pg=pg):
        what = (field.metadata or {}).get(b"POSTGRESQL:type", b"").decode() or str(field.type)
        raise FastPathUnsupported(f"column {field.name!r} arrives as {what}, the contract reads {target}")

    def conform(array: pa.Array) -> pa.Array:
        fitted = fits(array, contract)
        if fitted is None:
            raise FastPathUnsupported(
                f"column {field.name!r} holds a value its contract type {target} cannot hold exactly"
            )
        return fitted

    return conform


def unconvertible(exc: BaseException) -> bool:
    """Whether a fast reader failed on a value it cannot convert (connectorx panics on a zero date)."""
    text = str(exc).lower()
    return type(exc).__name__ == "PanicException" or "convert" in text or "decimal scale" in text


@contextmanager
def open_source(
    reader: str, info: ConnectionInfo, sql: str, batch_rows: int, *, zone: str | None = None
) -> Iterator[pa.RecordBatchReader]:
    """The query's rows as an Arrow stream, read-only, through ADBC or connectorx; the connection closes on exit.

    ``zone``: the PostgreSQL session's time zone (the dataset's timestamp cursor's, see
    :func:`datashare.source.cursor.session_zone`).
    """
    url = info.sqlalchemy_url()
    if reader == "adbc":
        from urllib.parse import quote

        import adbc_driver_postgresql.dbapi as adbc

        options = "-c default_transaction_read_only=on" + (f" -c TimeZone={zone}" if zone else "")
        base = url.set(drivername="postgresql", query={}).render_as_string(hide_password=False)
        uri = f"{base}?connect_timeout=10&options={quote(options, safe='')}"  # libpq reads %20, not +
        with adbc.connect(uri) as conn, conn.cursor() as cur:
            cur.execute(sql)
            batches = cur.fetch_record_batch()
            try:
                yield batches
            finally:
                batches.close()
        return
    import connectorx as cx

    uri = url.set(drivername="mysql", query={}).render_as_string(hide_password=False)
    read_only = f"SET STATEMENT tx_read_only=1 FOR {sql}"  # MariaDB: this one statement runs read-only
    stream = cx.read_sql(uri, read_only, return_type="arrow_stream", batch_size=batch_rows)
    try:
        yield stream
    finally:
        stream.close()


def source_errors() -> tuple[type[BaseException], ...]:
    """Exceptions the fast readers raise for database trouble (ADBC's DB-API errors, connectorx's)."""
    errors: list[type[BaseException]] = [RuntimeError, pa.ArrowException, OSError]
    try:
        import adbc_driver_manager

        errors.append(adbc_driver_manager.Error)
    except ImportError:  # pragma: no cover - installed with adbc-driver-postgresql
        pass
    return tuple(errors)


def stream_to_parquet(
    spec: DatasetSpec,
    stream: pa.RecordBatchReader,
    target: Path,
    *,
    pg: bool,
    check_columns: Callable[[list[str]], tuple[str, ...]],
    schema: pa.Schema,
) -> tuple[int, Any, tuple[str, ...]]:
    """Write the stream's rows, in the contract's source types, to ``target``; returns (rows, cursor max, ignored).

    ``check_columns`` raises for columns missing from the source and returns those the spec ignores;
    ``schema`` is the staged file's (:func:`datashare.source.extract.staged_schema`): the source columns, then
    the problems column, all null here since a value with a problem sends the source to the plain path.
    Raises :class:`FastPathUnsupported` for a type it cannot map faithfully (before reading any row) and
    for a value the contract cannot hold.
    """
    source_cols = stream.schema.names
    ignored = check_columns(source_cols)
    names = [c.name for c in spec.columns]
    contracts = [Contract.of(c, source=True) for c in spec.columns]
    fields = [stream.schema.field(source_cols.index(n)) for n in names]
    convert = [_conformer(f, c, pg=pg) for f, c in zip(fields, contracts, strict=True)]
    index = [source_cols.index(n) for n in names]
    extra = len(schema) - len(names)
    cursor = spec.mode.cursor
    rows, cursor_max = 0, None
    with BatchWriter(target, schema, compression=STAGING_COMPRESSION) as writer:
        for raw in read_ahead(iter(stream)):
            if not raw.num_rows:
                continue
            arrays = [fn(raw.column(i)) for fn, i in zip(convert, index, strict=True)]
            arrays += [pa.nulls(raw.num_rows, schema.field(len(names) + j).type) for j in range(extra)]
            batch = pa.RecordBatch.from_arrays(arrays, schema=schema)
            writer.write(batch)
            rows += batch.num_rows
            if cursor is not None:
                m = pc.max(batch.column(cursor)).as_py()
                if m is not None and (cursor_max is None or m > cursor_max):
                    cursor_max = m
            log.debug("%s: %s rows extracted", spec.id, f"{rows:,}")
    return rows, cursor_max, ignored
