"""Each release's rows, sorted by its key with a row number, in one local Parquet file: what queries read.

Why a derived file rather than the release's files as they are: server-driven paging must return
rows in a stable order (by key) page after page. Over the release's own files every page would sort
all rows again, so paging through N rows costs O(N²) and re-reads everything per page. In a file
sorted once by key, with a ``"$row"`` column and small row groups, the page after row r is
``WHERE "$row" > r LIMIT n``: DuckDB skips the row groups before r by their statistics and stops
after n rows, so a page costs the same at row 10 and at row 10 million, in memory and time.

It is also how releases in S3 are read at all: DuckDB's httpfs extension cannot be installed
offline, so the files are downloaded once per release, sorted into the cache file, and deleted.
On either backend each file is checked against its sha256 in the manifest first.

The file is built on the first query of a release, under a file lock so that concurrent requests
and processes build it once; it is written to a temporary name, its row count checked against the
manifest, and renamed into place. Releases are immutable, so a built file never goes stale; its
name carries the manifest's sha256 so a store rebuilt under the same version number cannot be
mistaken for the old one. Least recently used files are removed past a size budget.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from datashare.catalog.odata.model import EntityModel
from datashare.catalog.odata.sql import ROW
from datashare.catalog.service import Reader
from datashare.sqltext import SQL, Composable, Identifier, Literal
from datashare.store import Release

log = logging.getLogger(__name__)

ROW_GROUP_ROWS = 16_384
"""Small enough that a small page (Prefer: odata.maxpagesize) decompresses little it does not return."""


class CacheError(Exception):
    """A release could not be prepared for querying (a server-side fault, logged with the cause)."""


class QueryCache:
    """Sorted copies of releases under ``root``, at most ``max_bytes`` in total."""

    def __init__(self, root: Path, *, max_bytes: int, memory_limit: str, threads: int) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.memory_limit = memory_limit
        self.threads = threads
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / ".spill").mkdir(exist_ok=True)

    def path(self, release: Release) -> Path:
        """Where a release's sorted copy lives."""
        digest = str(release.record.get("manifest_sha256", ""))[:16] or "nodigest"
        return self.root / release.dataset_id / f"v{release.version}-{digest}.parquet"

    def ensure(self, reader: Reader, release: Release, model: EntityModel) -> Path:
        """The sorted copy of ``release``, built first if missing."""
        target = self.path(release)
        if target.exists():
            _touch(target)
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        with _locked(target.with_suffix(".lock")):
            if target.exists():  # another request built it while this one waited
                return target
            started = time.monotonic()
            self._build(reader, release, model, target)
            log.info(
                "OData cache: built %s v%s (%s rows) in %.1f s",
                release.dataset_id,
                release.version,
                release.rows,
                time.monotonic() - started,
            )
        self._evict(keep=target)
        return target

    def _build(self, reader: Reader, release: Release, model: EntityModel, target: Path) -> None:
        import duckdb
        import pyarrow.parquet as pq

        scratch = self.root / f".build-{uuid.uuid4().hex}"
        scratch.mkdir()
        partial = scratch / "sorted.parquet"
        try:
            sources = self._sources(reader, release, scratch)
            columns = SQL(", ").join(Identifier(p.name) for p in model.properties)
            key = SQL(", ").join(Identifier(k) for k in model.key)
            con = duckdb.connect(
                config={
                    "threads": self.threads,
                    "memory_limit": self.memory_limit,
                    "temp_directory": str(self.root / ".spill"),
                    "autoinstall_known_extensions": False,
                    "autoload_known_extensions": False,
                }
            )
            try:
                con.execute("SET enable_progress_bar = false")
                if sources:
                    source = SQL("SELECT {} FROM read_parquet($files)").format(columns)
                    params: dict[str, object] = {"files": [str(s) for s in sources]}
                else:  # a release without data files: an empty table of the right types
                    source = SQL("SELECT {} FROM ({}) LIMIT 0").format(columns, _empty(model))
                    params = {}
                copy = SQL(
                    "COPY (SELECT *, (row_number() OVER (ORDER BY {key}) - 1)::BIGINT AS {row} FROM ({source}) "
                    "ORDER BY {row}) TO {target} (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {rows})"
                ).format(
                    key=key,
                    row=SQL(ROW),
                    source=source,
                    target=Literal(str(partial)),  # COPY TO takes no parameter
                    rows=Literal(ROW_GROUP_ROWS),
                )
                con.execute(copy.as_string(), params)
            except duckdb.Error as exc:
                raise CacheError(f"{release.dataset_id} v{release.version}: cannot sort the release: {exc}") from exc
            finally:
                con.close()
            rows = pq.ParquetFile(partial).metadata.num_rows
            if rows != release.rows:
                where = f"{release.dataset_id} v{release.version}"
                raise CacheError(f"{where}: the files hold {rows} rows, the manifest says {release.rows}")
            os.replace(partial, target)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _sources(self, reader: Reader, release: Release, scratch: Path) -> list[Path]:
        """Local paths of the release's data files (in place, or downloaded), each checked against its sha256.

        Checked on both backends: the copy is built once and then served many times, so a file changed
        in the store after its release is refused here rather than served (``datashare verify`` names it).
        """
        backend = reader.catalog.store.backend
        paths = []
        for index, entry in enumerate(release.files):
            served = reader.file(release.dataset_id, release.version, entry["path"])
            local = backend.local_path(served.key)
            if local is None:
                local = scratch / f"part-{index:05d}.parquet"
                backend.download(served.key, local)
            digest = _sha256(local)
            if digest != entry["sha256"]:
                raise CacheError(
                    f"{release.dataset_id} v{release.version}: {entry['path']} has sha256 {digest}, "
                    f"the manifest says {entry['sha256']}"
                )
            paths.append(local)
        return paths

    def _evict(self, keep: Path) -> None:
        """Remove least recently used copies until the cache fits its budget (never ``keep``)."""
        files = [(p.stat().st_mtime, p.stat().st_size, p) for p in self.root.glob("*/*.parquet")]
        total = sum(size for _, size, _ in files)
        for _, size, path in sorted(files):
            if total <= self.max_bytes:
                return
            if path == keep:
                continue
            path.unlink(missing_ok=True)
            total -= size
            log.info("OData cache: removed %s (least recently used)", path.name)


def _empty(model: EntityModel) -> Composable:
    from datashare.catalog.odata.sql import DUCK_TYPES

    columns = SQL(", ").join(
        SQL("CAST(NULL AS {}) AS {}").format(SQL(DUCK_TYPES[p.type]), Identifier(p.name)) for p in model.properties
    )
    return SQL("SELECT {}").format(columns)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _touch(path: Path) -> None:
    with contextlib.suppress(OSError):  # removed by eviction in between: the next request rebuilds it
        os.utime(path)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
