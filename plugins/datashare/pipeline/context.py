"""The context of one run: its spec, settings, run key, data interval, release store and staging area."""

from __future__ import annotations

import contextlib
import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

from datashare.settings import Settings
from datashare.spec import DatasetSpec, load_spec
from datashare.store import OpensStore, Release, newest_available
from datashare.store.staging import StagedFile, Staging


def run_key_of(run_id: str) -> str:
    """A run id made safe for file and object names."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", run_id).strip("-.")[:120] or "run"


@dataclass
class RunContext(OpensStore):
    """Everything a stage needs to know about the run it belongs to."""

    spec: DatasetSpec
    settings: Settings
    run_key: str
    data_interval: dict[str, str | None] = field(default_factory=lambda: {"start": None, "end": None})
    scratch: Path | None = None
    """This task's own local folder while a stage runs (see :meth:`task_scratch`)."""

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
    def staging(self) -> Staging:
        """What the run's tasks hand each other, in the store's backend."""
        return Staging(self.store.backend, self.spec.id, self.run_key, self.settings.scratch_root)

    @cached_property
    def withdrawn(self) -> dict[int, str]:
        """Withdrawn versions of this dataset and their reasons (read once per context)."""
        return self.store.withdrawn(self.spec.id)

    def base_release(self, dataset_id: str | None = None) -> Release | None:
        """The newest release of this dataset (or of an input) that is not withdrawn: what a run builds on."""
        if dataset_id is None or dataset_id == self.spec.id:
            return newest_available(self.store, self.spec.id, self.withdrawn)
        return newest_available(self.store, dataset_id, self.store.withdrawn(dataset_id))

    @contextlib.contextmanager
    def task_scratch(self) -> Iterator[Path]:
        """Give the stage a scratch folder of its own on this worker, removed when it ends."""
        with self.staging.scratch() as folder:
            self.scratch = folder
            try:
                yield folder
            finally:
                self.scratch = None

    def local(self, staged: StagedFile) -> Path:
        """A local path of a staged or released file (downloaded into the task's scratch on S3)."""
        assert self.scratch is not None, "local() is for stages, inside task_scratch()"
        return self.staging.fetch(staged, self.scratch)


def release_files(release: Release) -> list[StagedFile]:
    """The data files of a release as references into the store."""
    return [
        StagedFile(key=release.key(f["path"]), rows=int(f["rows"]), sha256=str(f["sha256"]), bytes=int(f["bytes"]))
        for f in release.files
    ]


def local_files(ctx: RunContext, release: Release) -> list[Path]:
    """Local paths of a release's data files (in place on a local store, downloaded into scratch on S3)."""
    return [ctx.local(f) for f in release_files(release)]


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
