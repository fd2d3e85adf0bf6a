"""Path parameters every router shares, declared once so the routes and their documentation cannot drift.

A dataset id is checked by the service (:func:`datashare.catalog.service.check_id`: 400 unless it has
the shape of :data:`datashare.spec.DATASET_ID_SHAPE`); its pattern and length are documented here, not
enforced by FastAPI, so every route, page or API, refuses a malformed id the same way.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

from datashare.spec import DATASET_ID_MAX, DATASET_ID_SHAPE

DatasetIdPath = Annotated[
    str,
    Path(
        description="Dataset id, e.g. air_quality_hourly.",
        json_schema_extra={"pattern": DATASET_ID_SHAPE, "maxLength": DATASET_ID_MAX},  # checked by the service
    ),
]
VersionPath = Annotated[int, Path(ge=1, le=10**9, description="Release number, from 1.")]
