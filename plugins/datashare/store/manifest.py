"""``datapackage.json``: the Frictionless Data Package that describes and seals a release.

Standard fields (name, title, licences, resources with path, bytes, hash and Table Schema) let any
Frictionless tool read a release; the ``datashare`` section adds what auditors need: row counts,
the data interval, the source cursor, the validation summary, the code version and the link to the
previous release. The store fills in ``version`` and ``previous`` at commit.
"""

from __future__ import annotations

import functools
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from datashare.source.typemap import table_schema
from datashare.spec import DatasetSpec
from datashare.store.codec import dumps, sha256_bytes
from datashare.store.releases import DataFile

PARQUET_MEDIATYPE = "application/vnd.apache.parquet"


@functools.cache
def code_version(home: Path) -> str:
    """Package version plus the git commit of the project, when it is a checkout."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        pkg = version("datashare")
    except PackageNotFoundError:
        pkg = "0+unknown"
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=home, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return pkg
    return f"{pkg}+g{sha}"


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
