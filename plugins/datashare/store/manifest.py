"""``datapackage.json``: the Frictionless Data Package that describes and seals a release.

Standard fields (name, title, licences, resources with path, bytes, hash and Table Schema) let any
Frictionless tool read a release; the ``datashare`` section adds what auditors need: row counts,
the data interval, the source cursor, the validation summary, the code version and the link to the
previous release. The store fills in ``version`` and ``previous`` at commit.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from datashare.source.typemap import table_schema
from datashare.spec import DatasetSpec
from datashare.store.codec import dumps, sha256_bytes
from datashare.store.releases import DataFile

PARQUET_MEDIATYPE = "application/vnd.apache.parquet"


REVISION_ENV = "DATASHARE_CODE_REVISION"
"""The repository's revision, fixed when the image is built (Dockerfile: ``ARG REVISION``)."""


@functools.cache
def code_version(home: Path) -> str:
    """Package version plus the revision of the code that made a release.

    The image records the revision at build time (``docker compose build`` passes ``REVISION``, see
    docs/runbook.md) in ``DATASHARE_CODE_REVISION``: the image has no git and no repository. Only a
    developer's checkout, which has both, asks git; anything else records the package version alone.
    """
    from importlib.metadata import PackageNotFoundError, version

    try:
        pkg = version("datashare")
    except PackageNotFoundError:
        pkg = "0+unknown"
    revision = os.environ.get(REVISION_ENV, "").strip()
    if not revision and (home / ".git").exists() and shutil.which("git"):
        try:
            revision = subprocess.run(
                ["git", "rev-parse", "--short=12", "HEAD"],
                cwd=home,
                capture_output=True,
                text=True,
                timeout=5,
                check=True,
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            revision = ""
    return f"{pkg}+g{revision}" if revision else pkg


def content_sha256(spec: DatasetSpec, files: Sequence[DataFile]) -> str:
    """Identity of a release's content: its schema and its files' digests, in order."""
    return sha256_bytes(dumps({"schema": table_schema(spec), "files": [f.sha256 for f in files]}))


def build_manifest(
    spec: DatasetSpec,
    files: Sequence[DataFile],
    *,
    run_key: str,
    created: str,
    data_interval: dict[str, str | None],
    source_cursor: str | None,
    validation: dict[str, Any],
    stats: dict[str, Any],
    code: str,
) -> dict[str, Any]:
    """The data package of a release, without ``version`` and ``previous`` (set by the store)."""
    schema = table_schema(spec)
    resources = [
        {
            "name": f"{spec.id}-{Path(f.name).stem}".replace("_", "-"),
            "path": f"data/{f.name}",
            "profile": "tabular-data-resource",
            "format": "parquet",
            "mediatype": PARQUET_MEDIATYPE,
            "bytes": f.bytes,
            "hash": f"sha256:{f.sha256}",
            "schema": schema,
        }
        for f in files
    ]
    return {
        "profile": "tabular-data-package",
        "name": spec.id.replace("_", "-"),
        "id": f"datashare://{spec.id}",
        "title": spec.title.vi,
        "description": spec.description.vi,
        "keywords": [spec.sector, spec.classification.sharing.value, *spec.tags],
        "licenses": [{"name": spec.licence, "title": spec.licence}],
        "created": created,
        "contributors": [{"title": spec.source.unit, "role": "publisher"}],
        "resources": resources,
        "datashare": {
            "dataset_id": spec.id,
            "title": spec.title.model_dump(),
            "description": spec.description.model_dump(),
            "sector": spec.sector,
            "owner_unit": spec.source.unit,
            "classification": spec.classification.model_dump(mode="json"),
            "rows": sum(f.rows for f in files),
            "files": [{"path": f"data/{f.name}", "bytes": f.bytes, "sha256": f.sha256, "rows": f.rows} for f in files],
            "key": list(spec.key),
            "mode": spec.mode.kind,
            "data_interval": data_interval,
            "source_cursor": source_cursor,
            "run": run_key,
            "validation": validation,
            "stats": stats,
            "code_version": code,
        },
    }
