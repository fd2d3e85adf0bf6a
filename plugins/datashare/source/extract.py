"""Extraction: stream a source table or query into staged Parquet, one record batch at a time.

Memory stays bounded by ``source.batch_rows`` whatever the table size. Rows come ordered by the
dataset key (then the other columns, so the order is deterministic), which lets the transform stage
drop duplicate keys in one pass. Incremental datasets read only rows past the cursor, compared as
the cursor column's type (:mod:`datashare.source.cursor`).

Sources are read, never written: every transaction is read-only (PostgreSQL's
``default_transaction_read_only``, MariaDB's ``SET SESSION TRANSACTION READ ONLY`` and, through
connectorx, ``SET STATEMENT tx_read_only=1 FOR``, SQLite opened ``mode=ro`` with ``query_only``), so a
query that would change the source (``nextval``) is refused naming the connection.

Schema drift is caught here, before anything is published: a column of the contract missing from
the source stops the run naming the column; a column the spec does not name is reported and left
out. Every value passes the type contract (:mod:`datashare.source.conform`): one the contract's type cannot
hold exactly fails the run naming dataset, column and value, or, when the spec has a
``source_problems`` column, is left null and its problem recorded there so the suite quarantines
the row.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import sqlalchemy as sa

from datashare.exceptions import ContractError, SourceError, SourceUnavailable
from datashare.parquet import STAGING_COMPRESSION, BatchWriter
from datashare.source import cursor as cursors
from datashare.source.conform import Contract, conform_values, problems_column, settle_problems, show, to_integer
from datashare.source.connections import ConnectionInfo
from datashare.source.typemap import SQLALCHEMY, source_type
from datashare.spec import Column, ColumnType, DatasetSpec
from datashare.sqltext import SQL, Composable, Identifier

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExtractResult:
    """What extraction staged."""

    path: Path
    rows: int
    cursor_max: str | None
    """Largest cursor value read, as exact text of its type (:func:`.cursor.text`); None when no rows."""
    ignored_columns: tuple[str, ...]


def _base(spec: DatasetSpec, dialect: sa.Dialect) -> Composable:
    """What the source is read from, aliased ``src`` by the callers: the spec's table, or its query in parentheses.

    The table's name (``schema.table`` allowed) is quoted by the source's dialect. The query is SQL the
    spec's author wrote for this source, taken as it is.
    """
    if spec.source.table is not None:
        return Identifier(*spec.source.table.split("."))
    query = spec.source.query_for(dialect.name)
    if query is None:  # the spec check rules this out; kept for specs built in code
        raise SourceError(f"{spec.id}: source.dialect_queries has no query for {dialect.name} and no default 'query'")
    return SQL("({})").format(SQL(query.strip().rstrip(";")))


def _src(column: str) -> Identifier:
    """A column of the source, qualified by its alias: ``src.<column>``."""
    return Identifier("src", column)


def build_query(
    spec: DatasetSpec, dialect: sa.Dialect, *, incremental_from: bool, key_range: bool = False, probe: bool = False
) -> str:
    """The SELECT that reads the source: the spec's table or query wrapped, filtered and ordered.

    ``probe`` gives ``SELECT 1 ... LIMIT 1`` with the same filter instead: whether any row would come.
    Names are quoted by the dialect (only when it must); the cursor and the key range are the bound
    parameters ``:cursor``, ``:range_lo`` and ``:range_hi``.
    """
    query = SQL("SELECT {} FROM {} src").format(SQL("1" if probe else "*"), _base(spec, dialect))
    where: list[Composable] = []
    if incremental_from:
        where.append(SQL("{} > :cursor").format(_src(spec.mode.cursor)))  # type: ignore[arg-type]
    if key_range:
        col = _src(spec.source.partitions.column)  # type: ignore[union-attr]
        where.append(SQL("{col} >= :range_lo AND {col} < :range_hi").format(col=col))
    if where:
        query += SQL(" WHERE {}").format(SQL(" AND ").join(where))
    if probe:
        query += SQL(" LIMIT 1")
    else:
        order = list(spec.key) + [c.name for c in spec.columns if c.name not in spec.key and c.source_type is None]
        query += SQL(" ORDER BY {}").format(SQL(", ").join(_src(c) for c in order))
    return query.as_string(dialect)


def _engine(info: ConnectionInfo, spec: DatasetSpec | None = None) -> sa.Engine:
    """An engine whose every transaction is read-only, with drivers that hand over values they would refuse.

    PostgreSQL sessions also run in the zone of the spec's timestamp cursor, so a cursor bound as
    wall time compares with ``timestamptz`` columns as the same instant.
    """
    url = info.sqlalchemy_url()
    backend = url.get_backend_name()
    if backend == "sqlite":
        path = Path(url.database or "")
        if not path.is_file():
            raise SourceUnavailable(
                f"source connection {info.conn_id!r} ({info.describe()}): the database file does not exist"
            )
        return sa.create_engine(url, creator=lambda: _sqlite_read_only(path))
    if backend == "postgresql":
        given = url.query.get("options")
        options: list[str] = [given] if isinstance(given, str) else []
        options.append("-c default_transaction_read_only=on")
        zone = cursors.session_zone(spec) if spec is not None else None
        if zone:
            options.append(f"-c TimeZone={zone}")
        engine = sa.create_engine(
            url, pool_pre_ping=True, connect_args={"connect_timeout": 10, "options": " ".join(options)}
        )
        sa.event.listen(engine, "connect", _lenient_psycopg_loaders)
        return engine
    return sa.create_engine(
        url,
        pool_pre_ping=True,
        connect_args={"connect_timeout": 10, "init_command": "SET SESSION TRANSACTION READ ONLY"},
    )


def _sqlite_read_only(path: Path) -> Any:
    """A SQLite connection that cannot write: the file opened ``mode=ro``, and ``query_only`` on top."""
    import sqlite3

    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30, check_same_thread=False)
    conn.execute("PRAGMA query_only = ON")
    return conn


def _lenient_psycopg_loaders(dbapi_connection: Any, _record: Any) -> None:
    """Dates and timestamps psycopg refuses ('infinity', year 10000) arrive as text for the contract to name."""
    import psycopg
    from psycopg.adapt import Loader

    from datashare.source.conform import unreadable_time

    adapters = dbapi_connection.adapters
    for name in ("date", "timestamp", "timestamptz"):
        oid = adapters.types[name].oid
        strict = adapters.get_loader(oid, psycopg.pq.Format.TEXT)

        class Lenient(Loader):
            def __init__(self, oid: int, context: Any = None, strict: Any = strict) -> None:
                super().__init__(oid, context)
                self._strict = strict(oid, context)

            def load(self, data: Any) -> Any:
                try:
                    return self._strict.load(data)
                except psycopg.DataError:
                    return unreadable_time(bytes(data).decode("utf-8", "replace"))

        adapters.register_loader(oid, Lenient)


def _column_arrays(
    rows: list[tuple[Any, ...]], contracts: list[Contract]
) -> tuple[list[pa.Array], dict[int, list[str]]]:
    """The rows' columns as arrays of their contract types, and the problems of each row that has any."""
    arrays = []
    problems: dict[int, list[str]] = {}
    for i, contract in enumerate(contracts):
        array, found = conform_values([row[i] for row in rows], contract)
        arrays.append(array)
        for row, text in found.items():
            problems.setdefault(row, []).append(text)
    return arrays, problems


def _row_key(spec: DatasetSpec, rows: Sequence[tuple[Any, ...]]) -> Callable[[int], str]:
    names = [c.name for c in spec.columns]
    index = [names.index(k) for k in spec.key]
    return lambda row: "row with key " + ", ".join(f"{spec.key[j]}={show(rows[row][i])}" for j, i in enumerate(index))


def plan_ranges(spec: DatasetSpec, info: ConnectionInfo) -> list[tuple[int, int]]:
    """Equal-width half-open ranges ``[lo, hi)`` of the partition column covering the whole source.

    The bounds are integers of the contract (a fraction, or text compared as text, is an error naming
    the column and the value, not a range that silently misses rows).
    """
    parts = spec.source.partitions
    if parts is None:
        raise SourceError(f"{spec.id}: the spec declares no source.partitions")
    engine = _engine(info, spec)
    col = _src(parts.column)
    try:
        query = SQL("SELECT min({col}), max({col}) FROM {base} src").format(col=col, base=_base(spec, engine.dialect))
        with engine.connect() as conn:
            bounds = conn.execute(sa.text(query.as_string(engine.dialect))).one()
    except sa.exc.DBAPIError as exc:
        raise _source_error(exc, spec, info) from None
    finally:
        engine.dispose()
    if bounds[0] is None:
        return [(0, 1)]
    checked = []
    for which, bound in zip(("minimum", "maximum"), bounds, strict=True):
        try:
            checked.append(to_integer(bound))
        except ValueError as exc:
            raise ContractError(
                f"{spec.id}: partition column {parts.column!r} must hold integers to split into key ranges; "
                f"the source's {which} is {show(bound)}, which {exc}"
            ) from None
    lo, hi = checked
    hi += 1
    step = max(1, -(-(hi - lo) // parts.count))
    return [(start, min(start + step, hi)) for start in range(lo, hi, step)]


def extract(
    spec: DatasetSpec,
    info: ConnectionInfo,
    target: Path,
    *,
    cursor: str | None = None,
    key_range: tuple[int, int] | None = None,
) -> ExtractResult:
    """Stream the source into ``target`` (a Parquet file).

    ``cursor`` is the last value already released (incremental mode), as text of the cursor column's
    type; ``key_range`` limits the read to ``[lo, hi)`` of the partition column (one mapped task's
    share). PostgreSQL and MariaDB/MySQL go through the fast Arrow readers
    (:mod:`datashare.source.fastextract`); SQLite, and any source the fast path cannot read faithfully or
    whose values break the contract, through SQLAlchemy. Both stage the same file.
    """
    from datashare.source.fastextract import FastPathUnsupported, fast_reader

    collector = problems_column(spec)
    spec = spec.source_view()  # computed columns are added by transforms, not read
    target.parent.mkdir(parents=True, exist_ok=True)
    reader = fast_reader(info)
    args: dict[str, Any] = {"cursor": cursor, "key_range": key_range, "collector": collector}
    if cursor is not None and _nothing_past(spec, info, cursor, key_range):
        # Nothing to stream: stage the empty file and check the columns with a query that reads no row.
        # Running the ordered query instead can walk a whole index to find nothing (seconds at 20 M
        # rows), and the fast readers alone import pandas: seconds of a run that does nothing.
        log.info("%s: no row past cursor %s", spec.id, cursor)
        return _extract_nothing(spec, info, target, collector)
    if reader is not None:
        try:
            return _extract_fast(reader, spec, info, target, **args)
        except FastPathUnsupported as exc:
            log.info("%s: %s; reading through SQLAlchemy instead", spec.id, exc)
    return _extract_plain(spec, info, target, **args)


def _nothing_past(spec: DatasetSpec, info: ConnectionInfo, cursor: str, key_range: tuple[int, int] | None) -> bool:
    """Whether no source row lies past ``cursor``: one ``LIMIT 1`` probe (the cursor column is indexed)."""
    if spec.mode.kind != "incremental":
        return False
    engine = _engine(info, spec)
    try:
        sql, params, types = _statement(spec, engine.dialect, cursor, key_range, probe=True)
        stmt = sa.text(sql).bindparams(*(sa.bindparam(name, type_=t) for name, t in types.items()))
        with engine.connect() as conn:
            return conn.execute(stmt, params).first() is None
    except sa.exc.DBAPIError as exc:
        raise _source_error(exc, spec, info) from None
    finally:
        engine.dispose()


def _extract_nothing(spec: DatasetSpec, info: ConnectionInfo, target: Path, collector: Column | None) -> ExtractResult:
    """The empty staged file of a run with nothing new, after checking the source's columns (``WHERE 1 = 0``).

    The check is the one a run with rows makes: names (added, removed) and, on PostgreSQL, the types
    of numeric contract columns, so a retyped column is named on the first run after the change.
    """
    engine = _engine(info, spec)
    contracts = {c.name: Contract.of(c, source=True) for c in spec.columns}
    try:
        with engine.connect() as conn:
            query = SQL("SELECT * FROM {} src WHERE 1 = 0").format(_base(spec, engine.dialect))
            result = conn.execute(sa.text(query.as_string(engine.dialect)))
            source_cols = list(result.keys())
            ignored = _check_columns(spec, source_cols)
            _check_source_types(spec, result, [contracts.get(n) for n in source_cols])
    except sa.exc.DBAPIError as exc:
        raise _source_error(exc, spec, info) from None
    finally:
        engine.dispose()
    BatchWriter(target, staged_schema(spec, collector), compression=STAGING_COMPRESSION).close()
    return _result(target, 0, None, ignored)


def _statement(
    spec: DatasetSpec,
    dialect: sa.Dialect,
    cursor: str | None,
    key_range: tuple[int, int] | None,
    *,
    probe: bool = False,
) -> tuple[str, dict[str, Any], dict[str, sa.types.TypeEngine]]:
    """The query text (or its one-row probe), its parameters and their SQL types."""
    incremental = spec.mode.kind == "incremental" and cursor is not None
    sql = build_query(spec, dialect, incremental_from=incremental, key_range=key_range is not None, probe=probe)
    params: dict[str, Any] = {}
    types: dict[str, sa.types.TypeEngine] = {}
    if key_range is not None:
        params.update(range_lo=key_range[0], range_hi=key_range[1])
        types.update(range_lo=sa.BigInteger(), range_hi=sa.BigInteger())
    if incremental:
        column = cursors.cursor_column(spec)
        assert column is not None and cursor is not None
        params["cursor"] = cursors.bind_value(cursors.parse(cursor, column), column)
        types["cursor"] = SQLALCHEMY[source_type(column)]()
    return sql, params, types


def _check_columns(spec: DatasetSpec, source_cols: list[str]) -> tuple[str, ...]:
    """Raise for spec columns the source lacks; return (and report) source columns the spec ignores."""
    missing = [c.name for c in spec.columns if c.name not in source_cols]
    if missing:
        raise ContractError(
            f"source {spec.source.table or 'query'} of {spec.id}: column(s) {missing} named in the spec "
            f"are missing from the source (it has {source_cols})"
        )
    named = {c.name for c in spec.columns}
    ignored = tuple(c for c in source_cols if c not in named)
    if ignored:
        log.warning(
            "%s: source columns %s are not in the spec; ignored until the spec names them", spec.id, list(ignored)
        )
    return ignored


def staged_schema(spec: DatasetSpec, collector: Column | None) -> pa.Schema:
    """The schema of an extraction's staged file: the source columns as read, then the problems column if any."""
    fields = [pa.field(c.name, Contract.of(c, source=True).arrow) for c in spec.columns]
    if collector is not None:
        fields.append(pa.field(collector.name, pa.string()))
    return pa.schema(fields)


def _result(target: Path, rows: int, cursor_max: Any, ignored: tuple[str, ...]) -> ExtractResult:
    text_cursor = None if cursor_max is None else cursors.text(cursor_max)
    return ExtractResult(path=target, rows=rows, cursor_max=text_cursor, ignored_columns=ignored)


def _extract_fast(
    reader: str,
    spec: DatasetSpec,
    info: ConnectionInfo,
    target: Path,
    *,
    cursor: str | None,
    key_range: tuple[int, int] | None,
    collector: Column | None,
) -> ExtractResult:
    """Arrow batches from ADBC or connectorx, read ahead in a thread, written as they come."""
    from datashare.source.fastextract import (
        FastPathUnsupported,
        literal_sql,
        open_source,
        source_errors,
        stream_to_parquet,
        unconvertible,
    )

    backend = info.sqlalchemy_url().get_backend_name()
    dialect = sa.create_engine(info.sqlalchemy_url()).dialect
    sql, params, types = _statement(spec, dialect, cursor, key_range)
    sql = literal_sql(sql, params, types, backend)
    since = f" past cursor {cursor}" if "cursor" in params else ""
    log.info("Extracting %s from %s via %s%s", spec.id, info.describe(), reader, since)
    started = False
    try:
        with open_source(reader, info, sql, spec.source.batch_rows, zone=cursors.session_zone(spec)) as stream:
            started = True
            rows, cursor_max, ignored = stream_to_parquet(
                spec,
                stream,
                target,
                pg=reader == "adbc",
                check_columns=lambda cols: _check_columns(spec, cols),
                schema=staged_schema(spec, collector),
            )
    except FastPathUnsupported:
        target.unlink(missing_ok=True)
        raise
    except source_errors() as exc:
        target.unlink(missing_ok=True)
        message = _first_line(exc)
        if not started or unconvertible(exc):
            # could not start, or the reader cannot convert a value (a zero date): the plain path gives
            # the error its proper class, or names the column and the value
            raise FastPathUnsupported(f"{reader} could not read the source ({message})") from None
        raise _classify_message(message, spec, info) from None
    except BaseException as exc:
        target.unlink(missing_ok=True)
        if unconvertible(exc):  # connectorx panics (a BaseException) on values it cannot convert
            raise FastPathUnsupported(f"{reader} could not convert a value ({_first_line(exc)})") from None
        raise
    log.info("%s: %s rows extracted via %s", spec.id, f"{rows:,}", reader)
    return _result(target, rows, cursor_max, ignored)


def _extract_plain(
    spec: DatasetSpec,
    info: ConnectionInfo,
    target: Path,
    *,
    cursor: str | None,
    key_range: tuple[int, int] | None,
    collector: Column | None,
) -> ExtractResult:
    """Rows through SQLAlchemy, as the drivers give them, through the type contract batch by batch.

    Every backend can take this path, and it is the reference: it names every value the contract
    cannot hold (the fast paths come here when they meet one).
    """
    import pyarrow.compute as pc

    engine = _engine(info, spec)
    contracts = [Contract.of(c, source=True) for c in spec.columns]
    sql, params, param_types = _statement(spec, engine.dialect, cursor, key_range)
    stmt = sa.text(sql)  # untyped: the drivers' own values, converted by the contract, not by SQLAlchemy
    if "cursor" in params:
        stmt = stmt.bindparams(sa.bindparam("cursor", type_=param_types["cursor"]))
    since = f" past cursor {cursor}" if "cursor" in params else ""
    log.info("Extracting %s from %s%s", spec.id, info.describe(), since)
    rows_total = 0
    cursor_max: Any = None
    writer: BatchWriter | None = None
    ignored: tuple[str, ...] = ()
    schema = staged_schema(spec, collector)
    names = [c.name for c in spec.columns]
    try:
        with engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=spec.source.batch_rows).execute(stmt, params)
            source_cols = list(result.keys())
            ignored = _check_columns(spec, source_cols)
            index = [source_cols.index(n) for n in names]
            _check_source_types(spec, result, [contracts[names.index(n)] if n in names else None for n in source_cols])
            writer = BatchWriter(target, schema, compression=STAGING_COMPRESSION)
            for part in result.partitions(spec.source.batch_rows):  # explicit: untyped text() ignores yield_per
                rows = [tuple(r[i] for i in index) for r in part]
                arrays, problems = _column_arrays(rows, contracts)
                if problems or collector is not None:
                    where = _row_key(spec, rows)
                    found = settle_problems(spec, collector, problems, len(rows), stage="source", where=where)
                    arrays.append(pa.array([found.get(i) for i in range(len(rows))], pa.string()))
                batch = pa.RecordBatch.from_arrays(arrays, schema=schema)
                writer.write(batch)
                rows_total += batch.num_rows
                if spec.mode.cursor is not None and batch.num_rows:
                    m = pc.max(batch.column(spec.mode.cursor)).as_py()
                    if m is not None and (cursor_max is None or m > cursor_max):
                        cursor_max = m
                log.info("%s: %s rows extracted", spec.id, f"{rows_total:,}")
    except BaseException as exc:
        if writer is not None:
            writer.close()
        target.unlink(missing_ok=True)
        if isinstance(exc, sa.exc.DBAPIError):
            raise _source_error(exc, spec, info) from None
        raise
    finally:
        engine.dispose()
    if writer is not None:
        writer.close()
    return _result(target, rows_total, cursor_max, ignored)


_PG_NUMERIC = frozenset({20, 21, 23, 700, 701, 1700})
"""PostgreSQL type OIDs of numbers (int8, int2, int4, float4, float8, numeric)."""


def _check_source_types(spec: DatasetSpec, result: sa.CursorResult, contracts: list[Contract | None]) -> None:
    """On PostgreSQL, a numeric contract column the source now types otherwise is drift, even with no row to show.

    The values are checked anyway; this names a retyped column when an incremental run reads nothing.
    """
    cursor: Any = result.cursor  # the driver's own cursor: psycopg's has type codes and adapters
    if cursor is None or type(cursor).__module__.split(".")[0] != "psycopg":
        return
    numeric = (ColumnType.integer, ColumnType.number, ColumnType.decimal)
    for contract, column in zip(contracts, cursor.description or (), strict=False):
        if contract is not None and contract.kind in numeric and column.type_code not in _PG_NUMERIC:
            info = cursor.connection.adapters.types.get(column.type_code)
            has = info.name if info else column.type_code
            raise ContractError(
                f"source {spec.source.table or 'query'} of {spec.id}: column {contract.name!r} can no longer be read "
                f"as the contract type {contract.kind.value}: the source has {has}; was it retyped in the source?"
            )


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    return str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__


_READ_ONLY = ("read-only transaction", "read only transaction", "readonly database", "(25006)", "1792,")


def _source_error(exc: sa.exc.DBAPIError, spec: DatasetSpec, info: ConnectionInfo) -> Exception:
    """The engine's error for a driver's: read-only refusals and decoding errors are final, dropped links retried."""
    message = _first_line(exc)
    orig = getattr(exc, "orig", None)
    if getattr(orig, "sqlstate", None) == "25006" or any(m in f"{orig!r} {message}".lower() for m in _READ_ONLY):
        return _read_only(message, spec, info)
    if "could not decode to utf-8" in message.lower():
        return ContractError(f"{spec.id}: source text is not UTF-8: {message} (the value is kept as SQLite holds it)")
    if isinstance(exc, sa.exc.OperationalError):
        return _classify_message(message, spec, info)
    return SourceError(f"source connection {info.conn_id!r} ({info.describe()}): {message}")


def _read_only(message: str, spec: DatasetSpec, info: ConnectionInfo) -> SourceError:
    return SourceError(
        f"source connection {info.conn_id!r} ({info.describe()}) is read-only: the query of {spec.id} tried to "
        f"change the source and was refused ({message}). Sources are only ever read; remove the side effect "
        "(nextval, a write) from the query."
    )


def _classify_message(msg: str, spec: DatasetSpec, info: ConnectionInfo) -> Exception:
    """:class:`SourceError` for what a retry cannot fix, :class:`SourceUnavailable` for the rest."""
    lowered = msg.lower()
    if any(m in lowered for m in _READ_ONLY):
        return _read_only(msg, spec, info)
    permanent = ("no such table", "doesn't exist", "does not exist", "no such column", "unknown column", "syntax")
    if any(p in lowered for p in permanent):
        what = spec.source.table or "query"
        return SourceError(f"source {what} of {spec.id} via {info.conn_id!r} ({info.describe()}): {msg}")
    return SourceUnavailable(f"source connection {info.conn_id!r} ({info.describe()}) failed: {msg}")
