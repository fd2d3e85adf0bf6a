"""SQL share: publish a committed release as a versioned table behind a stable view.

Release N of dataset ``<id>`` is loaded into table ``<id>__v<N>``; the view ``<id>`` is then repointed
to it in one transaction, so a consumer querying the view sees release N-1 or release N, never a mix.
Each publish is recorded in the bookkeeping table ``_datashare_versions`` (one row per version still
in the share); version tables past the retention count are dropped with their bookkeeping rows.

The backend follows the SQLAlchemy URL of the target:

* PostgreSQL (``postgresql+psycopg://user:pw@host:port/db``): everything lives in the target's ``schema``
  (:mod:`datashare.share.sqlshare_pg`). Each data file is streamed once through ADBC's bulk ingest (binary
  COPY) into a part table ``<id>__p<digest>``; the version table ``<id>__v<N>`` is the parent its parts
  inherit from, so an incremental release loads only its new file. The swap runs under
  ``SET LOCAL lock_timeout``. A consumer holding the view in an open transaction makes the swap wait:
  each wait is bounded by ``lock_timeout_ms``, the swap is retried with backoff, and after
  ``max_attempts`` a retryable :class:`PublishBusy` is raised. Column descriptions (Arrow field metadata
  ``description``) become comments; grants on the view survive the repoint. Retention runs in its own
  transaction after the swap: a reader still holding an old table only postpones its drop.
  Restricted datasets (``readers`` given) are published into a database of each reader instead of the
  share's own, so no other role sees their names, comments, columns, definitions or statistics in the
  catalogs (:mod:`datashare.share.sqlshare_places`).
* SQLite (``sqlite:///var/share.sqlite``), the embedded default. SQLite has no schemas, so ``schema`` is
  validated but ignored; there are no comments and no roles. The whole publish is one
  ``BEGIN IMMEDIATE`` transaction; the file is switched to WAL so readers never block it.

Every public function takes the share as a :class:`~datashare.share.target.ShareTarget` (``target``),
opened once by the caller (the pipeline task, the CLI) and holding the schema. A SQLAlchemy URL string is
accepted too and opened with :meth:`ShareTarget.of <datashare.share.target.ShareTarget.of>` (schema
``datashare``): the tests and one-off scripts pass URLs.

Identifiers are checked against strict patterns before any SQL runs, and quoted anyway: PostgreSQL
statements are composed with ``psycopg.sql``, SQLite ones with :mod:`datashare.sqltext`.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
import unicodedata
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datashare.exceptions import PublishBusy, PublishError
from datashare.share.target import SQL_NAME, ShareTarget
from datashare.sqltext import SQL, Composable, Identifier

if TYPE_CHECKING:
    import pyarrow as pa

    from datashare.share.sqlshare_places import ShareState

log = logging.getLogger(__name__)

DATASET_ID = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
MAX_VERSION = 999_999  # keeps "<id>__v<N>__load" within PostgreSQL's 63-byte identifiers
BOOKKEEPING = "_datashare_versions"
BATCH_ROWS = 65_536
_BACKOFF_S = 0.25
_BACKOFF_MAX_S = 10.0


@dataclass(frozen=True)
class PublishResult:
    """What a publish did; names are unqualified (on PostgreSQL they live in the ``schema`` given)."""

    dataset_id: str
    version: int
    table: str
    """Version table, ``<id>__v<N>``."""
    view: str
    """Stable view consumers query, ``<id>``."""
    rows: int
    dropped: tuple[str, ...]
    """Version tables dropped by retention in this publish."""
    target: str
    """Target URL without its password."""
    databases: tuple[str, ...] = ()
    """PostgreSQL databases the dataset was published into: the share's own, or its readers' (restricted)."""


@dataclass(frozen=True)
class _Column:
    name: str
    arrow_type: pa.DataType
    pg_type: str
    sqlite_type: str
    nullable: bool
    description: str


@dataclass(frozen=True)
class _Names:
    dataset_id: str
    version: int
    schema: str

    @property
    def table(self) -> str:
        return f"{self.dataset_id}__v{self.version}"

    @property
    def load(self) -> str:
        return f"{self.table}__load"


def _check_name(kind: str, value: object, pattern: re.Pattern[str]) -> str:
    """Refuse an identifier that does not match ``pattern``: nothing hostile ever reaches SQL."""
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise PublishError(f"invalid {kind} {value!r}: it must match {pattern.pattern}")
    return value


def _map_field(field: pa.Field) -> _Column:
    """Map an Arrow field to the Arrow type loaded and the SQL types of both backends."""
    import pyarrow as pa

    name = _check_name("column name", field.name, SQL_NAME)
    t = field.type
    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        mapped = (pa.string(), "text", "TEXT")
    elif pa.types.is_int64(t) or pa.types.is_uint32(t):
        mapped = (pa.int64(), "bigint", "INTEGER")
    elif pa.types.is_int32(t) or pa.types.is_uint16(t):
        mapped = (pa.int32(), "integer", "INTEGER")
    elif pa.types.is_int16(t) or pa.types.is_int8(t) or pa.types.is_uint8(t):
        mapped = (pa.int16(), "smallint", "INTEGER")
    elif pa.types.is_float64(t):
        mapped = (pa.float64(), "double precision", "REAL")
    elif pa.types.is_float32(t):
        mapped = (pa.float32(), "real", "REAL")
    elif pa.types.is_boolean(t):
        mapped = (pa.bool_(), "boolean", "BOOLEAN")
    elif pa.types.is_date32(t):
        mapped = (pa.date32(), "date", "DATE")
    elif pa.types.is_decimal128(t):  # exact: numeric in PostgreSQL, text in SQLite (its REAL would round)
        mapped = (t, f"numeric({t.precision}, {t.scale})", "TEXT")
    elif pa.types.is_timestamp(t) and t.tz is None:
        mapped = (pa.timestamp("us"), "timestamp", "TIMESTAMP")
    elif pa.types.is_timestamp(t):
        mapped = (pa.timestamp("us", tz="UTC"), "timestamptz", "TIMESTAMP")
    else:
        raise PublishError(
            f"column {name!r} has Arrow type {field.type} that the SQL share cannot store "
            "(supported: strings, integers, floats, decimals, bool, date32, timestamps)"
        )
    raw = (field.metadata or {}).get(b"description", b"")
    description = unicodedata.normalize("NFC", raw.decode("utf-8", errors="replace"))
    return _Column(name, mapped[0], mapped[1], mapped[2], field.nullable, description)


def _read_columns(paths: Sequence[Path]) -> list[_Column]:
    """Check that every file has the same schema and map it, reading only the Parquet footers."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not paths:
        raise PublishError("no Parquet files given: a release has at least one")
    first: pa.Schema | None = None
    for path in paths:
        try:
            schema = pq.read_schema(path)
        except (OSError, pa.ArrowException) as exc:
            raise PublishError(f"cannot read Parquet file {path}: {exc}") from exc
        if first is None:
            first = schema
        elif not schema.remove_metadata().equals(first.remove_metadata()):
            raise PublishError(f"Parquet file {path} has a schema different from {paths[0]}: {schema}")
    assert first is not None
    if not len(first):
        raise PublishError(f"Parquet file {paths[0]} has no columns")
    duplicates = sorted({n for n in first.names if first.names.count(n) > 1})
    if duplicates:
        raise PublishError(f"Parquet file {paths[0]} repeats columns {duplicates}")
    try:
        return [_map_field(field) for field in first]
    except PublishError as exc:
        raise PublishError(f"Parquet file {paths[0]}: {exc}") from None


def _arrow_schema(columns: Sequence[_Column]) -> pa.Schema:
    import pyarrow as pa

    return pa.schema([pa.field(c.name, c.arrow_type, nullable=c.nullable) for c in columns])


class _Batches:
    """Stream the release's record batches in the load schema, counting rows as they pass."""

    def __init__(self, paths: Sequence[Path], schema: pa.Schema) -> None:
        self.paths = paths
        self.schema = schema
        self.rows = 0
        self.error: PublishError | None = None  # kept: ADBC reports a failing stream as a bare IO error

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        import pyarrow as pa

        from datashare.parquet import iter_batches

        for path in self.paths:
            before = self.rows
            try:
                for batch in iter_batches(path, BATCH_ROWS):
                    self.rows += batch.num_rows
                    yield batch.cast(self.schema)
            except (OSError, pa.ArrowException) as exc:
                self.error = PublishError(f"cannot load Parquet file {path}: {exc}")
                raise self.error from exc
            log.info("Loaded %s rows from %s", self.rows - before, path)


def _sqlite_create_table(table: Composable, columns: Sequence[_Column]) -> str:
    """``CREATE TABLE`` of the release's columns in SQLite's types."""
    cols = SQL(", ").join(
        SQL("{} {}{}").format(Identifier(c.name), SQL(c.sqlite_type), SQL("" if c.nullable else " NOT NULL"))
        for c in columns
    )
    return SQL("CREATE TABLE {} ({})").format(table, cols).as_string()


def _backoff(attempt: int) -> float:
    return min(_BACKOFF_S * 2 ** (attempt - 1), _BACKOFF_MAX_S)


def publish_release(
    *,
    dataset_id: str,
    version: int,
    parquet_paths: Sequence[Path],
    target: ShareTarget | str,
    retention: int = 3,
    comment: str = "",
    lock_timeout_ms: int = 5000,
    max_attempts: int = 5,
    withdrawn: Collection[int] = (),
    readers: Collection[str] | None = None,
) -> PublishResult:
    """Load release ``version`` into ``<id>__v<N>`` and repoint view ``<id>`` to it atomically.

    Publishing a version again rebuilds the same final state (a repair, never duplicate rows);
    publishing a version older than the current one is refused, so a late re-run cannot roll a view back.
    Versions listed in ``withdrawn`` do not count as current: their tables leave the share in the same
    transaction that repoints the view, which is how a withdrawal moves the view back to an older release.

    Args:
        dataset_id: dataset id, also the view name.
        version: release number N (1 to 999999).
        parquet_paths: the release's Parquet files, all with one Arrow schema.
        target: the share (PostgreSQL or SQLite) and its schema, opened once by the caller; a URL string
            is opened with :meth:`ShareTarget.of <datashare.share.target.ShareTarget.of>` (schema ``datashare``).
        retention: version tables kept, the new one included.
        comment: description of the dataset, set on the view (PostgreSQL).
        lock_timeout_ms: longest wait for a lock held by readers, per attempt.
        max_attempts: attempts at the swap before raising :class:`PublishBusy`.
        withdrawn: withdrawn versions of the dataset, removed from the share; ``version`` must not be one.
        readers: PostgreSQL only. None for an open or shared dataset: it lives in the share's database.
            For a restricted dataset, the codes of the recipients that may read it: it is published into
            each one's database (made if needed) and taken out of every other database of the share
            first. An empty collection is refused: a dataset nobody may read is taken out with
            :func:`unpublish`. SQLite ignores it (no roles, for local use).
    """
    _check_name("dataset_id", dataset_id, DATASET_ID)
    target = ShareTarget.of(target)
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= MAX_VERSION:
        raise PublishError(f"invalid version {version!r} of {dataset_id}: expected 1 to {MAX_VERSION}")
    withdrawn = tuple(sorted({int(v) for v in withdrawn}))
    if version in withdrawn:
        raise PublishError(f"{dataset_id} v{version} is withdrawn: it is never published to the SQL share")
    for label, value in (
        ("retention", retention),
        ("max_attempts", max_attempts),
        ("lock_timeout_ms", lock_timeout_ms),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise PublishError(f"invalid {label} {value!r}: expected a positive integer")
    columns = _read_columns([Path(p) for p in parquet_paths])
    names = _Names(dataset_id, version, target.schema)
    log.info("Publishing %s v%s (%s files) to %s", dataset_id, version, len(parquet_paths), target.redacted)
    args: dict[str, Any] = {
        "names": names,
        "columns": columns,
        "paths": [Path(p) for p in parquet_paths],
        "retention": retention,
        "lock_timeout_ms": lock_timeout_ms,
        "max_attempts": max_attempts,
        "withdrawn": withdrawn,
    }
    databases: tuple[str, ...] = ()
    if target.backend == "postgresql":
        from datashare.share.sqlshare_pg import publish_postgres
        from datashare.share.sqlshare_places import publish

        if readers is not None and not readers:
            raise PublishError(
                f"{dataset_id} is restricted to no active recipient: nobody may read it, so it is not "
                "published (take it out of the share with unpublish)"
            )
        rows, dropped, databases = publish(
            target,
            dataset_id=dataset_id,
            codes=readers,
            lock_timeout_ms=lock_timeout_ms,
            publish_one=lambda place, tag: publish_postgres(place, comment=comment, audience=tag, **args),
        )
    else:
        rows, dropped = _publish_sqlite(target, **args)
    log.info(
        "Published %s v%s: %s rows; view %s repointed in %s; dropped %s",
        dataset_id, version, rows, dataset_id, databases or "the share", dropped,
    )  # fmt: skip
    return PublishResult(dataset_id, version, names.table, dataset_id, rows, dropped, target.redacted, databases)


def unpublish(*, dataset_id: str, target: ShareTarget | str, lock_timeout_ms: int = 5000) -> tuple[str, ...]:
    """Take a dataset out of the share: its view, version tables and bookkeeping rows.

    Used when every release of the dataset is withdrawn, or nobody may read it any more: nothing is left
    to serve. On PostgreSQL it leaves every database of the share (one transaction per database).
    Returns the version tables dropped; a share that never held the dataset is left as it is.
    """
    _check_name("dataset_id", dataset_id, DATASET_ID)
    target = ShareTarget.of(target)
    if target.backend == "postgresql":
        from datashare.share.sqlshare_places import unpublish_everywhere

        dropped = unpublish_everywhere(target, dataset_id=dataset_id, lock_timeout_ms=lock_timeout_ms)
    else:
        dropped = _unpublish_sqlite(target, dataset_id, lock_timeout_ms)
    log.info("Took %s out of the SQL share %s; dropped %s", dataset_id, target.redacted, dropped)
    return dropped


def list_versions(*, dataset_id: str, target: ShareTarget | str) -> list[int]:
    """Versions of a dataset still in the share (in any of its databases), oldest first; empty if never published."""
    return share_state(dataset_id=dataset_id, target=target).versions


def share_state(*, dataset_id: str, target: ShareTarget | str, readers: Collection[str] | None = None) -> ShareState:
    """What the share holds of a dataset, and whether it is where ``readers`` say (see :func:`publish_release`).

    ``in_place`` is False when a database due lacks the newest version or a database not due holds
    anything of the dataset (a reclassification, a recipient added or removed): a publish then moves it,
    even if the share already serves the newest release. SQLite has one place: always in place.
    """
    from datashare.share.sqlshare_places import ShareState, state

    _check_name("dataset_id", dataset_id, DATASET_ID)
    target = ShareTarget.of(target)
    if target.backend == "postgresql":
        return state(target, dataset_id, readers)
    url = target.url
    import sqlite3

    query = SQL("SELECT version FROM {} WHERE dataset_id = ? ORDER BY version").format(Identifier(BOOKKEEPING))
    if not url.database or not Path(url.database).exists():
        return ShareState(versions=[], in_place=True, databases={})
    try:
        with _sqlite_readonly(Path(url.database)) as conn:
            found = conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (BOOKKEEPING,)).fetchone()
            versions = [] if found is None else [r[0] for r in conn.execute(query.as_string(), (dataset_id,))]
    except sqlite3.Error as exc:
        raise PublishError(f"cannot read versions of {dataset_id} from {target.redacted}: {exc}") from exc
    return ShareState(versions=versions, in_place=True, databases={url.database: versions} if versions else {})


def current_version(*, dataset_id: str, target: ShareTarget | str) -> int | None:
    """The version the view shows (the newest one: older publishes are refused), or None."""
    versions = list_versions(dataset_id=dataset_id, target=target)
    return versions[-1] if versions else None


def _refuse_older(names: _Names, current: int | None) -> None:
    if current is not None and names.version < current:
        raise PublishError(f"cannot publish {names.dataset_id} v{names.version}: the view already shows v{current}")


# --- SQLite ----------------------------------------------------------------------------------------


def _sqlite_readonly(path: Path) -> Any:
    import sqlite3

    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)


def _publish_sqlite(
    target: ShareTarget,
    *,
    names: _Names,
    columns: list[_Column],
    paths: list[Path],
    retention: int,
    lock_timeout_ms: int,
    max_attempts: int,
    withdrawn: tuple[int, ...],
) -> tuple[int, tuple[str, ...]]:
    import sqlite3

    database = target.url.database or ":memory:"
    if database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    where = f"{names.dataset_id} at {target.redacted}"
    conn = sqlite3.connect(database, timeout=lock_timeout_ms / 1000, isolation_level=None)
    try:
        for attempt in range(1, max_attempts + 1):
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                with _immediate(conn):
                    return _sqlite_body(conn, names, columns, paths, retention, withdrawn)
            except sqlite3.OperationalError as exc:
                if not _sqlite_busy(exc):
                    raise PublishError(f"publishing {names.table} to {where} failed: {exc}") from exc
                if attempt == max_attempts:
                    raise PublishBusy(
                        f"view {names.dataset_id} at {target.redacted} stayed locked through {max_attempts} "
                        f"attempts of {lock_timeout_ms} ms; v{names.version} not published, retry later"
                    ) from exc
                log.warning("SQL share %s is locked (attempt %s of %s)", where, attempt, max_attempts)
                time.sleep(_backoff(attempt))
            except sqlite3.Error as exc:
                raise PublishError(f"publishing {names.table} to {where} failed: {exc}") from exc
    finally:
        conn.close()
    raise AssertionError("unreachable")  # pragma: no cover


@contextlib.contextmanager
def _immediate(conn: Any) -> Iterator[None]:
    """A SQLite write transaction taken at once (``BEGIN IMMEDIATE``): committed at the end, else rolled back."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _sqlite_busy(exc: Exception) -> bool:
    """Whether SQLite refused because another connection holds the database (worth a retry)."""
    import sqlite3

    return getattr(exc, "sqlite_errorcode", 0) & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def _unpublish_sqlite(target: ShareTarget, dataset_id: str, lock_timeout_ms: int) -> tuple[str, ...]:
    import sqlite3

    database = target.url.database
    if not database or not Path(database).exists():
        return ()
    conn = sqlite3.connect(database, timeout=lock_timeout_ms / 1000, isolation_level=None)
    try:
        with _immediate(conn):
            if conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (BOOKKEEPING,)).fetchone() is None:
                return ()
            bk = Identifier(BOOKKEEPING)
            select = SQL("SELECT version FROM {} WHERE dataset_id = ?").format(bk)
            versions = [v for (v,) in conn.execute(select.as_string(), (dataset_id,))]
            dropped = tuple(_Names(dataset_id, v, "main").table for v in sorted(versions))
            conn.execute(SQL("DROP VIEW IF EXISTS {}").format(Identifier(dataset_id)).as_string())
            for table in dropped:
                conn.execute(SQL("DROP TABLE IF EXISTS {}").format(Identifier(table)).as_string())
            conn.execute(SQL("DELETE FROM {} WHERE dataset_id = ?").format(bk).as_string(), (dataset_id,))
            return dropped
    except sqlite3.OperationalError as exc:
        if _sqlite_busy(exc):
            raise PublishBusy(
                f"SQL share {target.redacted} is locked; {dataset_id} not taken out, retry later"
            ) from exc
        raise PublishError(f"taking {dataset_id} out of {target.redacted} failed: {exc}") from exc
    except sqlite3.Error as exc:
        raise PublishError(f"taking {dataset_id} out of {target.redacted} failed: {exc}") from exc
    finally:
        conn.close()


def _sqlite_body(
    conn: Any, names: _Names, columns: list[_Column], paths: list[Path], retention: int, withdrawn: tuple[int, ...]
) -> tuple[int, tuple[str, ...]]:
    """Everything inside the one ``BEGIN IMMEDIATE`` transaction."""
    bk, view = Identifier(BOOKKEEPING), Identifier(names.dataset_id)
    table, load = Identifier(names.table), Identifier(names.load)

    def run(statement: Composable, params: Sequence[Any] = ()) -> Any:
        return conn.execute(statement.as_string(), params)

    def version_table(v: int) -> Identifier:
        return Identifier(_Names(names.dataset_id, v, names.schema).table)

    run(
        SQL(
            "CREATE TABLE IF NOT EXISTS {} (dataset_id TEXT NOT NULL, version INTEGER NOT NULL, "
            "table_name TEXT NOT NULL, rows INTEGER NOT NULL, published_at TEXT NOT NULL, "
            "PRIMARY KEY (dataset_id, version))"
        ).format(bk)
    )
    present = [v for (v,) in run(SQL("SELECT version FROM {} WHERE dataset_id = ?").format(bk), (names.dataset_id,))]
    _refuse_older(names, max((v for v in present if v not in withdrawn), default=None))
    run(SQL("DROP TABLE IF EXISTS {}").format(load))
    conn.execute(_sqlite_create_table(load, columns))
    insert = SQL("INSERT INTO {} VALUES ({})").format(load, SQL(", ").join(SQL("?") for _ in columns)).as_string()
    batches = _Batches(paths, _arrow_schema(columns))
    for batch in batches:
        values = [_sqlite_values(col, batch.schema.field(i).type) for i, col in enumerate(batch.columns)]
        conn.executemany(insert, zip(*values, strict=True))
    run(SQL("DROP VIEW IF EXISTS {}").format(view))
    run(SQL("DROP TABLE IF EXISTS {}").format(table))
    run(SQL("ALTER TABLE {} RENAME TO {}").format(load, table))
    run(SQL("CREATE VIEW {} AS SELECT * FROM {}").format(view, table))
    run(
        SQL(
            "INSERT INTO {} VALUES (?, ?, ?, ?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) "
            "ON CONFLICT (dataset_id, version) DO UPDATE SET table_name = excluded.table_name, "
            "rows = excluded.rows, published_at = excluded.published_at"
        ).format(bk),
        (names.dataset_id, names.version, names.table, batches.rows),
    )
    delete = SQL("DELETE FROM {} WHERE dataset_id = ? AND version = ?").format(bk).as_string()
    gone = [v for v in present if v in withdrawn]
    for v in gone:
        run(SQL("DROP TABLE IF EXISTS {}").format(version_table(v)))
    conn.executemany(delete, [(names.dataset_id, v) for v in gone])
    old = [
        v
        for (v,) in run(
            SQL("SELECT version FROM {} WHERE dataset_id = ? ORDER BY version DESC LIMIT -1 OFFSET ?").format(bk),
            (names.dataset_id, retention),
        )
    ]
    dropped = tuple(_Names(names.dataset_id, v, names.schema).table for v in sorted(old))
    for name in dropped:
        run(SQL("DROP TABLE IF EXISTS {}").format(Identifier(name)))
    conn.executemany(delete, [(names.dataset_id, v) for v in old])
    return batches.rows, dropped


def _sqlite_values(column: pa.Array, arrow_type: pa.DataType) -> list[Any]:
    """Python values SQLite stores as they are; dates and timestamps become ISO 8601 text."""
    import pyarrow as pa

    values = column.to_pylist()
    if pa.types.is_timestamp(arrow_type):
        return [None if v is None else v.isoformat(sep=" ") for v in values]
    if pa.types.is_date32(arrow_type):
        return [None if v is None else v.isoformat() for v in values]
    if pa.types.is_decimal(arrow_type):
        return [None if v is None else format(v, "f") for v in values]
    return values
