"""The first rows of an open dataset's latest release, shown as a small table on its public page.

Only open datasets get a preview: the dataset page of anything else is seen by people granted it,
but a preview is a copy of data on a page, and open data is the only kind meant for anyone. Rows
come from the release's first Parquet file(s), :data:`PREVIEW_ROWS` of them, read in place from a
local store (only the first row group is decoded) or from a copy when the store is remote (files
over :data:`MAX_COPY_BYTES` are not copied: no preview then). Releases are immutable, so a preview
is computed once per release and process. Values are text here; the template escapes them.

Column headers are the column descriptions in the page's language when they are short enough to
head a column (:data:`MAX_HEADER_CHARS`), with the column name beneath; the name alone otherwise.
"""

from __future__ import annotations

import datetime as dt
import logging
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datashare.catalog.models import ColumnInfo
from datashare.exceptions import ReleaseError
from datashare.store import Release, ReleaseStore

log = logging.getLogger(__name__)

PREVIEW_ROWS = 20
MAX_HEADER_CHARS = 48
MAX_CELL_CHARS = 200
MAX_COPY_BYTES = 256 * 1024 * 1024
_CACHE_MAX = 256
_cache: dict[tuple[str, str, int], Preview | None] = {}
_guard = threading.Lock()


@dataclass(frozen=True)
class PreviewColumn:
    """A column heading of the preview."""

    name: str
    header_vi: str
    header_en: str
    described: bool
    """Whether the headers are descriptions (the name is then shown beneath)."""
    numeric: bool


@dataclass(frozen=True)
class Preview:
    """The first rows of one release, as text."""

    version: int
    columns: list[PreviewColumn]
    rows: list[list[str | None]]
    total_rows: int


def _cell(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float):
        return repr(value)
    text = str(value)
    return text if len(text) <= MAX_CELL_CHARS else text[: MAX_CELL_CHARS - 1] + "…"


def _columns(names: list[str], numeric: set[str], described: list[ColumnInfo]) -> list[PreviewColumn]:
    by_name = {c.name: c for c in described}
    out = []
    for name in names:
        info = by_name.get(name)
        vi = info.description.vi if info else ""
        en = info.description.en if info else ""
        short = bool(vi and en) and len(vi) <= MAX_HEADER_CHARS and len(en) <= MAX_HEADER_CHARS
        out.append(
            PreviewColumn(
                name=name,
                header_vi=vi if short else name,
                header_en=en if short else name,
                described=short,
                numeric=name in numeric,
            )
        )
    return out


def _read_rows(store: ReleaseStore, release: Release, folder: Path) -> tuple[list[str], set[str], list[list[Any]]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    names: list[str] = []
    numeric: set[str] = set()
    rows: list[list[Any]] = []
    for f in release.files:
        if len(rows) >= PREVIEW_ROWS:
            break
        key = f"{release.prefix}/{f['path']}"
        local = store.backend.local_path(key)
        if local is None:
            if int(f["bytes"]) > MAX_COPY_BYTES:
                log.info("No preview of %s v%s: %s is too large to copy", release.dataset_id, release.version, key)
                break
            local = folder / Path(f["path"]).name
            store.backend.download(key, local)
        parquet = pq.ParquetFile(local)
        try:
            schema = parquet.schema_arrow
            names = schema.names
            numeric = {
                field.name for field in schema if pa.types.is_integer(field.type) or pa.types.is_floating(field.type)
            }
            for batch in parquet.iter_batches(batch_size=PREVIEW_ROWS - len(rows)):
                rows.extend(list(r) for r in zip(*(c.to_pylist() for c in batch.columns), strict=True))
                break
        finally:
            parquet.close()
    return names, numeric, rows


def preview_of(store: ReleaseStore, release_uri: str, release: Release, columns: list[ColumnInfo]) -> Preview | None:
    """The preview of a release (cached per release); None when it cannot be read."""
    cache_key = (release_uri, release.dataset_id, release.version)
    with _guard:
        if cache_key in _cache:
            return _cache[cache_key]
    try:
        with tempfile.TemporaryDirectory(prefix="datashare-preview-") as tmp:
            names, numeric, rows = _read_rows(store, release, Path(tmp))
    except (OSError, ReleaseError, ValueError) as exc:
        log.warning("No preview of %s v%s: %s", release.dataset_id, release.version, exc)
        return None
    preview = (
        Preview(
            version=release.version,
            columns=_columns(names, numeric, columns),
            rows=[[_cell(v) for v in row] for row in rows],
            total_rows=release.rows,
        )
        if names
        else None
    )
    with _guard:
        if len(_cache) >= _CACHE_MAX:
            _cache.pop(next(iter(_cache)))
        _cache[cache_key] = preview
    return preview
