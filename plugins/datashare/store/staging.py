"""Staging in the release store: what one task hands the next, as keys any worker can read.

A task of a run may execute on any worker, and a retry may land on another one, so stages never hand
each other paths on one host. Each task reads its inputs from the store's backend (in place on a local
store, downloaded once into its own scratch folder on S3), writes its outputs into scratch, and puts
them under a prefix unique to its attempt::

    _staging/<dataset>/<run>/<stage>-<attempt>/part-00000.parquet

The reference it returns through XCom (:class:`StagedFile`: key, rows, SHA-256, size) is the only way
a later task finds that output, and Airflow keeps the return value of a successful try only: a failed
try leaves nothing a later task can mistake for its output. Scratch folders are the task's own and are
removed when it ends. A run's staging is removed when the run ends; staging of runs that failed or
were abandoned is swept by age.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datashare.exceptions import ReleaseError
from datashare.store.backends import Backend, sha256_file

log = logging.getLogger(__name__)

PREFIX = "_staging"
MAX_AGE_S = 24 * 3600
"""Staging (and scratch) older than this belongs to a run that is over: swept."""


@dataclass(frozen=True)
class StagedFile:
    """A file one stage handed the next: its key in the store, rows, SHA-256 and size."""

    key: str
    rows: int
    sha256: str
    bytes: int

    def to_json(self) -> dict[str, Any]:
        """The reference as JSON for XCom."""
        return {"key": self.key, "rows": self.rows, "sha256": self.sha256, "bytes": self.bytes}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StagedFile:
        """Read a reference back from XCom."""
        return cls(key=str(data["key"]), rows=int(data["rows"]), sha256=str(data["sha256"]), bytes=int(data["bytes"]))


class Staging:
    """The staging area of one run of one dataset, in the store's backend, and the task's scratch folder."""

    def __init__(self, backend: Backend, dataset_id: str, run_key: str, scratch_root: Path) -> None:
        self.backend = backend
        self.prefix = f"{PREFIX}/{dataset_id}/{run_key}"
        self.scratch_root = scratch_root

    def output_prefix(self, stage: str) -> str:
        """A prefix no other task or try can produce: where one attempt of ``stage`` puts its outputs."""
        return f"{self.prefix}/{stage}-{uuid.uuid4().hex[:12]}"

    def put(self, local: Path, key: str, rows: int) -> StagedFile:
        """Hand a finished local file over under ``key`` (a rename on a local store, an upload on S3)."""
        staged = StagedFile(key=key, rows=rows, sha256=sha256_file(local), bytes=local.stat().st_size)
        self.backend.move_file(key, local)
        return staged

    def fetch(self, staged: StagedFile, scratch: Path) -> Path:
        """A local path of a staged or released object: in place on a local store, else downloaded once."""
        local = self.backend.local_path(staged.key)
        if local is not None:
            if not local.is_file():
                raise ReleaseError(f"staged file {self.backend.describe(staged.key)} is missing (swept, or never put)")
            return local
        target = scratch / "in" / staged.key.replace("/", "__")
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            self.backend.download(staged.key, target)
        if target.stat().st_size != staged.bytes:
            raise ReleaseError(
                f"{self.backend.describe(staged.key)}: {target.stat().st_size} bytes read, {staged.bytes} staged"
            )
        return target

    @contextlib.contextmanager
    def scratch(self) -> Iterator[Path]:
        """A folder of this task's own on this worker, removed when the task ends."""
        self.scratch_root.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix="task-", dir=self.scratch_root))
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def remove(self) -> int:
        """Remove the run's staging (the run is over); returns how many objects went."""
        return self.backend.delete_prefix(self.prefix)


def sweep(
    backend: Backend, scratch_root: Path | None = None, *, dataset_id: str | None = None, max_age_s: float = MAX_AGE_S
) -> int:
    """Remove staging of runs (of one dataset, or all) whose newest object is older than ``max_age_s``,
    and stale scratch folders of this worker."""
    cutoff = time.time() - max_age_s
    removed = 0
    for dataset in [dataset_id] if dataset_id else backend.children(PREFIX):
        for run in backend.children(f"{PREFIX}/{dataset}"):
            prefix = f"{PREFIX}/{dataset}/{run}"
            keys = backend.list(prefix)
            try:
                newest = max((backend.modified(k) for k in keys), default=0.0)
            except ReleaseError:
                continue  # swept by someone else meanwhile
            if newest < cutoff:
                removed += backend.delete_prefix(prefix)
                log.info("Swept staging of %s run %s (older than %.0f h)", dataset, run, max_age_s / 3600)
    if scratch_root is not None and scratch_root.is_dir():
        for folder in scratch_root.glob("task-*"):
            with contextlib.suppress(OSError):
                if folder.stat().st_mtime < cutoff:
                    shutil.rmtree(folder, ignore_errors=True)
                    removed += 1
    return removed
