"""Path parameters every router shares, declared once so the routes and their documentation cannot drift.

A dataset id is checked by the service (:func:`datashare.catalog.service.check_id`: 400 unless it has
the shape of :data:`datashare.spec.DATASET_ID_SHAPE`); the pattern is documented here, not enforced by
FastAPI, so every route refuses a malformed id the same way. Only the length is bounded first (422),
before anything reads the value.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

from datashare.catalog.service import MAX_PARAM
from datashare.spec import DATASET_ID_SHAPE

DatasetIdPath = Annotated[
    str,
    Path(
        description="Dataset id, e.g. air_quality_hourly.",
        max_length=MAX_PARAM,
        json_schema_extra={"pattern": DATASET_ID_SHAPE},  # checked by the service (400), documented here
    ),
]
VersionPath = Annotated[int, Path(ge=1, le=10**9, description="Release number, from 1.")]
