"""A DuckDB dialect that Great Expectations' SQL engine can use to validate staged Parquet fast.

Great Expectations 1.24 has no DuckDB support of its own, but its generic SQL data source runs on any
SQLAlchemy dialect. Two things stand in the way with ``duckdb_engine`` as it is, and this dialect
fixes both:

* GX runs a query, closes the connection, then reads the rows. Closing rolls back the transaction
  SQLAlchemy began, and a DuckDB rollback discards the pending result, so GX reads nothing. Staged
  data is only read, so this dialect never begins, commits nor rolls back: each statement runs in
  DuckDB's own autocommit mode and its result stays readable.
* GX picks some SQL forms from its execution engine's ``dialect_module`` (None for a dialect it does
  not know, and then it has no regular expressions at all). :func:`use_flavour` gives it PostgreSQL's
  module with one change. Regular expressions take PostgreSQL's form: DuckDB's ``~`` searches like
  PostgreSQL's (``'xAQ1y' ~ 'AQ1'`` is true). Compound-key uniqueness counts only the keys that repeat
  (:func:`_compound_count_sql`) instead of GX's window over the table (every column carried through
  the partitioning) or its self-join with every group's count: 5 M rows take about a quarter of the
  window's time within the memory budget below. The tests compare every verdict, count and sample
  with GX's pandas engine.

Registered under ``duckdb+datashare://``; :func:`register` is idempotent.
"""

from __future__ import annotations

import shutil
import tempfile
import types
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from duckdb_engine import Dialect as _DuckDBDialect
from sqlalchemy.dialects import registry

from datashare.sqltext import SQL, Identifier, Literal

if TYPE_CHECKING:
    import pyarrow as pa

DRIVER = "duckdb.datashare"


class _GXFlavour(sa.dialects.postgresql.dialect):  # type: ignore[misc,valid-type]
    """Never instantiated: what GX reads as ``dialect_module.dialect`` (see the module docstring)."""

    name = "mysql"


class _FlavourModule(types.ModuleType):
    """``sqlalchemy.dialects.postgresql`` (types and all) whose ``dialect`` is :class:`_GXFlavour`."""

    dialect = _GXFlavour

    def __getattr__(self, name: str) -> Any:
        return getattr(sa.dialects.postgresql, name)


def use_flavour(execution_engine: Any) -> None:
    """Make a GX SQL execution engine on DuckDB use the SQL forms described in the module docstring."""
    execution_engine.dialect_module = _FlavourModule("datashare_gx_duckdb_flavour")
    _install_compound_count()


_COMPOUND_COUNT = "compound_columns.count.map"


def _compound_count_sql(cls: Any, column_list: Any, **kwargs: Any) -> Any:
    """Rows with, for each, how many rows share its key, as GX's uniqueness rule reads it (``_num_rows``).

    GX's forms count every row's group: a window over the whole table (every column carried through
    the partitioning) or a join of the table with all its grouped counts. Here only the keys that
    repeat are grouped out (``HAVING count(*) > 1``, usually none) and the table is left-joined to
    them, so a clean table costs one aggregation of its key columns and one scan. Keys compare with
    ``IS NOT DISTINCT FROM``: rows whose keys are null together form a group, as in the window form
    and in pandas' ``duplicated``.
    """
    names = kwargs["_column_names"]
    table = kwargs["_table"]
    rows = (
        sa.select(*[sa.column(c) for c in kwargs["_table_columns"]]).select_from(table).alias("original_table_clause")
    )
    keys = [rows.c[c] for c in names]
    repeated = (
        sa.select(*keys, sa.func.count().label("_repeats"))
        .group_by(*keys)
        .having(sa.func.count() > 1)
        .alias("repeated_keys")
    )
    on = sa.and_(*(rows.c[c].is_not_distinct_from(repeated.c[c]) for c in names))
    return (
        sa.select(rows, sa.func.coalesce(repeated.c._repeats, 1).label("_num_rows"))
        .select_from(rows.outerjoin(repeated, on))
        .alias("records_with_grouped_column_counts_subquery")
    )


def _install_compound_count() -> None:
    """Route GX's compound-uniqueness count to :func:`_compound_count_sql` on DuckDB engines only.

    GX registers one SQL provider per metric for every SQL engine; the one registered is kept for
    any engine that is not flavoured by :func:`use_flavour`. Idempotent.
    """
    import functools

    from great_expectations.execution_engine import SqlAlchemyExecutionEngine
    from great_expectations.expectations.metrics.map_metric_provider.multicolumn_function_partial import (
        multicolumn_function_partial,
    )
    from great_expectations.expectations.registry import _registered_metrics

    providers = _registered_metrics[_COMPOUND_COUNT]["providers"]
    provider_cls, original = providers[SqlAlchemyExecutionEngine.__name__]
    if getattr(original, "_datashare_duckdb", False):
        return
    ours = multicolumn_function_partial(engine=SqlAlchemyExecutionEngine)(_compound_count_sql)

    @functools.wraps(original)
    def provider(cls: Any, execution_engine: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(execution_engine.dialect_module, _FlavourModule):
            return ours(cls, execution_engine, *args, **kwargs)
        return original(cls, execution_engine, *args, **kwargs)

    provider._datashare_duckdb = True  # type: ignore[attr-defined]
    providers[SqlAlchemyExecutionEngine.__name__] = (provider_cls, provider)


class ReadOnlyDuckDBDialect(_DuckDBDialect):
    """``duckdb_engine``'s dialect without transactions, for read-only validation queries."""

    supports_statement_cache = True

    def do_begin(self, dbapi_connection: Any) -> None:
        """No transaction: a rollback on connection return would discard unread results."""

    def do_rollback(self, dbapi_connection: Any) -> None:
        """Nothing to roll back: validation only reads."""

    def do_commit(self, dbapi_connection: Any) -> None:
        """Nothing to commit: validation only reads."""


def register() -> str:
    """Make ``duckdb+datashare://`` URLs resolve to :class:`ReadOnlyDuckDBDialect`; returns the URL scheme."""
    registry.register(DRIVER, __name__, "ReadOnlyDuckDBDialect")
    return "duckdb+datashare"


MEMORY_LIMIT = "128MB"
"""DuckDB's own budget: it streams Parquet, so a small one costs no speed and keeps the run flat."""


def view_sql(paths: Sequence[Path]) -> str:
    """``CREATE VIEW staged`` over the Parquet files (at least one), matched by column name.

    A view takes no parameters: the paths go in as quoted literals.
    """
    files = SQL(", ").join(Literal(str(Path(p).resolve())) for p in paths)
    return SQL("CREATE VIEW staged AS SELECT * FROM read_parquet([{}], union_by_name = true)").format(files).as_string()


def nan_columns(conn: Any, schema: pa.Schema) -> list[str]:
    """Float columns of view ``staged`` holding NaN.

    pandas counts NaN as missing, SQL as a value, so such data would get another verdict here. Worse,
    DuckDB 2.0 trusts Parquet statistics that leave NaN out and folds ``isnan()`` away in filters and
    projections; only an aggregate with statistics propagation off counts NaN reliably.
    """
    import pyarrow as pa

    floats = [f.name for f in schema if pa.types.is_floating(f.type)]
    if not floats:
        return []
    conn.execute("SET disabled_optimizers = 'statistics_propagation'")
    tests = SQL(", ").join(SQL("count(*) FILTER (WHERE isnan({}))").format(Identifier(c)) for c in floats)
    counts = conn.execute(SQL("SELECT {} FROM staged").format(tests).as_string()).fetchone()
    return [c for c, n in zip(floats, counts, strict=True) if n]


@contextmanager
def staged_database(paths: Sequence[Path], schema: pa.Schema) -> Iterator[tuple[str, list[str]]]:
    """A throwaway DuckDB file whose view ``staged`` reads the Parquet files.

    Yields its SQLAlchemy URL and the float columns holding NaN (see :func:`nan_columns`).
    """
    import duckdb

    scheme = register()
    folder = Path(tempfile.mkdtemp(prefix="datashare-validate-"))
    try:
        database = folder / "staged.duckdb"
        with duckdb.connect(str(database), config={"memory_limit": MEMORY_LIMIT}) as conn:
            conn.execute(view_sql(paths))
            nan = nan_columns(conn, schema)
        yield f"{scheme}:///{database}", nan
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def engine_kwargs() -> dict[str, Any]:
    """``create_engine`` arguments for GX's SQL data source: DuckDB's memory budget, in-order results."""
    return {"connect_args": {"config": {"memory_limit": MEMORY_LIMIT, "preserve_insertion_order": True}}}
