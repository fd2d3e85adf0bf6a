"""Where a dataset lives in a PostgreSQL SQL share: the share's database, or one database per reader.

PostgreSQL shows every role the catalogs of the database it is connected to, whatever its privileges:
``pg_class``, ``pg_namespace``, ``pg_attribute``, ``pg_description`` (``obj_description``,
``col_description``), ``pg_views`` / ``pg_get_viewdef``, ``pg_inherits``, ``pg_type``, ``pg_rewrite`` and
the statistics views (``pg_stat_*_tables``, ``pg_statio_*``) list every table, column, comment, view
definition and row count of that database. A schema with USAGE for one agency only stops name resolution,
not those catalogs (only ``information_schema`` filters by privilege). What a role cannot look into is a
database it may not connect to: the catalogs above are per database; the cluster-wide ones
(``pg_database``, ``pg_roles``, ``pg_shdescription``, ``pg_stat_database``) hold no table, column or
comment of it.

So the share is laid out by audience:

* open and shared datasets live in the share's own database (the connection's), schema ``datashare``,
  as views granted to the group roles (``datashare_public``, ``datashare_government``);
* a restricted dataset lives in the database of each recipient that may read it,
  ``<share database>__<code>`` (shortened with a hash past 63 bytes), with the same schema and layout
  inside. PUBLIC has no privilege on that database; only the recipient's role may CONNECT
  (:func:`datashare.share.sqlroles.apply_grants`). The database carries a comment naming the share and the
  recipient, which is how datashare recognises its own databases (never one it did not create).

A dataset moves when its audience changes (reclassified, a recipient added, removed or made inactive):
:func:`publish` takes it out of every database it must not be in *before* loading it where it must be,
so a failure leaves it in fewer places, never in more. :func:`state` tells the pipeline whether the
dataset is where it must be, so a change of audience is applied by the next run even when no new
release was committed.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from datashare.exceptions import PublishBusy, PublishError
from datashare.share.sqlshare_pg import one

if TYPE_CHECKING:
    import psycopg

    from datashare.share.target import ShareTarget

log = logging.getLogger(__name__)

MAX_NAME_BYTES = 63
"""PostgreSQL truncates identifiers past 63 bytes: longer database names are shortened with a hash."""
_MARK = "datashare restricted share: database {main!r}, recipient {code}"
_MARK_RE = re.compile(r"^datashare restricted share: database '(?P<main>.*)', recipient (?P<code>[a-z][a-z0-9_]*)$")
_LOCK_KEY = "datashare:placement:{schema}.{dataset_id}"

_OURS_SQL = """
SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database
WHERE shobj_description(oid, 'pg_database') LIKE 'datashare restricted share: %' ORDER BY datname
"""


@dataclass(frozen=True)
class ShareState:
    """What a PostgreSQL (or SQLite) share holds of one dataset."""

    versions: list[int]
    """Every version held anywhere in the share (all its databases), oldest first."""
    in_place: bool
    """Whether the dataset is exactly where its readers say: every database due holds the newest version,
    no other database holds anything of it. True when it is held nowhere."""
    databases: dict[str, list[int]]
    """Versions held, by database name (only databases holding something)."""


def agency_database(main: str, code: str) -> str:
    """The database holding the restricted datasets ``code`` may read, beside share database ``main``."""
    name = f"{main}__{code}"
    if len(name.encode("utf-8")) <= MAX_NAME_BYTES:
        return name
    digest = hashlib.sha256(f"{main}\0{code}".encode()).hexdigest()[:12]
    head = main.encode("utf-8")[: MAX_NAME_BYTES - 2 - len(digest)].decode("utf-8", errors="ignore")
    return f"{head}__{digest}"  # the database's comment still names the recipient


def main_database(target: ShareTarget) -> str:
    """The share's own database (the connection's)."""
    if not target.url.database:
        raise PublishError("the PostgreSQL share URL names no database")
    return target.url.database


def ours(conn: psycopg.Connection, main: str) -> dict[str, str]:
    """This share's recipient databases, by recipient code (recognised by their comment, never by name alone)."""
    found: dict[str, str] = {}
    for name, note in conn.execute(_OURS_SQL).fetchall():
        match = _MARK_RE.fullmatch(note or "")
        if match and match["main"] == main:
            found[match["code"]] = name
    return found


def ensure_database(conn: psycopg.Connection, main: str, code: str) -> str:
    """Create recipient ``code``'s database if absent (PUBLIC gets nothing on it); returns its name.

    ``conn`` is an autocommit connection to the share's database. The new database copies ``template0``
    (never connected to, so a concurrent session cannot block the copy) with the share database's
    encoding and collation.
    """
    import psycopg
    from psycopg import sql

    name = agency_database(main, code)
    existing = ours(conn, main)
    if code in existing:
        return existing[code]
    taken = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    if taken is not None:
        raise PublishError(
            f"database {name} exists but was not made by datashare for share {main!r}: rename it, or the "
            f"recipient {code}'s restricted datasets cannot be published"
        )
    encoding, collate, ctype = one(
        conn.execute(
            "SELECT pg_encoding_to_char(encoding), datcollate, datctype "
            "FROM pg_database WHERE datname = current_database()"
        )
    )
    ident = sql.Identifier(name)
    try:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE template0 ENCODING {} LC_COLLATE {} LC_CTYPE {}").format(
                ident, sql.Literal(encoding), sql.Literal(collate), sql.Literal(ctype)
            )
        )
    except psycopg.errors.DuplicateDatabase:
        log.debug("Database %s was created concurrently", name)
    except psycopg.errors.InsufficientPrivilege as exc:
        raise PublishError(
            f"cannot create database {name} for recipient {code}'s restricted datasets: the share's user "
            "needs CREATEDB (or create it beforehand, owned by the share's user)"
        ) from exc
    conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(ident))
    conn.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(ident, sql.Literal(_MARK.format(main=main, code=code))))
    _stop_counting(conn, name)
    log.info("Created database %s for the restricted datasets of %s", name, code)
    return name


def _stop_counting(conn: psycopg.Connection, name: str) -> None:
    """Turn off row counting for sessions in the database: ``pg_stat_database`` shows every role its counters.

    ``tup_inserted`` of a recipient database would otherwise tell anyone roughly how many rows were
    loaded into it. The setting is superuser-only (or ``GRANT SET ON PARAMETER track_counts``); without
    it the database still hides every name, column, comment and table statistic, and this is logged.
    Tables there are analysed explicitly after each load, since autovacuum sees no counts.
    """
    import psycopg
    from psycopg import sql

    try:
        conn.execute(sql.SQL("ALTER DATABASE {} SET track_counts = off").format(sql.Identifier(name)))
    except psycopg.errors.InsufficientPrivilege:
        log.warning(
            "Cannot turn off track_counts in database %s (superuser or GRANT SET ON PARAMETER track_counts "
            "needed): pg_stat_database will show every role roughly how many rows it holds",
            name,
        )


@contextmanager
def placement_lock(conn: psycopg.Connection, schema: str, dataset_id: str, where: str) -> Iterator[None]:
    """One writer moves a dataset between databases at a time (a session lock in the share's database)."""
    key = _LOCK_KEY.format(schema=schema, dataset_id=dataset_id)
    if not one(conn.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (key,)))[0]:
        raise PublishBusy(f"another publish of {where} is running; retry later")
    try:
        yield
    finally:
        conn.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (key,))


UNSETTLED = "?"
"""Audience tag of rows whose database may be half-way through a move (see :func:`publish`)."""


def audience_tag(codes: tuple[str, ...] | None) -> str:
    """What a database's bookkeeping records of the audience a version was published for."""
    return "" if codes is None else ",".join(codes)


_ROWS_SQL = """
SELECT to_regclass(%(bk)s) IS NOT NULL,
       EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass(%(bk)s) AND attname = 'readers'
               AND NOT attisdropped)
"""


def held_rows(conn: psycopg.Connection, schema: str, dataset_id: str) -> list[tuple[int, str]]:
    """(version, audience tag) of a dataset in one database's bookkeeping, oldest first.

    Bookkeeping from before audience tags holds no ``readers`` column: its rows count as open or shared
    (that layout had no recipient databases).
    """
    from psycopg import sql

    from datashare.share.sqlshare import BOOKKEEPING

    bookkeeping = sql.Identifier(schema, BOOKKEEPING)
    exists, tagged = one(conn.execute(_ROWS_SQL, {"bk": bookkeeping.as_string(conn)}))
    if not exists:
        return []
    tag = sql.SQL("coalesce(readers, '')" if tagged else "''")
    query = sql.SQL("SELECT version, {} FROM {} WHERE dataset_id = %s ORDER BY version").format(tag, bookkeeping)
    return [(int(v), str(t)) for v, t in conn.execute(query, (dataset_id,))]


def held_versions(uri: str, schema: str, dataset_id: str) -> list[int]:
    """Versions of a dataset one database's bookkeeping lists, oldest first."""
    import psycopg

    with psycopg.connect(uri, autocommit=True) as conn:
        return [v for v, _ in held_rows(conn, schema, dataset_id)]


def _unsettle(uri: str, schema: str, dataset_id: str) -> None:
    """Mark a database's rows of the dataset as possibly mid-move, before the dataset goes anywhere new."""
    import psycopg
    from psycopg import sql

    from datashare.share.sqlshare import BOOKKEEPING
    from datashare.share.sqlshare_pg import ensure_readers_column

    with psycopg.connect(uri, autocommit=True) as conn:
        ensure_readers_column(conn, schema)
        update = sql.SQL("UPDATE {} SET readers = %s WHERE dataset_id = %s").format(sql.Identifier(schema, BOOKKEEPING))
        conn.execute(update, (UNSETTLED, dataset_id))


def check_codes(codes: Collection[str] | None) -> tuple[str, ...] | None:
    """Recipient codes checked against the pattern before they name a database; sorted, once each."""
    if codes is None:
        return None
    from datashare.share.sqlroles import RECIPIENT_CODE

    for code in codes:
        if not isinstance(code, str) or not RECIPIENT_CODE.fullmatch(code):
            raise PublishError(f"invalid recipient code {code!r}: it must match {RECIPIENT_CODE.pattern}")
    return tuple(sorted(set(codes)))


def _due(main: str, codes: tuple[str, ...] | None, existing: dict[str, str]) -> list[str]:
    """The databases a dataset must be in: the share's own (open, shared), or each reader's (restricted)."""
    if codes is None:
        return [main]
    return [existing.get(code, agency_database(main, code)) for code in codes]


def _rows_of(
    conn: psycopg.Connection, target: ShareTarget, names: Collection[str], existing: Collection[str], dataset_id: str
) -> dict[str, list[tuple[int, str]]]:
    """Bookkeeping rows of the dataset in each named database that exists (``conn``: the share's own)."""
    import psycopg

    main = main_database(target)
    rows = {}
    for name in names:
        if name == main:
            rows[name] = held_rows(conn, target.schema, dataset_id)
        elif name in existing:
            with psycopg.connect(target.at(name).libpq_uri, autocommit=True) as other:
                rows[name] = held_rows(other, target.schema, dataset_id)
        else:
            rows[name] = []
    return rows


def _settled(rows: dict[str, list[tuple[int, str]]], tag: str) -> bool:
    """Whether the last publish for this audience completed: then no other database can hold the dataset.

    True when every database due (at least one) holds the same newest version, published for ``tag``.
    A dataset nobody may read has no database due: never settled, so every database is looked at. A
    publish takes the dataset out of every other database *before* it writes that tag anywhere, and
    marks the rows of every database it leaves in place as unsettled first (:data:`UNSETTLED`), so a
    publish cut short never leaves all of them looking settled.
    """
    newest = [held[-1] if held else None for held in rows.values()]
    return bool(newest) and all(n is not None and n == newest[0] and n[1] == tag for n in newest)


def state(target: ShareTarget, dataset_id: str, codes: Collection[str] | None) -> ShareState:
    """Where the dataset is, and whether that is where ``codes`` (None: open or shared) say it must be.

    Reads only the databases due while the dataset is settled there (the common case: one database for
    an open or shared dataset); every database of the share otherwise.
    """
    import psycopg

    checked = check_codes(codes)
    main = main_database(target)
    try:
        with psycopg.connect(target.libpq_uri, autocommit=True) as conn:
            existing = ours(conn, main)
            due = _due(main, checked, existing)
            rows = _rows_of(conn, target, due, existing.values(), dataset_id)
            settled = _settled(rows, audience_tag(checked))
            if not settled:
                rows = _rows_of(conn, target, [main, *existing.values()], existing.values(), dataset_id)
    except psycopg.OperationalError as exc:
        raise PublishBusy(f"SQL share unavailable while reading where {dataset_id} is: {exc}") from exc
    except psycopg.Error as exc:
        raise PublishError(f"cannot read where {dataset_id} is in the SQL share: {exc}") from exc
    held = {name: [v for v, _ in r] for name, r in rows.items() if r}
    versions = sorted({v for vs in held.values() for v in vs})
    return ShareState(versions=versions, in_place=settled or not held, databases=held)


def publish(
    target: ShareTarget,
    *,
    dataset_id: str,
    codes: Collection[str] | None,
    lock_timeout_ms: int,
    publish_one: Callable[[ShareTarget, str], tuple[int, tuple[str, ...]]],
) -> tuple[int, tuple[str, ...], tuple[str, ...]]:
    """Take the dataset out of every database it must not be in, then publish it into each one due.

    In order: the databases it must leave are emptied of it; the databases due that hold it are marked
    unsettled; then each database due gets the version, tagged with the audience. Whatever instruction
    a failure lands on, the dataset is in no database it must not be in once the next publish completes,
    and :func:`state` says it is not in place until then. ``publish_one(target, tag)`` publishes into
    one database (``target`` points at it).

    Returns:
        (rows, version tables dropped, databases published into).
    """
    import psycopg

    from datashare.share.sqlshare_pg import unpublish_postgres

    checked = check_codes(codes)
    tag = audience_tag(checked)
    schema = target.schema
    main = main_database(target)
    where = f"{schema}.{dataset_id} at {target.redacted}"
    try:
        with (
            psycopg.connect(target.libpq_uri, autocommit=True) as conn,
            placement_lock(conn, schema, dataset_id, where),
        ):
            existing = ours(conn, main)
            due = _due(main, checked, existing)
            rows = _rows_of(conn, target, due, existing.values(), dataset_id)
            if not _settled(rows, tag):  # the audience changed or a move was cut short: look everywhere
                rows = _rows_of(conn, target, [main, *existing.values()], existing.values(), dataset_id)
            dropped: list[str] = []
            for name in sorted(n for n, r in rows.items() if r and n not in due):
                log.warning("%s must not be in database %s any more: taking it out", dataset_id, name)
                dropped += unpublish_postgres(target.at(name), dataset_id=dataset_id, lock_timeout_ms=lock_timeout_ms)
            for name in sorted(n for n, r in rows.items() if r and n in due):
                _unsettle(target.at(name).libpq_uri, schema, dataset_id)
            if checked is not None:
                due = [ensure_database(conn, main, code) for code in checked]
            total = 0
            for name in due:
                total, retired = publish_one(target.at(name), tag)
                dropped += retired
            return total, tuple(dropped), tuple(due)
    except psycopg.OperationalError as exc:
        raise PublishBusy(f"SQL share unavailable while placing {where}: {exc}") from exc
    except psycopg.Error as exc:
        raise PublishError(f"placing {where} failed: {exc}") from exc


def unpublish_everywhere(target: ShareTarget, *, dataset_id: str, lock_timeout_ms: int) -> tuple[str, ...]:
    """Take the dataset out of every database of the share; returns the version tables dropped."""
    import psycopg

    from datashare.share.sqlshare_pg import unpublish_postgres

    schema = target.schema
    main = main_database(target)
    where = f"{schema}.{dataset_id} at {target.redacted}"
    try:
        with (
            psycopg.connect(target.libpq_uri, autocommit=True) as conn,
            placement_lock(conn, schema, dataset_id, where),
        ):
            dropped: list[str] = []
            for name in [main, *sorted(ours(conn, main).values())]:
                dropped += unpublish_postgres(target.at(name), dataset_id=dataset_id, lock_timeout_ms=lock_timeout_ms)
            return tuple(dropped)
    except psycopg.OperationalError as exc:
        raise PublishBusy(f"SQL share unavailable while taking out {where}: {exc}") from exc
    except psycopg.Error as exc:
        raise PublishError(f"taking {where} out of the share failed: {exc}") from exc
