"""Extraction: stream a source table or query into staged Parquet, one record batch at a time.

Memory stays bounded by ``source.batch_rows`` whatever the table size. Rows come ordered by the
dataset key (then the other columns, so the order is deterministic), which lets the transform stage
drop duplicate keys in one pass. Incremental datasets read only rows past the cursor.

Schema drift is caught here, before anything is published: a column of the contract missing from
the source, or holding values of another type, stops the run naming the column; a column the spec
does not name is reported and left out.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import sqlalchemy as sa

from datashare.connections import ConnectionInfo
from datashare.exceptions import ContractError, SourceError, SourceUnavailable
from datashare.parquet import STAGING_COMPRESSION, BatchWriter
from datashare.spec import ColumnType, DatasetSpec
from datashare.typemap import ARROW, SQLALCHEMY, source_type

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExtractResult:
    """What extraction staged."""

    path: Path
    rows: int
    cursor_max: str | None
    """Largest cursor value read (ISO text), None when no rows or snapshot mode."""
    ignored_columns: tuple[str, ...]


def _base(spec: DatasetSpec, dialect: sa.Dialect) -> str:
    prep = dialect.identifier_preparer
    if spec.source.table is not None:
        return ".".join(prep.quote(p) for p in spec.source.table.split("."))
    query = spec.source.query_for(dialect.name)
    if query is None:  # the spec check rules this out; kept for specs built in code
        raise SourceError(f"{spec.id}: source.dialect_queries has no query for {dialect.name} and no default 'query'")
    return f"({query.strip().rstrip(';')})"


def build_query(
    spec: DatasetSpec, dialect: sa.Dialect, *, incremental_from: bool, key_range: bool = False, probe: bool = False
) -> str:
    """The SELECT that reads the source: the spec's table or query wrapped, filtered and ordered.

    ``probe`` gives ``SELECT 1 ... LIMIT 1`` with the same filter instead: whether any row would come.
    """
    prep = dialect.identifier_preparer
    sql = f"SELECT {'1' if probe else '*'} FROM {_base(spec, dialect)} src"
    where = []
    if incremental_from:
        where.append(f"src.{prep.quote(spec.mode.cursor)} > :cursor")  # type: ignore[arg-type]
    if key_range:
        col = prep.quote(spec.source.partitions.column)  # type: ignore[union-attr]
        where.append(f"src.{col} >= :range_lo AND src.{col} < :range_hi")
    if where:
        sql += " WHERE " + " AND ".join(where)
    if probe:
        return sql + " LIMIT 1"
    order = list(spec.key) + [c.name for c in spec.columns if c.name not in spec.key and c.source_type is None]
    return sql + " ORDER BY " + ", ".join(f"src.{prep.quote(c)}" for c in order)


def parse_cursor(value: str, kind: ColumnType) -> Any:
    """Turn the cursor stored in a manifest back into a value to bind."""
    if kind == ColumnType.datetime:
        return datetime.fromisoformat(value)
    if kind == ColumnType.date:
        return date.fromisoformat(value)
    if kind == ColumnType.integer:
        return int(value)
    if kind == ColumnType.number:
        return float(value)
    return value


def _engine(info: ConnectionInfo) -> sa.Engine:
    url = info.sqlalchemy_url()
    if url.get_backend_name() == "sqlite":
        path = Path(url.database or "")
        if not path.is_file():
            raise SourceUnavailable(
                f"source connection {info.conn_id!r} ({info.describe()}): the database file does not exist"
            )
        return sa.create_engine(url, connect_args={"timeout": 30})
    return sa.create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 10})


def _column_arrays(rows: list[Any], names: list[str], types: dict[str, pa.DataType]) -> list[pa.Array]:
    arrays = []
    for i, name in enumerate(names):
        values = [row[i] for row in rows]
        try:
            arrays.append(pa.array(values, type=types[name]))
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError) as exc:
            bad = next((v for v in values if v is not None and _not_castable(v, types[name])), None)
            raise ContractError(
                f"column {name!r}: source values no longer fit the contract type {types[name]} "
                f"(e.g. {bad!r}); was the column retyped in the source? ({exc})"
            ) from None
    return arrays


def _not_castable(value: Any, arrow_type: pa.DataType) -> bool:
    try:
        pa.array([value], type=arrow_type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
        return True
    return False


def plan_ranges(spec: DatasetSpec, info: ConnectionInfo) -> list[tuple[int, int]]:
    """Equal-width half-open ranges ``[lo, hi)`` of the partition column covering the whole source."""
    parts = spec.source.partitions
    if parts is None:
        raise SourceError(f"{spec.id}: the spec declares no source.partitions")
    engine = _engine(info)
    col = engine.dialect.identifier_preparer.quote(parts.column)
    try:
        with engine.connect() as conn:
            lo, hi = conn.execute(
                sa.text(f"SELECT min(src.{col}), max(src.{col}) FROM {_base(spec, engine.dialect)} src")
            ).one()
    except sa.exc.OperationalError as exc:
        raise _classify(exc, spec, info) from None
    except sa.exc.DBAPIError as exc:
        raise SourceError(f"source connection {info.conn_id!r} ({info.describe()}): {_first_line(exc)}") from None
    finally:
        engine.dispose()
    if lo is None:
        return [(0, 1)]
    lo, hi = int(lo), int(hi) + 1
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

    ``cursor`` is the last value already released (incremental mode); ``key_range`` limits the read
    to ``[lo, hi)`` of the partition column (one mapped task's share). PostgreSQL and MariaDB/MySQL
    go through the fast Arrow readers (:mod:`datashare.fastextract`); SQLite, and any source the fast
    path cannot read faithfully, through SQLAlchemy. Both stage the same file.
    """
    from datashare.fastextract import FastPathUnsupported, fast_reader

    spec = spec.source_view()  # computed columns are added by transforms, not read
    target.parent.mkdir(parents=True, exist_ok=True)
    reader = fast_reader(info)
    if cursor is not None and _nothing_past(spec, info, cursor, key_range):
        # Nothing to stream: stage the empty file and check the columns with a query that reads no row.
        # Running the ordered query instead can walk a whole index to find nothing (seconds at 20 M
        # rows), and the fast readers alone import pandas: seconds of a run that does nothing.
        log.info("%s: no row past cursor %s", spec.id, cursor)
        return _extract_nothing(spec, info, target)
    if reader is not None:
        try:
            return _extract_fast(reader, spec, info, target, cursor=cursor, key_range=key_range)
        except FastPathUnsupported as exc:
            log.info("%s: %s; reading through SQLAlchemy instead", spec.id, exc)
    return _extract_plain(spec, info, target, cursor=cursor, key_range=key_range)


def _nothing_past(spec: DatasetSpec, info: ConnectionInfo, cursor: str, key_range: tuple[int, int] | None) -> bool:
    """Whether no source row lies past ``cursor``: one ``LIMIT 1`` probe (the cursor column is indexed)."""
    if spec.mode.kind != "incremental":
        return False
    engine = _engine(info)
    try:
        sql, params, types = _statement(spec, engine.dialect, cursor, key_range, probe=True)
        stmt = sa.text(sql).bindparams(*(sa.bindparam(name, type_=t) for name, t in types.items()))
        with engine.connect() as conn:
            return conn.execute(stmt, params).first() is None
    except sa.exc.OperationalError as exc:
        raise _classify(exc, spec, info) from None
    except sa.exc.DBAPIError as exc:
        raise SourceError(f"source connection {info.conn_id!r} ({info.describe()}): {_first_line(exc)}") from None
    finally:
        engine.dispose()


def _extract_nothing(spec: DatasetSpec, info: ConnectionInfo, target: Path) -> ExtractResult:
    """The empty staged file of a run with nothing new, after checking the source's columns (``WHERE 1 = 0``)."""
    engine = _engine(info)
    try:
        with engine.connect() as conn:
            sql = f"SELECT * FROM {_base(spec, engine.dialect)} src WHERE 1 = 0"
            source_cols = list(conn.execute(sa.text(sql)).keys())
    except sa.exc.OperationalError as exc:
        raise _classify(exc, spec, info) from None
    except sa.exc.DBAPIError as exc:
        raise SourceError(f"source connection {info.conn_id!r} ({info.describe()}): {_first_line(exc)}") from None
    finally:
        engine.dispose()
    ignored = _check_columns(spec, source_cols)
    schema = pa.schema([pa.field(c.name, ARROW[source_type(c)]) for c in spec.columns])
    BatchWriter(target, schema, compression=STAGING_COMPRESSION).close()
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
        column = next(c for c in spec.columns if c.name == spec.mode.cursor)
        params["cursor"] = parse_cursor(cursor, source_type(column))  # type: ignore[arg-type]
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


def _result(target: Path, rows: int, cursor_max: Any, ignored: tuple[str, ...]) -> ExtractResult:
    text_cursor = None
    if cursor_max is not None:
        text_cursor = cursor_max.isoformat() if isinstance(cursor_max, date | datetime) else str(cursor_max)
    return ExtractResult(path=target, rows=rows, cursor_max=text_cursor, ignored_columns=ignored)


def _extract_fast(
    reader: str,
    spec: DatasetSpec,
    info: ConnectionInfo,
    target: Path,
    *,
    cursor: str | None,
    key_range: tuple[int, int] | None,
) -> ExtractResult:
    """Arrow batches from ADBC or connectorx, read ahead in a thread, written as they come."""
    from datashare.fastextract import FastPathUnsupported, literal_sql, open_source, source_errors, stream_to_parquet

    backend = info.sqlalchemy_url().get_backend_name()
    dialect = sa.create_engine(info.sqlalchemy_url()).dialect
    sql, params, types = _statement(spec, dialect, cursor, key_range)
    sql = literal_sql(sql, params, types, backend)
    since = f" past cursor {cursor}" if "cursor" in params else ""
    log.info("Extracting %s from %s via %s%s", spec.id, info.describe(), reader, since)
    started = False
    try:
        with open_source(reader, info, sql, spec.source.batch_rows) as stream:
            started = True
            rows, cursor_max, ignored = stream_to_parquet(
                spec, stream, target, pg=reader == "adbc", check_columns=lambda cols: _check_columns(spec, cols)
            )
    except FastPathUnsupported:
        target.unlink(missing_ok=True)
        raise
    except source_errors() as exc:
        target.unlink(missing_ok=True)
        if not started:  # could not even start: the plain path gives the error its proper class
            raise FastPathUnsupported(f"{reader} could not open the source ({_first_line(exc)})") from None
        raise _classify_message(_first_line(exc), spec, info) from None
    log.info("%s: %s rows extracted via %s", spec.id, f"{rows:,}", reader)
    return _result(target, rows, cursor_max, ignored)


def _extract_plain(
    spec: DatasetSpec,
    info: ConnectionInfo,
    target: Path,
    *,
    cursor: str | None,
    key_range: tuple[int, int] | None,
) -> ExtractResult:
    """Rows through SQLAlchemy, converted to Arrow batch by batch: every backend, and the reference."""
    engine = _engine(info)
    types = {c.name: ARROW[source_type(c)] for c in spec.columns}
    sa_types = {c.name: SQLALCHEMY[source_type(c)] for c in spec.columns}
    sql, params, param_types = _statement(spec, engine.dialect, cursor, key_range)
    stmt = sa.text(sql).columns(**{name: t() for name, t in sa_types.items()})
    if "cursor" in params:
        stmt = stmt.bindparams(sa.bindparam("cursor", type_=param_types["cursor"]))
    since = f" past cursor {cursor}" if "cursor" in params else ""
    log.info("Extracting %s from %s%s", spec.id, info.describe(), since)
    rows_total = 0
    cursor_max: Any = None
    writer: BatchWriter | None = None
    ignored: tuple[str, ...] = ()
    try:
        with engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=spec.source.batch_rows).execute(stmt, params)
            source_cols = list(result.keys())
            ignored = _check_columns(spec, source_cols)
            names = [c.name for c in spec.columns]
            index = [source_cols.index(n) for n in names]
            schema = pa.schema([pa.field(n, types[n]) for n in names])
            writer = BatchWriter(target, schema, compression=STAGING_COMPRESSION)
            for part in result.partitions():
                rows = [tuple(r[i] for i in index) for r in part]
                batch = pa.RecordBatch.from_arrays(_column_arrays(rows, names, types), schema=schema)
                writer.write(batch)
                rows_total += batch.num_rows
                if spec.mode.cursor is not None and batch.num_rows:
                    import pyarrow.compute as pc

                    m = pc.max(batch.column(spec.mode.cursor)).as_py()
                    if m is not None and (cursor_max is None or m > cursor_max):
                        cursor_max = m
                log.info("%s: %s rows extracted", spec.id, f"{rows_total:,}")
    except sa.exc.OperationalError as exc:
        if writer is not None:
            writer.close()
        raise _classify(exc, spec, info) from None
    except sa.exc.DBAPIError as exc:
        if writer is not None:
            writer.close()
        raise SourceError(f"source connection {info.conn_id!r} ({info.describe()}): {_first_line(exc)}") from None
    except sa.exc.InvalidRequestError as exc:  # the driver cannot read a column as the contract's type
        if writer is not None:
            writer.close()
        raise _retyped(engine, spec, sa_types, exc) from None
    finally:
        engine.dispose()
    if writer is not None:
        writer.close()
    return _result(target, rows_total, cursor_max, ignored)


def _retyped(
    engine: sa.Engine, spec: DatasetSpec, sa_types: dict[str, type[sa.types.TypeEngine]], exc: Exception
) -> ContractError:
    """Name the column whose source type no longer reads as the contract's (e.g. a number column now text)."""
    prep = engine.dialect.identifier_preparer
    base = _base(spec, engine.dialect)
    for name, sa_type in sa_types.items():
        probe = sa.text(f"SELECT src.{prep.quote(name)} FROM {base} src WHERE 1 = 0").columns(**{name: sa_type()})
        try:
            with engine.connect() as conn:
                conn.execute(probe).all()
        except sa.exc.InvalidRequestError:
            return ContractError(
                f"source {spec.source.table or 'query'} of {spec.id}: column {name!r} can no longer be read as the "
                f"contract type {sa_type.__name__}; was the column retyped in the source? ({exc})"
            )
        except sa.exc.DBAPIError:
            continue
    what = spec.source.table or "query"
    return ContractError(f"source {what} of {spec.id}: a column no longer fits the contract: {exc}")


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    return str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__


def _classify(exc: sa.exc.OperationalError, spec: DatasetSpec, info: ConnectionInfo) -> Exception:
    """Connection failures are worth a retry; a missing table or column is not."""
    return _classify_message(_first_line(exc), spec, info)


def _classify_message(msg: str, spec: DatasetSpec, info: ConnectionInfo) -> Exception:
    """:class:`SourceError` for what a retry cannot fix, :class:`SourceUnavailable` for the rest."""
    lowered = msg.lower()
    permanent = ("no such table", "doesn't exist", "does not exist", "no such column", "unknown column", "syntax")
    if any(p in lowered for p in permanent):
        what = spec.source.table or "query"
        return SourceError(f"source {what} of {spec.id} via {info.conn_id!r} ({info.describe()}): {msg}")
    return SourceUnavailable(f"source connection {info.conn_id!r} ({info.describe()}) failed: {msg}")
