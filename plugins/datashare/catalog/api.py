"""The JSON API under ``/api/v1`` and the file downloads: the pages' content as typed documents, one access rule.

This is the endpoint an integration platform (LGSP/NDXP) connects to. Send
``Authorization: Bearer <token>``; without one only open data is visible, and a dataset the caller
may not read answers 404 exactly like an unknown id. Path parameters declare the patterns the
server checks (a dataset id that does not match answers 400), so generated clients and fuzzers send
what the server accepts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response

from datashare.catalog.app import get_caller, get_catalog, get_reader
from datashare.catalog.auth import Caller
from datashare.catalog.downloads import FILE_HEADERS, send
from datashare.catalog.models import DatasetDetail, DatasetPage, Problem, ReleaseDetail
from datashare.catalog.params import DatasetIdPath, VersionPath
from datashare.catalog.service import MAX_PARAM, Catalog, Reader

SECTOR_PATTERN = r"^([a-z][a-z0-9_]{0,47})?$"
PROVINCE_PATTERN = r"^([0-9]{2})?$"
DATA_FILE_PATTERN = r"^[A-Za-z0-9._-]{1,200}$"

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "Malformed id or parameter."},
    401: {"model": Problem, "description": "A token was sent but is invalid or revoked."},
    404: {"model": Problem, "description": "No such dataset, release or file, or not readable by the caller."},
    422: {"model": Problem, "description": "A parameter has the wrong type or shape."},
}


def _page_or_json(description: str) -> dict[str, Any]:
    """An error of a file route: an HTML page for browsers that follow a link, else JSON (the same text)."""
    return {
        "description": description,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/Problem"}},
            "text/html": {"schema": {"type": "string"}},
        },
    }


FILE_ERRORS: dict[int | str, dict[str, Any]] = {
    **{code: _page_or_json(e["description"]) for code, e in ERRORS.items()},
    503: _page_or_json("The download could not be recorded in the access log, so nothing was sent; retry."),
}
router = APIRouter(prefix="/api/v1", tags=["catalog"], responses=ERRORS)
files_router = APIRouter(tags=["downloads"], responses=FILE_ERRORS)
ReaderDep = Annotated[Reader, Depends(get_reader)]
CallerDep = Annotated[Caller, Depends(get_caller)]
CatalogDep = Annotated[Catalog, Depends(get_catalog)]
_E = TypeVar("_E", bound=Callable[..., Response])


@router.get("/datasets", response_model=DatasetPage, summary="Search the datasets the caller may read")
def list_datasets(
    reader: ReaderDep,
    q: Annotated[
        str,
        Query(
            max_length=MAX_PARAM,
            description="Words to find (all must match; accents and case do not matter) in titles, keywords, "
            "descriptions, columns, sector and unit names, and the provinces and years the data covers.",
        ),
    ] = "",
    sector: Annotated[str, Query(pattern=SECTOR_PATTERN, description="Only this sector (code).")] = "",
    classification: Annotated[
        str, Query(pattern="^(open|shared|restricted)?$", description="Only this sharing class.")
    ] = "",
    province: Annotated[
        str, Query(pattern=PROVINCE_PATTERN, description="Only data covering this province (2025 code, 2 digits).")
    ] = "",
    year: Annotated[int | None, Query(ge=1900, le=2200, description="Only data covering this year.")] = None,
    page: Annotated[int, Query(ge=1, le=100_000, description="Page number, from 1.")] = 1,
) -> DatasetPage:
    """A page of datasets, best match first, with their latest release, and facet counts."""
    return reader.datasets(
        q=q or None,
        sector=sector or None,
        sharing=classification or None,
        province=province or None,
        year=year,
        page=page,
    )


@router.get("/datasets/{dataset_id}", response_model=DatasetDetail, summary="One dataset")
def get_dataset(dataset_id: DatasetIdPath, reader: ReaderDep) -> DatasetDetail:
    """Description, names, coverage, terms, citation, schema with personal-data handling, releases, SQL view."""
    return reader.dataset(dataset_id)


@router.get("/datasets/{dataset_id}/v/{version}", response_model=ReleaseDetail, summary="One release")
def get_release(dataset_id: DatasetIdPath, version: VersionPath, reader: ReaderDep) -> ReleaseDetail:
    """Files and checksums, manifest and report links, validation summary, coverage of one release."""
    return reader.release(dataset_id, version)


# -- files ------------------------------------------------------------------------------------------


def _file(request: Request, dataset_id: str, version: int, name: str, reader: Reader, caller: Caller) -> Response:
    """A release file after the access check (HEAD, Range and ETag); a HEAD is neither recorded nor limited."""
    return send(reader.catalog, caller, reader.file(dataset_id, version, name), request)


RANGES: dict[int | str, dict[str, Any]] = {
    304: {"description": "If-None-Match matches the ETag (the file's SHA-256): the copy held is current."},
    416: {"description": "The Range starts past the end of the file (Content-Range: bytes */<size>)."},
}
"""Answers of :func:`datashare.catalog.ranges.file_response` without a body (206 carries the file's type)."""


def _content(media_type: str, description: str, schema: dict[str, Any] | None = None) -> dict[int | str, Any]:
    """A file route's answers: the file, a byte range of it, a redirect, or no body."""
    body = {media_type: {"schema": schema or {"type": "string", "format": "binary"}}}
    return {
        200: {"content": body, "description": description},
        206: {"content": body, "description": "The byte range asked for with Range (Content-Range says which)."},
        307: {"description": "Redirect to a short-lived URL of the object store holding the file (S3 stores)."},
        **RANGES,
    }


def _file_route(path: str, summary: str, responses: dict[int | str, Any], operation: str) -> Callable[[_E], _E]:
    """Registers one file route for HEAD and GET alike (operation ids ``head_<operation>``, ``get_<operation>``)."""

    def register(endpoint: _E) -> _E:
        for method in ("head", "get"):
            files_router.add_api_route(
                f"/datasets/{{dataset_id}}/v/{{version}}/files/{path}",
                endpoint,
                methods=[method.upper()],
                summary=summary,
                response_class=Response,
                responses=responses,
                operation_id=f"{method}_{operation}",
            )
        return endpoint

    return register


@_file_route(
    "datapackage.json",
    "Manifest of a release (Frictionless Data Package)",
    _content("application/json", "datapackage.json", {"type": "object"}),
    "manifest",
)
def manifest(
    request: Request, dataset_id: DatasetIdPath, version: VersionPath, reader: ReaderDep, caller: CallerDep
) -> Response:
    """Files with SHA-256 and size, schema, row count, validation summary, hash of the previous release."""
    return _file(request, dataset_id, version, "datapackage.json", reader, caller)


@_file_route(
    "validation/report.html",
    "Validation report of a release (self-contained HTML)",
    _content("text/html", "The bilingual report for auditors."),
    "report",
)
def report(
    request: Request, dataset_id: DatasetIdPath, version: VersionPath, reader: ReaderDep, caller: CallerDep
) -> Response:
    """Each rule on all rows checked and on the rows published, quarantined rows per rule, masked samples."""
    return _file(request, dataset_id, version, "validation/report.html", reader, caller)


@_file_route(
    "validation/result.json",
    "Great Expectations result of a release",
    _content("application/json", "GX result", {"type": "object"}),
    "validation_result",
)
def result(
    request: Request, dataset_id: DatasetIdPath, version: VersionPath, reader: ReaderDep, caller: CallerDep
) -> Response:
    """GX's own validation result document (samples capped), for tools."""
    return _file(request, dataset_id, version, "validation/result.json", reader, caller)


@_file_route(
    "data/{file}",
    "A data file of a release (Parquet)",
    _content("application/vnd.apache.parquet", "The file; Repr-Digest carries its SHA-256."),
    "data_file",
)
def data_file(
    request: Request,
    dataset_id: DatasetIdPath,
    version: VersionPath,
    file: Annotated[
        str,
        Path(
            description="Name of the file under data/, as listed in the release's files, e.g. part-00000.parquet.",
            max_length=MAX_PARAM,
            json_schema_extra={"pattern": DATA_FILE_PATTERN},
        ),
    ],
    reader: ReaderDep,
    caller: CallerDep,
) -> Response:
    """The file, after the access check; every GET is recorded (dataset, version, file, recipient)."""
    return _file(request, dataset_id, version, f"data/{file}", reader, caller)


@files_router.api_route(
    "/datasets/{dataset_id}/v/{version}/files/{name:path}", methods=["GET", "HEAD"], include_in_schema=False
)
def other_file(
    request: Request, dataset_id: DatasetIdPath, version: VersionPath, name: str, reader: ReaderDep, caller: CallerDep
) -> Response:
    """Any other path under files/: answered only for a name in the release's own list (else 404)."""
    return _file(request, dataset_id, version, name, reader, caller)


__all__ = ["FILE_HEADERS", "files_router", "router"]
