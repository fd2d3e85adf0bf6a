"""The JSON API under ``/api/v1``: the pages' content as typed documents, with the same access rule.

This is the endpoint an integration platform (LGSP/NDXP) connects to. Send
``Authorization: Bearer <token>``; without one only open data is visible, and a dataset the caller
may not read answers 404 exactly like an unknown id.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query

from datashare.catalog.app import get_reader
from datashare.catalog.models import DatasetDetail, DatasetPage, Problem, ReleaseDetail
from datashare.catalog.pages import SECTOR_PATTERN, Sharing
from datashare.catalog.service import MAX_PARAM, Reader

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "Malformed id or parameter."},
    401: {"model": Problem, "description": "A token was sent but is invalid or revoked."},
    404: {"model": Problem, "description": "No such dataset, release or file, or not readable by the caller."},
    422: {"model": Problem, "description": "A parameter has the wrong type or shape."},
}

router = APIRouter(prefix="/api/v1", tags=["catalog"], responses=ERRORS)
ReaderDep = Annotated[Reader, Depends(get_reader)]
DatasetId = Annotated[str, Path(description="Dataset id, e.g. air_quality_hourly.", max_length=MAX_PARAM)]


@router.get("/datasets", response_model=DatasetPage, summary="Datasets the caller may read")
def list_datasets(
    reader: ReaderDep,
    q: Annotated[str, Query(max_length=MAX_PARAM, description="Search in ids, titles, descriptions.")] = "",
    sector: Annotated[str, Query(pattern=SECTOR_PATTERN, description="Only this sector.")] = "",
    classification: Annotated[Sharing, Query(description="Only this sharing class.")] = "",
    page: Annotated[int, Query(ge=1, le=100_000, description="Page number, from 1.")] = 1,
) -> DatasetPage:
    """A page of datasets with their latest release, freshness and quality verdict."""
    return reader.datasets(q=q or None, sector=sector or None, sharing=classification or None, page=page)


@router.get("/datasets/{dataset_id}", response_model=DatasetDetail, summary="One dataset")
def get_dataset(dataset_id: DatasetId, reader: ReaderDep) -> DatasetDetail:
    """Description, schema with personal-data handling, releases with checksums, SQL view."""
    return reader.dataset(dataset_id)


@router.get("/datasets/{dataset_id}/v/{version}", response_model=ReleaseDetail, summary="One release")
def get_release(
    dataset_id: DatasetId,
    version: Annotated[int, Path(ge=1, description="Release number.")],
    reader: ReaderDep,
) -> ReleaseDetail:
    """Files and checksums, manifest and report links, validation summary of one release."""
    return reader.release(dataset_id, version)
