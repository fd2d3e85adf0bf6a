"""Counting and streaming pages of entities from a release's sorted copy, in bounded memory.

One DuckDB database per process serves every request (each on its own cursor), so one memory limit
bounds all queries together; it is sandboxed before the first query: it may read only the cache
folder (``allowed_directories``, external access off, configuration locked), loads no extension, and
the SQL it runs holds no caller text (:mod:`.sql`): statements are composed with :mod:`datashare.sqltext`
from the model's names, the translator's output and fixed text, and every value is a parameter. DuckDB
renders each row as JSON (``json_object``), which is about four times faster than building Python
dicts; rows leave in batches of :data:`BATCH_ROWS`, so a page of any size costs the same memory.

Without ``$orderby`` a page is read in the file's order (by key) with ``"$row" > r`` and no sort:
DuckDB preserves a file's row order in a query without ORDER BY (``preserve_insertion_order``, on by
default and locked here). With ``$orderby`` the page is a top-n over the matching rows, ordered by
the caller's properties and then by key.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datashare.catalog.odata.expr import DBL, DTO, INT
from datashare.catalog.odata.model import EntityModel, Property
from datashare.catalog.odata.options import QueryOptions
from datashare.catalog.odata.sql import ROW, after, order_by, where
from datashare.sqltext import SQL, Composable, Identifier, Literal

BATCH_ROWS = 8192


def json_value(prop: Property, *, ieee754: bool, special: bool = True) -> Composable:
    """SQL rendering one property as its OData JSON value.

    ``special``: the column holds NaN or an infinity somewhere, which JSON numbers cannot carry (OData
    writes them as the strings ``"NaN"``, ``"INF"``, ``"-INF"``); without them a plain number is cheaper.
    """
    column = Identifier(prop.name)
    if prop.type == DBL and special:
        return SQL(
            "CASE WHEN isnan({c}) THEN '\"NaN\"'::JSON WHEN {c} = 'inf'::DOUBLE THEN '\"INF\"'::JSON "
            "WHEN {c} = '-inf'::DOUBLE THEN '\"-INF\"'::JSON ELSE to_json({c}) END"
        ).format(c=column)
    if prop.type == DTO:
        return SQL(
            "CASE WHEN epoch_us({c}) % 1000000 = 0 THEN strftime({c}, '%Y-%m-%dT%H:%M:%S+07:00') "
            "ELSE strftime({c}, '%Y-%m-%dT%H:%M:%S.%f+07:00') END"
        ).format(c=column)
    if prop.type == INT and ieee754:
        return SQL("CAST({} AS VARCHAR)").format(column)
    return column


@dataclass(frozen=True)
class PageEnd:
    """What is known once a page has been streamed."""

    rows: int
    more: bool
    last: list[Any]
    last_row: int


class Engine:
    """The process's query database over the cache folder."""

    def __init__(self, cache_root: Path, *, memory_limit: str, threads: int) -> None:
        import duckdb

        self._lock = threading.Lock()
        self._specials: dict[Path, frozenset[str]] = {}
        self._db = duckdb.connect(
            config={
                "threads": threads,
                "memory_limit": memory_limit,
                "temp_directory": str(cache_root / ".spill"),
                "autoinstall_known_extensions": False,
                "autoload_known_extensions": False,
            }
        )
        root = Literal(str(cache_root.resolve()))
        self._db.execute(SQL("SET allowed_directories = [{}]").format(root).as_string())
        self._db.execute("SET preserve_insertion_order = true")
        self._db.execute("SET enable_progress_bar = false")  # cursors inherit it; no bar in the server's log
        self._db.execute("SET parquet_metadata_cache = true")  # cache files are immutable: parse each footer once
        self._db.execute("SET enable_external_access = false")
        self._db.execute("SET lock_configuration = true")

    def specials(self, path: Path, model: EntityModel) -> frozenset[str]:
        """Double columns of a cache file that hold NaN or an infinity (one scan per file, remembered)."""
        known = self._specials.get(path)
        if known is None:
            doubles = [p.name for p in model.properties if p.type == DBL]
            known = frozenset()
            if doubles:
                tests = SQL(", ").join(
                    SQL("coalesce(bool_or(NOT isfinite({})), FALSE)").format(Identifier(n)) for n in doubles
                )
                query = SQL("SELECT {} FROM read_parquet(?)").format(tests).as_string()
                cursor = self._cursor()
                try:
                    flags = cursor.sql(query, params=[str(path)]).fetchall()[0]
                finally:
                    cursor.close()
                known = frozenset(n for n, flag in zip(doubles, flags, strict=True) if flag)
            with self._lock:
                self._specials[path] = known
        return known

    def _cursor(self) -> Any:
        with self._lock:  # cursor() on one connection from many threads
            return self._db.cursor()

    def count(self, path: Path, options: QueryOptions) -> int:
        """Rows matching ``$filter`` (ignoring ``$top`` and ``$skip``, as ``$count`` must)."""
        condition, params = where(options.filter)  # the translator's SQL: model names, values as parameters
        query = SQL("SELECT count(*) FROM read_parquet(?) WHERE {}").format(SQL(condition)).as_string()
        cursor = self._cursor()
        try:
            rows = cursor.sql(query, params=[str(path), *params]).fetchall()
            return int(rows[0][0])
        finally:
            cursor.close()


class PageStream:
    """One page's rows as JSON text chunks, read ahead by one batch so errors surface before the answer starts."""

    def __init__(
        self, engine: Engine, path: Path, model: EntityModel, options: QueryOptions, limit: int, *, ieee754: bool
    ) -> None:
        selected = [p for p in model.properties if options.select is None or p.name in options.select]
        specials = engine.specials(path, model)
        pairs = SQL(", ").join(
            SQL("{}, {}").format(Literal(p.name), json_value(p, ieee754=ieee754, special=p.name in specials))
            for p in selected
        )
        columns = [SQL('json_object({})::VARCHAR AS "$json"').format(pairs), SQL(ROW)]
        columns += [
            SQL("{} AS {}").format(Identifier(i.prop.name), Identifier(f"$o{n}")) for n, i in enumerate(options.orderby)
        ]
        # The translator's SQL (:mod:`.sql`): the model's names, fixed text, every value a parameter.
        condition, params = where(options.filter)
        token = options.skiptoken
        if token is not None:
            keyset, keyset_params = after(options.orderby, token.last, token.last_row)
            condition, params = f"({condition}) AND {keyset}", [*params, *keyset_params]
        query = SQL("SELECT {} FROM read_parquet(?) WHERE {}").format(SQL(", ").join(columns), SQL(condition))
        if options.orderby:
            query += SQL(" ORDER BY {}").format(SQL(order_by(options.orderby)))
        query += SQL(" LIMIT ?")
        tail: list[Any] = [limit + 1]
        if options.skip and token is None:
            query += SQL(" OFFSET ?")
            tail.append(options.skip)
        sql = query.as_string()
        self.limit = limit
        self.orderby = options.orderby
        self._cursor = engine._cursor()
        try:
            relation = self._cursor.sql(sql, params=[str(path), *params, *tail])
            self._reader = relation.to_arrow_reader(BATCH_ROWS)
            self._pending = self._read()
        except Exception:
            self._cursor.close()
            raise
        self.end: PageEnd | None = None

    def _read(self) -> Any:
        try:
            return self._reader.read_next_batch()
        except StopIteration:
            return None

    def rows(self) -> Iterator[bytes]:
        """The page's entities as comma-separated JSON objects; sets :attr:`end` when done."""
        served, more = 0, False
        last: list[Any] = []
        last_row = -1
        try:
            batch = self._pending
            while batch is not None:
                room = self.limit - served
                if batch.num_rows > room:
                    more = True
                    batch = batch.slice(0, room)
                if batch.num_rows:
                    texts = batch.column(0).to_pylist()
                    yield (("," if served else "") + ",".join(texts)).encode()
                    served += batch.num_rows
                    last_row = batch.column(1)[-1].as_py()
                    last = [batch.column(2 + n)[-1].as_py() for n in range(len(self.orderby))]
                if more:
                    break
                batch = self._read()
        finally:
            self._cursor.close()
        self.end = PageEnd(rows=served, more=more, last=last, last_row=last_row)
