"""Downloads of a whole release as CSV, XLSX or one zip, after the same access check as every file.

``/datasets/<id>/v/<N>/exports/<id>-v<N>.csv`` (and ``.xlsx``, ``.zip``, ``-provenance.txt``): the
file is made from the release's Parquet files on the first request and cached
(:mod:`datashare.releases.exports`); then it is served like a release file, with ``HEAD``, ``Range`` and an
``ETag``, and recorded by :func:`datashare.catalog.downloads.record_download`. A dataset the caller
may not read answers 404 exactly like an unknown one; an XLSX of a release larger than an Excel
sheet answers 409 with the reason in both languages.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response

from datashare.catalog.app import get_caller, get_catalog, get_reader
from datashare.catalog.auth import Caller
from datashare.catalog.downloads import send
from datashare.catalog.params import DatasetIdPath, VersionPath
from datashare.catalog.service import Catalog, CatalogError, NotFound, Reader, ServedFile
from datashare.exceptions import ExportRefused, ReleaseError

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)


class TooLargeForExcel(CatalogError):
    """An XLSX was asked for a release with more rows than an Excel sheet holds."""

    status = 409
    key = "xlsx_too_large"


class ExportUnavailable(CatalogError):
    """The file cannot be made now; the operator has the reason in the log (never the caller)."""

    status = 503
    key = "export_unavailable"

    def __init__(self) -> None:
        super().__init__(
            "Tệp này tạm thời không tạo được; hãy tải các tệp Parquet. / "
            "This file cannot be made at the moment; download the Parquet files instead."
        )


@router.api_route("/datasets/{dataset_id}/v/{version}/exports/{filename}", methods=["GET", "HEAD"])
def download_export(
    request: Request,
    dataset_id: DatasetIdPath,
    version: VersionPath,
    filename: Annotated[str, Path(max_length=300)],
    reader: Annotated[Reader, Depends(get_reader)],
    caller: Annotated[Caller, Depends(get_caller)],
    catalog: Annotated[Catalog, Depends(get_catalog)],
) -> Response:
    """A release as one CSV, XLSX or zip file (or the CSV's provenance note)."""
    from datashare.releases.exports import Exporter, export_names

    release = reader.visible_release(dataset_id, version)
    names = export_names(release.dataset_id, release.version)
    fmt = next((f for f, name in names.items() if name == filename), None)
    if fmt is None:
        raise NotFound()
    try:
        export = Exporter(catalog.store).get(release, fmt)
    except ExportRefused as exc:
        raise TooLargeForExcel(str(exc)) from None
    except ReleaseError as exc:  # a source file that fails its checksum, a store that cannot be written
        log.error("Cannot make %s of %s v%s: %s", filename, release.dataset_id, release.version, exc)
        raise ExportUnavailable() from None
    links = [f'<{reader.file_url(release.dataset_id, release.version, "datapackage.json")}>; rel="describedby"']
    if fmt == "csv":
        links.insert(0, f'<{reader.export_url(release, "provenance")}>; rel="describedby"; type="text/plain"')
    served = ServedFile(
        dataset_id=release.dataset_id,
        version=release.version,
        name=f"exports/{export.filename}",
        key=export.key,
        media_type=export.media_type,
        sha256=export.sha256,
        filename=export.filename,
        headers={"Link": ", ".join(links)},
    )
    return send(catalog, caller, served, request)
