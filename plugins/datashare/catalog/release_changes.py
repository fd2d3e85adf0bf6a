"""What changed between releases, in the catalog: a summary per release, a page, change files, the API.

Every release page sums up its changes against the previous visible release (rows added, removed,
changed by key; columns added, removed, retyped). ``/datasets/{id}/changes`` shows any two versions
side by side with the first changed rows, and offers the change file as Parquet or CSV (a
``_change_type`` column: ``insert``, ``delete``, ``update_preimage``, ``update_postimage``). The JSON
API answers the same under ``/api/v1/datasets/{id}/changes``. Versions are the caller's visible ones
(a withdrawn release is skipped: the comparison runs from the release before it), and the dataset must
be readable by the caller, exactly as for its pages: the one access rule of :class:`Reader`.
"""

from __future__ import annotations

import io
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path as FilePath
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from pydantic import Field

from datashare.catalog.api import ERRORS, RANGES
from datashare.catalog.app import get_caller, get_catalog, get_reader
from datashare.catalog.auth import Caller
from datashare.catalog.downloads import FILE_HEADERS, record_download, send
from datashare.catalog.models import LocalText, Model, Problem
from datashare.catalog.pages import Lang, render
from datashare.catalog.params import DatasetIdPath
from datashare.catalog.service import BadRequest, Catalog, CatalogError, NotFound, Reader, ServedFile
from datashare.exceptions import ChangesError
from datashare.releases.changes import CHANGE_TYPE, ChangeSet, compare

log = logging.getLogger(__name__)

PREVIEW_ROWS = 50
CHANGE_LABELS = {
    "insert": ("Thêm mới", "Added"),
    "delete": ("Đã xóa", "Removed"),
    "update_preimage": ("Trước khi sửa", "Before"),
    "update_postimage": ("Sau khi sửa", "After"),
}
SCHEMA_LABELS = {
    "added": ("Cột mới", "Column added"),
    "removed": ("Cột bị bỏ", "Column removed"),
    "retyped": ("Đổi kiểu dữ liệu", "Type changed"),
}


class SchemaChangeInfo(Model):
    """A column added, removed or retyped between two releases."""

    column: str
    change: Literal["added", "removed", "retyped"]
    before: str | None = Field(default=None, description="Table Schema type in the older release.")
    after: str | None = Field(default=None, description="Table Schema type in the newer release.")


class ChangesInfo(Model):
    """What changed between two visible releases of a dataset, by its key."""

    dataset_id: str
    title: LocalText
    from_version: int = Field(description="The older release.")
    to_version: int = Field(description="The newer release.")
    key: list[str] = Field(description="Columns rows are matched by.")
    rows_before: int
    rows_after: int
    added: int = Field(description="Keys only in the newer release.")
    removed: int = Field(description="Keys only in the older release.")
    changed: int = Field(description="Keys in both whose values differ in a column both releases have.")
    unchanged: int
    schema_changes: list[SchemaChangeInfo]
    compared_columns: list[str] = Field(description="Columns whose values were compared (besides the key).")
    change_rows: int = Field(description="Rows in the change file: one per added or removed key, two per changed key.")
    file_sha256: str = Field(description="SHA-256 of the Parquet change file.")
    file_bytes: int
    parquet_url: str = Field(description="The change file as Parquet, with a _change_type column.")
    csv_url: str = Field(description="The change file as CSV (UTF-8 with BOM, ISO 8601 times).")
    page_url: str = Field(description="The changes page.")


class NoChangeSet(CatalogError):
    """Both releases are visible, but no change set goes from the one to the other: 404, saying why.

    Such a request is well formed (its parameters are what the API documents); the pair it names just
    has nothing to compare, like a release number nobody published. Unlike :class:`NotFound`, the
    message may say why, since the caller can see both releases.
    """

    status = 404
    key = "not_found"


def _versions_for(reader: Reader, dataset_id: str, from_v: int | None, to_v: int | None) -> tuple[int, int]:
    """The pair to compare: ``to`` defaults to the newest visible release, ``from`` to the one before ``to``."""
    spec = reader.spec(dataset_id)
    versions = reader.versions(spec.id)
    if to_v is None:
        if not versions:
            raise NotFound()
        to_v = versions[-1]
    if to_v not in versions or (from_v is not None and from_v not in versions):
        raise NotFound()
    if from_v is None:
        earlier = [v for v in versions if v < to_v]
        if not earlier:
            raise NoChangeSet(f"v{to_v} is the first release of {spec.id}: there is nothing before it to compare with")
        from_v = earlier[-1]
    if from_v >= to_v:
        raise NoChangeSet(f"'from' must be an older release than 'to' (got from={from_v}, to={to_v})")
    return from_v, to_v


def change_set(reader: Reader, dataset_id: str, from_v: int | None = None, to_v: int | None = None) -> ChangeSet:
    """The changes between two releases the caller may see (cached; computed on first request)."""
    from_v, to_v = _versions_for(reader, dataset_id, from_v, to_v)
    spec = reader.spec(dataset_id)
    catalog = reader.catalog
    try:
        return compare(catalog.store, catalog.release(spec.id, from_v), catalog.release(spec.id, to_v), key=spec.key)
    except ChangesError as exc:
        raise BadRequest(f"cannot compare these releases: {exc}") from None


def _query(from_v: int, to_v: int) -> str:
    return f"from={from_v}&to={to_v}"


def info(reader: Reader, changes: ChangeSet) -> ChangesInfo:
    """The API's and pages' view of a change set, with links under the caller's mount point."""
    spec = reader.spec(changes.dataset_id)
    q = _query(changes.from_version, changes.to_version)
    api = f"{reader.base}/api/v1/datasets/{spec.id}/changes"
    return ChangesInfo(
        dataset_id=spec.id,
        title=LocalText(**spec.title.model_dump()),
        from_version=changes.from_version,
        to_version=changes.to_version,
        key=list(changes.key),
        rows_before=changes.rows_before,
        rows_after=changes.rows_after,
        added=changes.added,
        removed=changes.removed,
        changed=changes.changed,
        unchanged=changes.unchanged,
        schema_changes=[SchemaChangeInfo(**vars(c)) for c in changes.schema_changes],
        compared_columns=list(changes.compared_columns),
        change_rows=changes.change_rows,
        file_sha256=changes.file_sha256,
        file_bytes=changes.file_bytes,
        parquet_url=f"{api}/download?{q}&format=parquet",
        csv_url=f"{api}/download?{q}&format=csv",
        page_url=f"{reader.dataset_url(spec.id)}/changes?{q}",
    )


def since_previous(reader: Reader, dataset_id: str, version: int) -> ChangesInfo | str | None:
    """A release's changes against the previous visible one; None for a first release, text when not comparable."""
    versions = reader.versions(reader.spec(dataset_id).id)
    if version not in versions or versions.index(version) == 0:
        return None
    try:
        return info(reader, change_set(reader, dataset_id, None, version))
    except BadRequest as exc:
        log.warning("No change summary for %s v%s: %s", dataset_id, version, exc.detail)
        return exc.detail


# -- API --------------------------------------------------------------------------------------------

api_router = APIRouter(prefix="/api/v1", tags=["changes"], responses=ERRORS)
ReaderDep = Annotated[Reader, Depends(get_reader)]
CallerDep = Annotated[Caller, Depends(get_caller)]
CatalogDep = Annotated[Catalog, Depends(get_catalog)]
FromVersion = Annotated[
    int | None, Query(alias="from", ge=1, le=10**9, description="Older release; default: the one before 'to'.")
]
ToVersion = Annotated[int | None, Query(alias="to", ge=1, le=10**9, description="Newer release; default: the newest.")]


@api_router.get("/datasets/{dataset_id}/changes", response_model=ChangesInfo, summary="Changes between two releases")
def get_changes(
    dataset_id: DatasetIdPath, reader: ReaderDep, from_v: FromVersion = None, to_v: ToVersion = None
) -> ChangesInfo:
    """Rows added, removed and changed by key, and schema changes, from one visible release to a later one."""
    return info(reader, change_set(reader, dataset_id, from_v, to_v))


@api_router.get(
    "/datasets/{dataset_id}/changes/download",
    summary="Change file between two releases",
    response_class=Response,
    responses={
        200: {
            "description": "The changed rows with a _change_type column (insert, delete, update_preimage, "
            "update_postimage), ordered by key.",
            "content": {"application/vnd.apache.parquet": {}, "text/csv": {}},
        },
        206: {"description": "The byte range asked for with Range.", "content": {"application/vnd.apache.parquet": {}}},
        307: {"description": "On an object store: a short-lived presigned URL of the Parquet file."},
        **RANGES,
        503: {"model": Problem, "description": "The download could not be recorded, so nothing was sent; retry."},
    },
)
def download_changes(
    request: Request,
    dataset_id: DatasetIdPath,
    reader: ReaderDep,
    caller: CallerDep,
    catalog: CatalogDep,
    from_v: FromVersion = None,
    to_v: ToVersion = None,
    format: Annotated[Literal["parquet", "csv"], Query(description="File format.")] = "parquet",
) -> Response:
    """The change file as Parquet or CSV (UTF-8 with BOM so that Excel shows Vietnamese; ISO 8601 times)."""
    changes = change_set(reader, dataset_id, from_v, to_v)
    name = f"changes-v{changes.from_version}-v{changes.to_version}"
    if format == "parquet":
        served = ServedFile(
            dataset_id=changes.dataset_id,
            version=changes.to_version,
            name=f"{name}.parquet",
            key=changes.file_key,
            media_type="application/vnd.apache.parquet",
            sha256=changes.file_sha256,
        )
        return send(catalog, caller, served, request)
    record_download(catalog, caller, ServedFile(
        dataset_id=changes.dataset_id,
        version=changes.to_version,
        name=f"{name}.csv",
        key=changes.file_key,
        media_type="text/csv; charset=utf-8",
        sha256=None,
    ))  # fmt: skip
    filename = f"{changes.dataset_id}-v{changes.to_version}-{name}.csv"
    return StreamingResponse(
        _csv(catalog, changes),
        media_type="text/csv; charset=utf-8",
        headers={**FILE_HEADERS, "Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _open_change_file(catalog: Catalog, changes: ChangeSet) -> tuple[Any, FilePath | None]:
    """The change file for reading: in place on a local store, else a temporary copy (the caller deletes it)."""
    import pyarrow.parquet as pq

    backend = catalog.store.backend
    local = backend.local_path(changes.file_key)
    if local is not None:
        return pq.ParquetFile(local, pre_buffer=False), None
    fd, tmp = tempfile.mkstemp(prefix="datashare-changes-", suffix=".parquet")
    os.close(fd)
    backend.download(changes.file_key, FilePath(tmp))
    return pq.ParquetFile(tmp, pre_buffer=False), FilePath(tmp)


def _csv(catalog: Catalog, changes: ChangeSet) -> Iterator[bytes]:
    """The change file as CSV, batch by batch: UTF-8 with BOM, times as ISO 8601, empty for null."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    reader, tmp = _open_change_file(catalog, changes)
    try:
        yield b"\xef\xbb\xbf"
        header = True
        for batch in reader.iter_batches(batch_size=50_000):
            columns = []
            for column, field in zip(batch.columns, batch.schema, strict=True):
                if pa.types.is_timestamp(field.type):
                    column = pc.strftime(column, format="%Y-%m-%dT%H:%M:%S")
                columns.append(column)
            table = pa.Table.from_arrays(columns, names=batch.schema.names)
            out = io.BytesIO()
            pacsv.write_csv(table, out, pacsv.WriteOptions(include_header=header, quoting_style="needed"))
            header = False
            yield out.getvalue()
        if header:  # no rows: the header alone
            out = io.BytesIO()
            pacsv.write_csv(reader.schema_arrow.empty_table(), out)
            yield out.getvalue()
    finally:
        reader.close()
        if tmp is not None:
            tmp.unlink(missing_ok=True)


# -- pages ------------------------------------------------------------------------------------------

router = APIRouter(include_in_schema=False)


def _preview(catalog: Catalog, changes: ChangeSet) -> tuple[list[str], list[dict[str, Any]]]:
    """The first changed rows, each with the names of the cells that differ from the row before it (its preimage)."""
    reader, tmp = _open_change_file(catalog, changes)
    try:
        rows: list[dict[str, Any]] = []
        for batch in reader.iter_batches(batch_size=PREVIEW_ROWS):
            rows = batch.to_pylist()[:PREVIEW_ROWS]
            break
        names = [n for n in reader.schema_arrow.names if n != CHANGE_TYPE]
    finally:
        reader.close()
        if tmp is not None:
            tmp.unlink(missing_ok=True)
    out = []
    before: dict[str, Any] | None = None
    for row in rows:
        kind = row[CHANGE_TYPE]
        differs = (
            {n for n in names if before is not None and row.get(n) != before.get(n)}
            if kind == "update_postimage"
            else set()
        )
        out.append({"kind": kind, "label": CHANGE_LABELS.get(kind, (kind, kind)), "values": row, "differs": differs})
        before = row if kind == "update_preimage" else None
    return names, out


@router.get("/datasets/{dataset_id}/changes", response_class=HTMLResponse)
def changes_page(
    request: Request,
    dataset_id: DatasetIdPath,
    reader: ReaderDep,
    caller: CallerDep,
    lang: Lang,
    from_v: FromVersion = None,
    to_v: ToVersion = None,
) -> HTMLResponse:
    """Two releases compared: counts, schema changes, the first changed rows, the change files."""
    changes = change_set(reader, dataset_id, from_v, to_v)
    names, preview = _preview(reader.catalog, changes)
    versions = reader.versions(changes.dataset_id)
    return render(
        request,
        "changes.html",
        lang,
        caller=caller,
        ds=reader.summary(reader.spec(dataset_id)),
        changes=info(reader, changes),
        versions=versions,
        names=names,
        preview=preview,
        preview_max=PREVIEW_ROWS,
        schema_labels=SCHEMA_LABELS,
    )
