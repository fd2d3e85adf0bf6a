"""The PostgreSQL side of the SQL share: data-file tables shared by versions through inheritance.

Each data file of a release is loaded once, into a *part* table ``<id>__p<sha256[:12]>`` (its full
digest in the table's comment). The version table ``<id>__v<N>`` holds no rows itself: its parts
inherit from it, so ``SELECT * FROM <id>__v<N>`` reads exactly the rows of release N, and a part
shared by several releases belongs to each of them. A release that adds 1% of new rows to the
previous one therefore loads 1% of the rows: the unchanged files' parts are attached to the new
version table, not copied.

Loading streams the file's record batches through ADBC's bulk ingest (binary COPY); a reader thread
decodes the next Parquet batch while ADBC encodes and sends the previous one. A part is created and
filled in one transaction, so a failed load leaves nothing. The swap (new version table, its parts
attached, the view repointed, comments, grants, bookkeeping) is one transaction under
``SET LOCAL lock_timeout``, retried with backoff; retention detaches and drops old version tables,
then drops the parts no version uses any more.

Every statement is composed with ``psycopg.sql``: names as ``sql.Identifier``, the few constants a
statement takes no parameter for (comments, ``lock_timeout``) as ``sql.Literal``, values as parameters.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datashare.exceptions import PublishBusy, PublishError
from datashare.share.sqlshare import (
    BATCH_ROWS,
    BOOKKEEPING,
    _arrow_schema,
    _backoff,
    _Column,
    _Names,
    _refuse_older,
)
from datashare.share.target import ShareTarget

if TYPE_CHECKING:
    import psycopg
    import pyarrow as pa
    from psycopg import sql

log = logging.getLogger(__name__)

PART_DIGITS = 12
"""Hex digits of the file digest in a part table's name: ``<id>__p`` + 12 stays within 63 bytes."""


def one(cursor: psycopg.Cursor[Any]) -> tuple[Any, ...]:
    """The row of a query that always answers one (``SELECT count(*)``, ``SELECT to_regclass(...)``)."""
    row = cursor.fetchone()
    if row is None:  # never for such a query: a server that answers nothing is not the one we expect
        raise PublishError("the SQL share answered no row to a query that always answers one")
    return tuple(row)


@dataclass(frozen=True)
class _Part:
    """One data file of the release and the table that holds its rows."""

    path: Path
    sha256: str
    table: str


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _create_table(table: sql.Identifier, columns: Sequence[_Column]) -> sql.Composed:
    """``CREATE TABLE`` of the release's columns in PostgreSQL's types."""
    from psycopg import sql

    cols = sql.SQL(", ").join(
        sql.SQL("{} {}{}").format(
            sql.Identifier(c.name), sql.SQL(c.pg_type), sql.SQL("" if c.nullable else " NOT NULL")
        )  # pg_type comes from the fixed mapping of _map_field
        for c in columns
    )
    return sql.SQL("CREATE TABLE {} ({})").format(table, cols)


def _bookkeeping(schema: str) -> sql.Identifier:
    from psycopg import sql

    return sql.Identifier(schema, BOOKKEEPING)


def _lock_timeout(lock_timeout_ms: int) -> sql.Composed:
    from psycopg import sql

    return sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(int(lock_timeout_ms)))


def _parts(names: _Names, paths: Sequence[Path]) -> list[_Part]:
    parts: dict[str, _Part] = {}
    for path in paths:
        sha = _sha256(path)
        parts.setdefault(sha, _Part(path, sha, f"{names.dataset_id}__p{sha[:PART_DIGITS]}"))
    return list(parts.values())


def publish_postgres(
    target: ShareTarget,
    *,
    names: _Names,
    columns: list[_Column],
    paths: list[Path],
    retention: int,
    comment: str,
    lock_timeout_ms: int,
    max_attempts: int,
    withdrawn: tuple[int, ...],
    audience: str = "",
) -> tuple[int, tuple[str, ...]]:
    """Load the parts not yet in the share, swap version N in, retire old versions; returns (rows, dropped).

    ``audience`` is recorded with version N in the bookkeeping (see :mod:`datashare.share.sqlshare_places`).
    """
    import psycopg
    from psycopg import sql

    bookkeeping = _bookkeeping(names.schema)
    where = f"{names.schema}.{names.dataset_id} at {target.redacted}"
    try:
        with psycopg.connect(target.libpq_uri, autocommit=True) as conn:
            _lock_dataset(conn, names.schema, names.dataset_id, where)
            _create_if_absent(conn, sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(names.schema)))
            _create_if_absent(
                conn,
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (dataset_id text NOT NULL, "
                    "version integer NOT NULL, table_name text NOT NULL, rows bigint NOT NULL, "
                    "published_at timestamptz NOT NULL DEFAULT now(), readers text, PRIMARY KEY (dataset_id, version))"
                ).format(bookkeeping),
            )
            ensure_readers_column(conn, names.schema)
            current = one(
                conn.execute(
                    sql.SQL("SELECT max(version) FROM {} WHERE dataset_id = %s AND version <> ALL(%s)").format(
                        bookkeeping
                    ),
                    (names.dataset_id, list(withdrawn)),
                )
            )[0]
            _refuse_older(names, current)
            load = sql.Identifier(names.schema, names.load)
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(load))  # left by an earlier layout
            rows = 0
            parts = _parts(names, paths)
            for part in parts:
                rows += _ensure_part(conn, target.libpq_uri, names, columns, part)
            _retry_while_locked(
                lambda: _swap(conn, names, columns, parts, rows, comment, lock_timeout_ms, withdrawn, audience),
                names,
                lock_timeout_ms,
                max_attempts,
            )
            return rows, _retire(conn, names, retention, lock_timeout_ms)
    except psycopg.OperationalError as exc:
        raise PublishBusy(f"SQL share unavailable while publishing {where}: {exc}") from exc
    except psycopg.Error as exc:
        raise PublishError(f"publishing {names.table} to {where} failed: {exc}") from exc


_READERS_SQL = """
SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attname = 'readers' AND NOT attisdropped)
"""


def ensure_readers_column(conn: psycopg.Connection, schema: str) -> None:
    """Give bookkeeping made before audience tags its ``readers`` column (only if missing: ALTER locks)."""
    from psycopg import sql

    bookkeeping = _bookkeeping(schema)
    if not one(conn.execute(_READERS_SQL, (bookkeeping.as_string(conn),)))[0]:
        _create_if_absent(conn, sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS readers text").format(bookkeeping))


def _lock_dataset(conn: psycopg.Connection, schema: str, dataset_id: str, where: str) -> None:
    """One publisher per dataset at a time; the session lock goes with the connection."""
    key = f"datashare:{schema}.{dataset_id}"
    if not one(conn.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (key,)))[0]:
        raise PublishBusy(f"another publish of {where} is running; retry later")


def _create_if_absent(conn: psycopg.Connection, statement: sql.Composed) -> None:
    """``IF NOT EXISTS`` can still collide with a concurrent creator: the object exists then, fine."""
    import psycopg

    try:
        conn.execute(statement)
    except (psycopg.errors.UniqueViolation, psycopg.errors.DuplicateObject, psycopg.errors.DuplicateSchema):
        log.debug("Concurrent creation, already there: %s", statement.as_string(conn))


def _part_note(names: _Names, part: _Part, rows: int) -> str:
    return f"{names.dataset_id} data file sha256:{part.sha256} ({rows} rows)"


def _ensure_part(conn: psycopg.Connection, uri: str, names: _Names, columns: list[_Column], part: _Part) -> int:
    """Rows of the part's table, loading the file first unless a table with its digest is already there."""
    from psycopg import sql

    qualified = sql.Identifier(names.schema, part.table).as_string(conn)
    note = one(conn.execute("SELECT obj_description(to_regclass(%s), 'pg_class')", (qualified,)))[0]
    if note and f"sha256:{part.sha256} (" in note:
        rows = int(note.rsplit("(", 1)[1].split(" ", 1)[0])
        log.info("Part %s.%s (%s rows) is already loaded: reused", names.schema, part.table, rows)
        return rows
    if note is not None or one(conn.execute("SELECT to_regclass(%s)", (qualified,)))[0] is not None:
        raise PublishError(f"table {names.schema}.{part.table} exists but does not hold file {part.path}")
    return _load_part(uri, names, columns, part)


class _Batches:
    """Stream a file's record batches in the load schema, counting rows as they pass."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.path = path
        self.schema = schema
        self.rows = 0
        self.error: PublishError | None = None  # kept: ADBC reports a failing stream as a bare IO error

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        import pyarrow as pa

        from datashare.parquet import iter_batches
        from datashare.source.prefetch import read_ahead

        try:
            for batch in read_ahead(iter_batches(self.path, BATCH_ROWS)):
                self.rows += batch.num_rows
                yield batch.cast(self.schema)
        except (OSError, pa.ArrowException) as exc:
            self.error = PublishError(f"cannot load Parquet file {self.path}: {exc}")
            raise self.error from exc


def _load_part(uri: str, names: _Names, columns: list[_Column], part: _Part) -> int:
    """Create the part table and stream the file into it with ADBC (binary COPY), one transaction."""
    import adbc_driver_postgresql.dbapi as adbc
    import pyarrow as pa
    from psycopg import sql

    schema = _arrow_schema(columns)
    batches = _Batches(part.path, schema)
    reader = pa.RecordBatchReader.from_batches(schema, iter(batches))
    qualified = sql.Identifier(names.schema, part.table)
    started = time.perf_counter()
    try:
        with adbc.connect(uri) as conn, conn.cursor() as cur:
            # ADBC takes text: psycopg renders it without a connection (no server-specific quoting involved)
            cur.execute(_create_table(qualified, columns).as_string(None))
            cur.adbc_ingest(part.table, reader, mode="append", db_schema_name=names.schema)
            note = sql.Literal(_part_note(names, part, batches.rows))
            cur.execute(sql.SQL("COMMENT ON TABLE {} IS {}").format(qualified, note).as_string(None))
            cur.execute("SELECT current_setting('track_counts')")
            if cur.fetchone()[0] == "off":  # a recipient database: autovacuum sees no counts, so analyse now
                cur.execute(sql.SQL("ANALYZE {}").format(qualified).as_string(None))
            conn.commit()
    except adbc.Error as exc:
        if batches.error is not None:
            raise batches.error from exc
        if isinstance(exc, adbc.OperationalError):
            raise PublishBusy(f"loading {names.schema}.{part.table} was interrupted: {exc}") from exc
        raise PublishError(f"loading {names.schema}.{part.table} failed: {exc}") from exc
    log.info(
        "Loaded %s rows from %s into %s.%s in %.1f s",
        batches.rows, part.path, names.schema, part.table, time.perf_counter() - started,
    )  # fmt: skip
    return batches.rows


def _retry_while_locked(swap: Callable[[], None], names: _Names, lock_timeout_ms: int, max_attempts: int) -> None:
    """Run ``swap`` (:func:`_swap`) until readers let go of the view, backing off; then :class:`PublishBusy`."""
    import psycopg

    for attempt in range(1, max_attempts + 1):
        try:
            swap()
            return
        except psycopg.errors.LockNotAvailable:
            if attempt == max_attempts:
                break
            wait = _backoff(attempt)
            log.warning(
                "View %s.%s is held by readers (attempt %s of %s); retrying in %.2f s",
                names.schema, names.dataset_id, attempt, max_attempts, wait,
            )  # fmt: skip
            time.sleep(wait)
    raise PublishBusy(
        f"view {names.schema}.{names.dataset_id} stayed locked by readers through {max_attempts} attempts "
        f"of {lock_timeout_ms} ms; v{names.version} not published, retry later"
    )


_GRANTS_SQL = """
SELECT CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END,
       a.privilege_type, a.is_grantable
FROM pg_class c, aclexplode(c.relacl) a
WHERE c.oid = to_regclass(%s) AND a.grantee <> c.relowner
"""
"""Grants on a relation to others than its owner: (role name, None for PUBLIC; privilege; grantable)."""
_PRIVILEGE = re.compile(r"^[A-Z]+$")
"""A privilege as ``aclexplode`` names it (``SELECT``, ``INSERT``, ...): a keyword, put back as it is."""
_CHILDREN_SQL = """
SELECT n.nspname, c.relname FROM pg_inherits i
JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE i.inhparent = to_regclass(%s) ORDER BY i.inhrelid::regclass::text
"""


def _detach_and_drop(conn: psycopg.Connection, table: sql.Identifier) -> None:
    """Drop a version table, detaching its parts first (``DROP`` would refuse, ``CASCADE`` would drop them)."""
    from psycopg import sql

    qualified = table.as_string(conn)
    if one(conn.execute("SELECT to_regclass(%s)", (qualified,)))[0] is None:
        return
    for schema, child in conn.execute(_CHILDREN_SQL, (qualified,)).fetchall():
        conn.execute(sql.SQL("ALTER TABLE {} NO INHERIT {}").format(sql.Identifier(schema, child), table))
    conn.execute(sql.SQL("DROP TABLE {}").format(table))


def _regrant(conn: psycopg.Connection, view: sql.Identifier, grants: list[tuple[Any, ...]]) -> None:
    """Give back the grants ``_GRANTS_SQL`` read before the view was dropped."""
    from psycopg import sql

    for grantee, privilege, grantable in grants:
        if not _PRIVILEGE.fullmatch(privilege):  # never: aclexplode answers keywords
            raise PublishError(f"unexpected privilege {privilege!r} on {view.as_string(conn)}")
        conn.execute(
            sql.SQL("GRANT {} ON {} TO {}{}").format(
                sql.SQL(privilege),
                view,
                sql.SQL("PUBLIC") if grantee is None else sql.Identifier(grantee),
                sql.SQL(" WITH GRANT OPTION" if grantable else ""),
            )
        )


def _swap(
    conn: psycopg.Connection,
    names: _Names,
    columns: list[_Column],
    parts: list[_Part],
    rows: int,
    comment: str,
    lock_timeout_ms: int,
    withdrawn: tuple[int, ...],
    audience: str,
) -> None:
    """Create version N over its parts, repoint the view, comment, regrant, record and drop withdrawn versions.

    All in one transaction: a consumer sees the view before or after, never a gap.
    """
    from psycopg import sql

    view, table = sql.Identifier(names.schema, names.dataset_id), sql.Identifier(names.schema, names.table)
    bookkeeping = _bookkeeping(names.schema)
    with conn.transaction():
        conn.execute(_lock_timeout(lock_timeout_ms))
        grants = conn.execute(_GRANTS_SQL, (view.as_string(conn),)).fetchall()  # drop + create would lose them
        conn.execute(sql.SQL("DROP VIEW IF EXISTS {}").format(view))
        _detach_and_drop(conn, table)  # a re-publish rebuilds the same version
        conn.execute(_create_table(table, columns))
        for part in parts:
            conn.execute(sql.SQL("ALTER TABLE {} INHERIT {}").format(sql.Identifier(names.schema, part.table), table))
        conn.execute(sql.SQL("CREATE VIEW {} AS SELECT * FROM {}").format(view, table))
        note = unicodedata.normalize("NFC", comment.strip())
        view_note = f"{note} (release {names.version})" if note else f"{names.dataset_id}, release {names.version}"
        comments = [
            (sql.SQL("COMMENT ON VIEW {} IS {}"), view, view_note),
            (sql.SQL("COMMENT ON TABLE {} IS {}"), table, f"{names.dataset_id}, release {names.version}"),
        ]
        for c in columns:
            if c.description:
                for relation in (names.dataset_id, names.table):
                    column = sql.Identifier(names.schema, relation, c.name)
                    comments.append((sql.SQL("COMMENT ON COLUMN {} IS {}"), column, c.description))
        for template, target, text in comments:
            conn.execute(template.format(target, sql.Literal(text)))  # COMMENT takes no bind parameters
        _regrant(conn, view, grants)
        conn.execute(
            sql.SQL(
                "INSERT INTO {} (dataset_id, version, table_name, rows, published_at, readers) "
                "VALUES (%s, %s, %s, %s, now(), %s) ON CONFLICT (dataset_id, version) DO UPDATE SET "
                "table_name = EXCLUDED.table_name, rows = EXCLUDED.rows, published_at = EXCLUDED.published_at, "
                "readers = EXCLUDED.readers"
            ).format(bookkeeping),
            (names.dataset_id, names.version, names.table, rows, audience),
        )
        gone = conn.execute(
            sql.SQL("DELETE FROM {} WHERE dataset_id = %s AND version = ANY(%s) RETURNING version").format(bookkeeping),
            (names.dataset_id, list(withdrawn)),
        ).fetchall()
        for (v,) in gone:
            _detach_and_drop(conn, sql.Identifier(names.schema, _Names(names.dataset_id, v, names.schema).table))


_ORPHANS_SQL = """
SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relkind = 'r' AND c.relname ~ %s
  AND NOT EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = c.oid)
ORDER BY 1
"""


def _drop_orphan_parts(conn: psycopg.Connection, schema: str, dataset_id: str) -> None:
    """Drop the dataset's part tables that no version table inherits any more."""
    from psycopg import sql

    pattern = f"^{dataset_id}__p[0-9a-f]{{{PART_DIGITS}}}$"  # DATASET_ID has no regex metacharacters
    for (orphan,) in conn.execute(_ORPHANS_SQL, (schema, pattern)).fetchall():
        conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(schema, orphan)))


def _retire(conn: psycopg.Connection, names: _Names, retention: int, lock_timeout_ms: int) -> tuple[str, ...]:
    """Drop version tables past ``retention``, then the parts no version uses; a reader only postpones it."""
    import psycopg
    from psycopg import sql

    bookkeeping = _bookkeeping(names.schema)
    try:
        with conn.transaction():
            conn.execute(_lock_timeout(lock_timeout_ms))
            old = conn.execute(
                sql.SQL("SELECT version FROM {} WHERE dataset_id = %s ORDER BY version DESC OFFSET %s").format(
                    bookkeeping
                ),
                (names.dataset_id, retention),
            ).fetchall()
            dropped = tuple(_Names(names.dataset_id, v, names.schema).table for (v,) in sorted(old))
            for table in dropped:
                _detach_and_drop(conn, sql.Identifier(names.schema, table))
            conn.execute(
                sql.SQL("DELETE FROM {} WHERE dataset_id = %s AND version = ANY(%s)").format(bookkeeping),
                (names.dataset_id, [v for (v,) in old]),
            )
            _drop_orphan_parts(conn, names.schema, names.dataset_id)
            return dropped
    except psycopg.errors.LockNotAvailable:
        log.warning("Old versions of %s.%s are still read; kept until the next publish", names.schema, names.dataset_id)
        return ()


def unpublish_postgres(target: ShareTarget, *, dataset_id: str, lock_timeout_ms: int) -> tuple[str, ...]:
    """Drop the view, every version table and part of a dataset, and its bookkeeping rows: one transaction."""
    import psycopg
    from psycopg import sql

    schema = target.schema
    bookkeeping = _bookkeeping(schema)
    where = f"{schema}.{dataset_id} at {target.redacted}"
    try:
        with psycopg.connect(target.libpq_uri, autocommit=True) as conn:
            _lock_dataset(conn, schema, dataset_id, where)
            if one(conn.execute("SELECT to_regclass(%s)", (bookkeeping.as_string(conn),)))[0] is None:
                return ()
            with conn.transaction():
                conn.execute(_lock_timeout(lock_timeout_ms))
                gone = conn.execute(
                    sql.SQL("DELETE FROM {} WHERE dataset_id = %s RETURNING version").format(bookkeeping), (dataset_id,)
                ).fetchall()
                conn.execute(sql.SQL("DROP VIEW IF EXISTS {}").format(sql.Identifier(schema, dataset_id)))
                dropped = tuple(_Names(dataset_id, v, schema).table for (v,) in sorted(gone))
                for table in dropped:
                    _detach_and_drop(conn, sql.Identifier(schema, table))
                _drop_orphan_parts(conn, schema, dataset_id)
            return dropped
    except psycopg.errors.LockNotAvailable as exc:
        raise PublishBusy(f"view {where} is held by readers; not taken out, retry later") from exc
    except psycopg.OperationalError as exc:
        raise PublishBusy(f"SQL share unavailable while taking out {where}: {exc}") from exc
    except psycopg.Error as exc:
        raise PublishError(f"taking {where} out of the share failed: {exc}") from exc
