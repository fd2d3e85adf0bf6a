"""What changed between two releases of a dataset, by its key: rows added, removed, changed, and the schema.

A consumer asks "what is new in v2?"; a row count (3,984 → 3,984) cannot answer when 25 parcels were
re-surveyed. This module compares two releases by the dataset's key and writes one *change file*:
the rows that differ, each with a ``_change_type`` column in the vocabulary of Delta Lake's change
data feed, so the same file serves people (CSV, Parquet) and Delta Sharing clients:

| ``_change_type`` | row |
|---|---|
| ``insert`` | a key only in the newer release (its row there) |
| ``delete`` | a key only in the older release (its row there) |
| ``update_preimage`` | a key in both whose values differ: the older row |
| ``update_postimage`` | the same key: the newer row |

Rows are compared on the columns both releases have (a column added or removed is a schema change,
reported as such, not a change of every row); a column whose type changed is compared after casting
the older value to the newer type (10 and 10.0 are the same; a value the cast cannot carry differs).
The change file has the newer release's columns; older rows are cast into them (null where the
older release had no such column). Rows are ordered by key, preimage before postimage.

**Bounded memory.** Data files that both releases carry with the same SHA-256 hold the same rows and
are not read at all (an incremental release carries most of its predecessor's files); the other
files are compared by DuckDB with a memory limit, spilling to a scratch folder, and the result is
streamed to the change file. The comparison assumes what the pipeline guarantees: a key appears
once in a release. A repeated key is refused with an error that names it.

**One at a time.** A process runs one comparison at a time (each may take up to its memory limit); a
request for a cached comparison never waits.

**Cache.** Releases never change, so a comparison is made once and kept in the release store under
``<id>/_changes/v<A>-v<B>/`` (outside the sealed release folders that ``verify`` checks): the change
file under a name carrying its digest, then ``summary.json`` written put-if-absent. The summary is
the commit: two processes comparing the same pair at once both write the same file, and the first
summary wins; a summary that does not match the releases' manifests is ignored and recomputed.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from datashare import sqltext
from datashare.exceptions import ChangesError, ReleaseError
from datashare.sqltext import SQL, Composable, Identifier
from datashare.store import Release, ReleaseStore, dumps
from datashare.store.backends import sha256_file

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

log = logging.getLogger(__name__)

CHANGE_TYPE = "_change_type"
INSERT, DELETE, PREIMAGE, POSTIMAGE = "insert", "delete", "update_preimage", "update_postimage"
CHANGE_TYPES = (DELETE, PREIMAGE, POSTIMAGE, INSERT)
"""In the order rows of one key appear in the change file."""
CACHE_PREFIX = "_changes"
FORMAT = 1
"""Version of the cached summary's layout; a cache of another format is recomputed."""
MEMORY_LIMIT = os.environ.get("DATASHARE_CHANGES_MEMORY", "1GB")
"""DuckDB's memory limit for one comparison; beyond it the join spills to disk."""
BATCH_ROWS = 100_000
HERE = "__datashare_row_present"
"""Marks the side a row of the outer join came from (a name no spec gives a column)."""

DUCKDB_TYPES = {
    "string": "VARCHAR",
    "integer": "BIGINT",
    "number": "DOUBLE",
    "boolean": "BOOLEAN",
    "date": "DATE",
    "datetime": "TIMESTAMP",
}
"""Table Schema types of our manifests as DuckDB types (for a release without any data file)."""


_one_at_a_time = threading.Lock()
"""Comparisons of one process run one at a time (cached answers never wait)."""


@dataclass(frozen=True)
class SchemaChange:
    """A column added, removed or retyped between two releases (Table Schema type names)."""

    column: str
    change: Literal["added", "removed", "retyped"]
    before: str | None
    after: str | None


@dataclass(frozen=True)
class ChangeSet:
    """The comparison of two releases of one dataset, and where its change file is."""

    dataset_id: str
    from_version: int
    to_version: int
    key: tuple[str, ...]
    rows_before: int
    rows_after: int
    added: int
    removed: int
    changed: int
    schema_changes: tuple[SchemaChange, ...]
    compared_columns: tuple[str, ...]
    """Columns (besides the key) whose values were compared: those both releases have."""
    file_key: str
    """Store key of the change file (Parquet, with ``_change_type``)."""
    file_bytes: int
    file_sha256: str
    files_skipped: int
    """Data files both releases carry with the same SHA-256: not read."""
    computed_at: str
    manifests: dict[str, str] = field(default_factory=dict)
    """``{"from": sha256, "to": sha256}`` of the two manifests, so a cache cannot outlive its releases."""

    @property
    def unchanged(self) -> int:
        """Rows of the newer release whose key and compared values are the same in the older one."""
        return self.rows_after - self.added - self.changed

    @property
    def change_rows(self) -> int:
        """Rows in the change file: one per insert or delete, two per changed key."""
        return self.added + self.removed + 2 * self.changed

    def to_json(self) -> dict[str, Any]:
        """The summary as stored in the cache."""
        out = asdict(self)
        out["format"] = FORMAT
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ChangeSet:
        """A cached summary; ``ValueError`` when its layout is not this module's."""
        if data.get("format") != FORMAT:
            raise ValueError(f"change summary format {data.get('format')!r}, expected {FORMAT}")
        fields = {k: v for k, v in data.items() if k != "format"}
        fields["key"] = tuple(fields["key"])
        fields["compared_columns"] = tuple(fields["compared_columns"])
        fields["schema_changes"] = tuple(SchemaChange(**c) for c in fields["schema_changes"])
        return cls(**fields)


def cache_prefix(dataset_id: str, from_version: int, to_version: int) -> str:
    """Where the comparison of two versions is kept in the store."""
    return f"{dataset_id}/{CACHE_PREFIX}/v{from_version}-v{to_version}"


def table_schema_fields(release: Release) -> list[dict[str, Any]]:
    """The release's published columns (Table Schema fields) from its own manifest."""
    resources = release.manifest.get("resources") or []
    if not resources:
        return []
    return list(resources[0].get("schema", {}).get("fields") or [])


def release_key(release: Release) -> tuple[str, ...]:
    """The key the release was published with (its manifest's, else its Table Schema's primary key)."""
    key = release.manifest.get("datashare", {}).get("key")
    if not key:
        resources = release.manifest.get("resources") or []
        key = resources[0].get("schema", {}).get("primaryKey") if resources else None
    if not key:
        raise ChangesError(f"{release.dataset_id} v{release.version}: the manifest declares no key")
    return tuple(key)


def schema_changes(before: Release, after: Release) -> list[SchemaChange]:
    """Columns added, removed and retyped from ``before`` to ``after``, in the newer release's order."""
    old = {f["name"]: f.get("type") for f in table_schema_fields(before)}
    new = {f["name"]: f.get("type") for f in table_schema_fields(after)}
    out = [
        SchemaChange(name, "added", None, new[name]) if name not in old else SchemaChange(name, "retyped", old[name], t)
        for name, t in new.items()
        if name not in old or old[name] != t
    ]
    out += [SchemaChange(name, "removed", t, None) for name, t in old.items() if name not in new]
    return out


def cached(store: ReleaseStore, before: Release, after: Release) -> ChangeSet | None:
    """The stored comparison of two releases, if there is a valid one."""
    key = f"{cache_prefix(before.dataset_id, before.version, after.version)}/summary.json"
    try:
        if not store.backend.exists(key):
            return None
        found = ChangeSet.from_json(json.loads(store.backend.get_bytes(key)))
    except (ReleaseError, ValueError, TypeError, KeyError) as exc:
        log.warning("Ignoring the unreadable change summary %s: %s", store.backend.describe(key), exc)
        return None
    expected = {"from": before.record["manifest_sha256"], "to": after.record["manifest_sha256"]}
    if found.manifests != expected or not store.backend.exists(found.file_key):
        log.warning("Ignoring the change summary %s: it does not match the releases", store.backend.describe(key))
        return None
    return found


def compare(
    store: ReleaseStore,
    before: Release,
    after: Release,
    *,
    key: Sequence[str] | None = None,
    workdir: Path | None = None,
) -> ChangeSet:
    """The changes from ``before`` to ``after`` (same dataset, older first), computed once and cached.

    Args:
        store: the release store holding both releases (and the cache).
        before: the older release.
        after: the newer release.
        key: the key columns; by default the newer release's own.
        workdir: scratch space (downloads from an object store, DuckDB's spill files); a temporary
            folder by default, removed afterwards.
    """
    if before.dataset_id != after.dataset_id:
        raise ChangesError(f"cannot compare releases of two datasets: {before.dataset_id} and {after.dataset_id}")
    if before.version >= after.version:
        raise ChangesError(
            f"{after.dataset_id}: compare an older release with a newer one (got v{before.version} → v{after.version})"
        )
    found = cached(store, before, after)
    if found is not None:
        return found
    with _one_at_a_time:  # a comparison takes up to MEMORY_LIMIT: a burst of requests queues, not multiplies
        found = cached(store, before, after)  # made by the request we waited for?
        if found is not None:
            return found
        with _scratch(workdir) as scratch:
            return _compute(store, before, after, tuple(key or release_key(after)), scratch)


@contextmanager
def _scratch(workdir: Path | None) -> Iterator[Path]:
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
        yield workdir
        return
    folder = Path(tempfile.mkdtemp(prefix="datashare-changes-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _split(before: Release, after: Release) -> tuple[list[str], list[str], int]:
    """Data file paths to compare in each release, and how many identical files were skipped."""
    carried = Counter(f["sha256"] for f in before.files) & Counter(f["sha256"] for f in after.files)
    skipped = sum(carried.values())

    def rest(release: Release) -> list[str]:
        left = Counter(carried)
        out = []
        for f in release.files:
            if left[f["sha256"]] > 0:
                left[f["sha256"]] -= 1
            else:
                out.append(f["path"])
        return out

    return rest(before), rest(after), skipped


def _local(store: ReleaseStore, release: Release, path: str, scratch: Path) -> Path:
    """A local copy of a release file: in place on a local store, downloaded from an object store."""
    key = f"{release.prefix}/{path}"
    local = store.backend.local_path(key)
    if local is not None and local.is_file():
        return local
    target = scratch / f"v{release.version}" / path
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        store.backend.download(key, target)
    return target


def _relation(
    con: duckdb.DuckDBPyConnection,
    name: str,
    store: ReleaseStore,
    release: Release,
    paths: list[str],
    scratch: Path,
) -> dict[str, str]:
    """Create view ``name`` over the release's files to compare; returns its columns and DuckDB types.

    A view takes no parameters: the file paths go in as quoted literals.
    """
    view = Identifier(name)
    if paths:
        files = SQL(", ").join(sqltext.Literal(str(_local(store, release, p, scratch))) for p in paths)
        statement = SQL("CREATE VIEW {} AS SELECT * FROM read_parquet([{}], union_by_name = true)").format(view, files)
    elif release.files:  # every file carried over: the relation is empty, with the release's columns
        one = sqltext.Literal(str(_local(store, release, release.files[0]["path"], scratch)))
        statement = SQL("CREATE VIEW {} AS SELECT * FROM read_parquet({}) WHERE false").format(view, one)
    else:
        fields = table_schema_fields(release)
        if not fields:
            raise ChangesError(f"{release.dataset_id} v{release.version}: no data file and no schema to compare")
        columns = SQL(", ").join(
            SQL("CAST(NULL AS {}) AS {}").format(
                SQL(DUCKDB_TYPES.get(f.get("type", "string"), "VARCHAR")), Identifier(f["name"])
            )
            for f in fields
        )
        statement = SQL("CREATE VIEW {} AS SELECT {} WHERE false").format(view, columns)
    con.execute(statement.as_string())
    return {row[0]: row[1] for row in con.execute(SQL("DESCRIBE {}").format(view).as_string()).fetchall()}


def _check_unique(con: duckdb.DuckDBPyConnection, view: str, key: tuple[str, ...], release: Release) -> None:
    cols = SQL(", ").join(Identifier(k) for k in key)
    query = SQL("SELECT {}, count(*) AS n FROM {} GROUP BY ALL HAVING n > 1 LIMIT 1").format(cols, Identifier(view))
    repeated = con.execute(query.as_string()).fetchone()
    if repeated is not None:
        shown = ", ".join(f"{k}={v!r}" for k, v in zip(key, repeated[:-1], strict=True))
        raise ChangesError(
            f"{release.dataset_id} v{release.version}: key ({shown}) appears {repeated[-1]} times; "
            "releases are compared by key, which must be unique"
        )


def _connect(scratch: Path) -> duckdb.DuckDBPyConnection:
    import duckdb

    spill = scratch / "duckdb-spill"
    spill.mkdir(parents=True, exist_ok=True)
    return duckdb.connect(
        ":memory:",
        config={
            "memory_limit": MEMORY_LIMIT,
            "temp_directory": str(spill),
            "preserve_insertion_order": False,
            "threads": max(1, min(4, os.cpu_count() or 1)),
        },
    )


def _compute(store: ReleaseStore, before: Release, after: Release, key: tuple[str, ...], scratch: Path) -> ChangeSet:
    dataset_id = after.dataset_id
    rest_a, rest_b, skipped = _split(before, after)
    log.info(
        "%s: comparing v%s and v%s by %s (%s file(s) carried over, not read)",
        dataset_id,
        before.version,
        after.version,
        ", ".join(key),
        skipped,
    )
    con = _connect(scratch)
    try:
        cols_a = _relation(con, "a", store, before, rest_a, scratch)
        cols_b = _relation(con, "b", store, after, rest_b, scratch)
        for release, cols in ((before, cols_a), (after, cols_b)):
            missing = [k for k in key if k not in cols]
            if missing:
                raise ChangesError(
                    f"{dataset_id} v{release.version}: key column(s) {', '.join(missing)} missing from the data"
                )
        _check_unique(con, "a", key, before)
        _check_unique(con, "b", key, after)
        compared = [c for c in cols_b if c in cols_a and c not in key]
        differs = [
            SQL("{} IS DISTINCT FROM {}").format(Identifier("a", c), Identifier("b", c))
            if cols_a[c] == cols_b[c]
            else SQL("TRY_CAST({} AS {}) IS DISTINCT FROM {}").format(
                Identifier("a", c), SQL(cols_b[c]), Identifier("b", c)
            )  # the type as DuckDB itself described it
            for c in compared
        ]
        on = SQL(" AND ").join(SQL("{} = {}").format(Identifier("a", k), Identifier("b", k)) for k in key)
        keys_out = SQL(", ").join(
            SQL("coalesce({}, {}) AS {}").format(Identifier("a", k), Identifier("b", k), Identifier(k)) for k in key
        )
        con.execute(
            SQL(
                """CREATE TEMP TABLE k AS
            SELECT {keys_out},
                   CASE WHEN {a_here} IS NULL THEN 'insert'
                        WHEN {b_here} IS NULL THEN 'delete' ELSE 'update' END AS kind
            FROM (SELECT *, true AS {here} FROM a) AS a
            FULL OUTER JOIN (SELECT *, true AS {here} FROM b) AS b ON {on}
            WHERE {a_here} IS NULL OR {b_here} IS NULL{differs}"""
            )
            .format(
                keys_out=keys_out,
                here=Identifier(HERE),
                a_here=Identifier("a", HERE),
                b_here=Identifier("b", HERE),
                on=on,
                differs=SQL(" OR {}").format(SQL(" OR ").join(differs)) if differs else SQL(""),
            )
            .as_string()
        )
        counts = dict(con.execute("SELECT kind, count(*) FROM k GROUP BY kind").fetchall())
        local = scratch / "changes.parquet"
        _write_changes(con, key, cols_a, cols_b, store, after, rest_b, scratch, local)
    finally:
        con.close()
    digest = sha256_file(local)
    prefix = cache_prefix(dataset_id, before.version, after.version)
    file_key = f"{prefix}/changes-{digest[:16]}.parquet"
    store.backend.put_file(file_key, local)
    result = ChangeSet(
        dataset_id=dataset_id,
        from_version=before.version,
        to_version=after.version,
        key=key,
        rows_before=before.rows,
        rows_after=after.rows,
        added=int(counts.get("insert", 0)),
        removed=int(counts.get("delete", 0)),
        changed=int(counts.get("update", 0)),
        schema_changes=tuple(schema_changes(before, after)),
        compared_columns=tuple(compared),
        file_key=file_key,
        file_bytes=local.stat().st_size,
        file_sha256=digest,
        files_skipped=skipped,
        computed_at=datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        manifests={"from": before.record["manifest_sha256"], "to": after.record["manifest_sha256"]},
    )
    if not store.backend.put_if_absent(f"{prefix}/summary.json", dumps(result.to_json())):
        winner = cached(store, before, after)
        if winner is not None:
            return winner
        store.backend.put_bytes(f"{prefix}/summary.json", dumps(result.to_json()))  # replace an invalid one
    log.info(
        "%s v%s → v%s: %s added, %s removed, %s changed",
        dataset_id,
        before.version,
        after.version,
        result.added,
        result.removed,
        result.changed,
    )
    return result


def _target_schema(
    store: ReleaseStore, after: Release, rest_b: list[str], scratch: Path, produced: pa.Schema
) -> pa.Schema:
    """The change file's schema: the newer release's Parquet schema (field descriptions kept) and ``_change_type``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if after.files:
        path = rest_b[0] if rest_b else after.files[0]["path"]
        base = pq.read_schema(_local(store, after, path, scratch))
        fields = [base.field(name) for name in produced.names if name != CHANGE_TYPE]
        return pa.schema([*fields, pa.field(CHANGE_TYPE, pa.string(), nullable=False)], metadata=base.metadata)
    return produced


def _write_changes(
    con: duckdb.DuckDBPyConnection,
    key: tuple[str, ...],
    cols_a: dict[str, str],
    cols_b: dict[str, str],
    store: ReleaseStore,
    after: Release,
    rest_b: list[str],
    scratch: Path,
    target: Path,
) -> None:
    """Stream the changed rows, ordered by key, into ``target`` (Parquet)."""
    from datashare.parquet import BatchWriter

    def older(c: str) -> Composable:  # types as DuckDB itself described them
        if c not in cols_a:
            return SQL("CAST(NULL AS {}) AS {}").format(SQL(cols_b[c]), Identifier(c))
        if cols_a[c] != cols_b[c]:
            return SQL("TRY_CAST({} AS {}) AS {}").format(Identifier("a", c), SQL(cols_b[c]), Identifier(c))
        return Identifier("a", c)

    def join(side: str) -> Composable:
        return SQL(" AND ").join(SQL("{} = {}").format(Identifier(side, k), Identifier("k", k)) for k in key)

    names = list(cols_b)
    query = SQL("""
        SELECT * EXCLUDE (_rank) FROM (
            SELECT {older},
                   CASE k.kind WHEN 'delete' THEN {delete} ELSE {preimage} END AS {change_type},
                   CASE k.kind WHEN 'delete' THEN 0 ELSE 1 END AS _rank
            FROM a JOIN k ON {join_a} WHERE k.kind IN ('delete', 'update')
            UNION ALL
            SELECT {newer},
                   CASE k.kind WHEN 'insert' THEN {insert} ELSE {postimage} END AS {change_type},
                   CASE k.kind WHEN 'insert' THEN 3 ELSE 2 END AS _rank
            FROM b JOIN k ON {join_b} WHERE k.kind IN ('insert', 'update')
        ) ORDER BY {order}, _rank""").format(
        older=SQL(", ").join(older(c) for c in names),
        newer=SQL(", ").join(Identifier("b", c) for c in names),
        delete=sqltext.Literal(DELETE),
        preimage=sqltext.Literal(PREIMAGE),
        insert=sqltext.Literal(INSERT),
        postimage=sqltext.Literal(POSTIMAGE),
        change_type=Identifier(CHANGE_TYPE),
        join_a=join("a"),
        join_b=join("b"),
        order=SQL(", ").join(Identifier(k) for k in key),
    )
    reader = con.sql(query.as_string()).to_arrow_reader(BATCH_ROWS)
    schema = _target_schema(store, after, rest_b, scratch, reader.schema)
    with BatchWriter(target, schema) as writer:
        for batch in reader:
            writer.write(batch.cast(schema) if batch.schema != schema else batch)
