"""The context of one run: its spec, settings, run key, data interval, release store and staging folder."""

from __future__ import annotations

import math
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

from datashare.ledger import Ledger
from datashare.settings import Settings
from datashare.spec import DatasetSpec, load_spec
from datashare.store import Release, ReleaseStore

STAGING_MAX_AGE_S = 24 * 3600


def run_key_of(run_id: str) -> str:
    """A run id made safe for file and object names."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", run_id).strip("-.")[:120] or "run"


@dataclass
class RunContext:
    """Everything a stage needs to know about the run it belongs to."""

    spec: DatasetSpec
    settings: Settings
    run_key: str
    data_interval: dict[str, str | None] = field(default_factory=lambda: {"start": None, "end": None})

    @classmethod
    def create(
        cls, dataset_id: str, run_id: str, *, settings: Settings | None = None, data_interval: dict | None = None
    ) -> RunContext:
        """Load the spec and settings for a run."""
        settings = settings or Settings.from_env()
        spec = load_spec(settings.datasets_dir / f"{dataset_id}.yaml")
        return cls(
            spec=spec,
            settings=settings,
            run_key=run_key_of(run_id),
            data_interval=data_interval or {"start": None, "end": None},
        )

    @cached_property
    def store(self) -> ReleaseStore:
        """The release store (opened once per run context)."""
        return ReleaseStore.open(self.settings.release_uri)

    @property
    def ledger(self) -> Ledger:
        """The ledger beside the releases."""
        return Ledger(self.store.backend)

    @cached_property
    def withdrawn(self) -> dict[int, str]:
        """Withdrawn versions of this dataset and their reasons (read from the ledger once per context)."""
        from datashare.withdrawals import withdrawn_versions

        return withdrawn_versions(self.ledger, self.spec.id)

    def base_release(self, dataset_id: str | None = None) -> Release | None:
        """The newest release of this dataset (or of an input) that is not withdrawn: what a run builds on."""
        from datashare.withdrawals import newest_available, withdrawn_versions

        if dataset_id is None or dataset_id == self.spec.id:
            return newest_available(self.store, self.spec.id, self.withdrawn)
        return newest_available(self.store, dataset_id, withdrawn_versions(self.ledger, dataset_id))

    @property
    def staging(self) -> Path:
        """Scratch folder of this run."""
        return self.settings.staging_root / self.spec.id / self.run_key


def sweep_staging(base: Path, *, max_age_s: float = STAGING_MAX_AGE_S) -> int:
    """Remove run folders under the staging root older than a day; returns how many were removed."""
    removed = 0
    if not base.is_dir():
        return 0
    cutoff = time.time() - max_age_s
    for folder in base.glob("*/*"):
        if folder.is_dir() and folder.stat().st_mtime < cutoff:
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    return removed


def local_files(ctx: RunContext, release: Release, folder: str) -> list[Path]:
    """Local paths of a release's data files (downloaded to staging when the store is remote)."""
    paths = []
    for f in release.files:
        key = f"{release.prefix}/{f['path']}"
        local = ctx.store.backend.local_path(key)
        if local is None:
            local = ctx.staging / folder / release.dataset_id / f["path"]
            local.parent.mkdir(parents=True, exist_ok=True)
            ctx.store.backend.download(key, local)
        paths.append(local)
    return paths


VIETNAM = timedelta(hours=7)


def reference_time(ctx: RunContext) -> datetime:
    """The run's "now" in UTC: ``DATASHARE_NOW`` (tests, replays), the end of its data interval, or the clock."""
    end = ctx.data_interval.get("end")
    fixed = os.environ.get("DATASHARE_NOW")
    value = datetime.fromisoformat(fixed) if fixed else datetime.fromisoformat(end) if end else datetime.now(UTC)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def suite_parameters(ctx: RunContext) -> dict[str, Any]:
    """Values of the suites' run-time bounds: ``freshness_min`` and ``min_rows`` / ``max_rows``."""
    spec = ctx.spec
    local_now = (reference_time(ctx) + VIETNAM).replace(tzinfo=None)  # sources keep naive Vietnam time
    params: dict[str, Any] = {"freshness_min": local_now - timedelta(hours=spec.freshness.max_age_hours)}
    latest = ctx.base_release()
    if spec.row_count_change is not None and latest is not None:
        params["min_rows"] = math.floor(latest.rows * (1 - spec.row_count_change.max_drop))
        params["max_rows"] = math.ceil(latest.rows * (1 + spec.row_count_change.max_growth))
    else:
        params.update(min_rows=1, max_rows=None)
    return params
