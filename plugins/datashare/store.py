"""The release store: immutable, numbered releases made visible by a put-if-absent commit record.

Layout (DESIGN §5)::

    <root>/<id>/_log/<N>.json            commit record; its existence is the release
    <root>/<id>/v<N>/_claim.json         which run is writing version N (never read by consumers)
    <root>/<id>/v<N>/data/part-*.parquet
    <root>/<id>/v<N>/datapackage.json
    <root>/<id>/v<N>/validation/         result.json and report.html
    <root>/<id>/_validation/<run>/       every validation run, passed or failed, for auditors

Commit protocol: (1) if the content equals the latest release, stop: no new version; (2) claim
version N = latest + 1 with a put-if-absent claim (a retry of the same run may take back its own
claim; anyone else waits for N to be committed, then re-checks; a claim older than the claim timeout
belongs to a dead run and is skipped, leaving an invisible gap in the version numbers);
(3) write files and the manifest; (4) put-if-absent ``_log/<N>.json``. Until step 4 succeeds,
readers see nothing of version N.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from datashare.backends import Backend, LocalBackend, sha256_file
from datashare.exceptions import ReleaseError, VersionConflict

log = logging.getLogger(__name__)

MAX_CLAIM_ATTEMPTS = 20
DEFAULT_CLAIM_TIMEOUT_S = 600.0
"""A claim older than this with no commit record belongs to a run that died."""
CLAIM_POLL_S = 0.2


def dumps(obj: Any) -> bytes:
    """Canonical JSON bytes: sorted keys, UTF-8, trailing newline; what we hash is what we store."""
    return (json.dumps(obj, sort_keys=True, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of bytes."""
    import hashlib

    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class DataFile:
    """A data file of a release: where it is staged, its name in the release and its digest."""

    local: Path
    name: str
    rows: int
    sha256: str
    bytes: int

    @classmethod
    def from_path(cls, local: Path, name: str, rows: int) -> DataFile:
        """Describe a staged Parquet file."""
        return cls(local=local, name=name, rows=rows, sha256=sha256_file(local), bytes=local.stat().st_size)


@dataclass(frozen=True)
class Release:
    """A committed release, as consumers and auditors see it."""

    dataset_id: str
    version: int
    record: dict[str, Any]
    manifest: dict[str, Any] = field(repr=False)

    @property
    def rows(self) -> int:
        """Rows in the release."""
        return int(self.manifest["datashare"]["rows"])

    @property
    def files(self) -> list[dict[str, Any]]:
        """Data files with path, bytes, sha256 and rows."""
        return list(self.manifest["datashare"]["files"])

    @property
    def prefix(self) -> str:
        """Key prefix of the release folder."""
        return f"{self.dataset_id}/v{self.version}"


@dataclass(frozen=True)
class CommitResult:
    """What a commit did."""

    dataset_id: str
    version: int
    created: bool
    """False when the content equalled the latest release: no new version was made."""
    release: Release | None


@dataclass(frozen=True)
class Finding:
    """Something wrong found by verification, named precisely."""

    dataset_id: str
    version: int | None
    what: str

    def __str__(self) -> str:
        where = f"{self.dataset_id} v{self.version}" if self.version is not None else self.dataset_id
        return f"{where}: {self.what}"


class ReleaseStore:
    """Releases of every dataset in one backend."""

    def __init__(self, backend: Backend, *, claim_timeout_s: float | None = None) -> None:
        self.backend = backend
        self.claim_timeout_s = (
            claim_timeout_s
            if claim_timeout_s is not None
            else float(os.environ.get("DATASHARE_CLAIM_TIMEOUT_S", DEFAULT_CLAIM_TIMEOUT_S))
        )

    @classmethod
    def local(cls, root: Path) -> ReleaseStore:
        """A store in a local directory."""
        return cls(LocalBackend(root))

    @classmethod
    def open(cls, uri: str) -> ReleaseStore:
        """A store from its URI: a local folder, or ``s3://bucket/prefix`` (endpoint from the environment)."""
        if uri.startswith("s3://"):
            from datashare.s3 import S3Backend

            return cls(S3Backend.from_uri(uri))
        return cls.local(Path(uri))

    # -- reading ---------------------------------------------------------------------------

    def versions(self, dataset_id: str) -> list[int]:
        """Committed versions, ascending (versions skipped after a dead run's claim are not releases)."""
        out = []
        skipped = set()
        for key in self.backend.list(f"{dataset_id}/_log"):
            stem = key.rsplit("/", 1)[-1]
            if stem.endswith(".json") and stem.removesuffix(".json").isdigit():
                out.append(int(stem.removesuffix(".json")))
            elif stem.endswith(".skipped") and stem.removesuffix(".skipped").isdigit():
                skipped.add(int(stem.removesuffix(".skipped")))
        return sorted(v for v in out if v not in skipped)

    def datasets(self) -> list[str]:
        """Dataset ids with at least one committed release."""
        ids = {k.split("/", 1)[0] for k in self.backend.list("") if "/_log/" in k}
        return sorted(i for i in ids if not i.startswith("_"))

    def record(self, dataset_id: str, version: int) -> dict[str, Any]:
        """The commit record of a version."""
        return json.loads(self.backend.get_bytes(f"{dataset_id}/_log/{version}.json"))

    def release(self, dataset_id: str, version: int) -> Release:
        """A committed release; ``ReleaseError`` if it does not exist."""
        if not self.backend.exists(f"{dataset_id}/_log/{version}.json"):
            raise ReleaseError(f"{dataset_id} has no release v{version}")
        record = self.record(dataset_id, version)
        manifest = json.loads(self.backend.get_bytes(f"{dataset_id}/v{version}/datapackage.json"))
        return Release(dataset_id=dataset_id, version=version, record=record, manifest=manifest)

    def latest(self, dataset_id: str) -> Release | None:
        """The newest committed release, or None."""
        versions = self.versions(dataset_id)
        return self.release(dataset_id, versions[-1]) if versions else None

    # -- writing ---------------------------------------------------------------------------

    def save_validation(self, dataset_id: str, run_key: str, folder: Path) -> str:
        """Keep a validation run's files (passed or failed) under ``_validation/<run>/``; returns the prefix."""
        prefix = f"{dataset_id}/_validation/{run_key}"
        for path in sorted(p for p in folder.iterdir() if p.is_file()):
            self.backend.put_file(f"{prefix}/{path.name}", path)
        return prefix

    def save_run(self, dataset_id: str, run_key: str, summary: dict[str, Any]) -> str:
        """Keep the summary of a finished run under ``_runs/<run>.json``; returns the key."""
        key = f"{dataset_id}/_runs/{run_key}.json"
        self.backend.put_bytes(key, dumps(summary))
        return key

    def runs(self, dataset_id: str) -> list[dict[str, Any]]:
        """Summaries of finished runs, oldest first."""
        out = [json.loads(self.backend.get_bytes(k)) for k in self.backend.list(f"{dataset_id}/_runs")]
        return sorted(out, key=lambda r: r.get("finished_at", ""))

    def _wait_for(self, dataset_id: str, version: int) -> bool:
        """Wait while another run holds the claim on ``version``: True once it commits, False if it is abandoned.

        Release N+1 must chain to N, so a writer cannot go past a version being committed; it waits
        until the claim turns into a commit record, or is older than ``claim_timeout_s``.
        """
        log_key = f"{dataset_id}/_log/{version}.json"
        claim_key = f"{dataset_id}/v{version}/_claim.json"
        while True:
            if self.backend.exists(log_key):
                return not json.loads(self.backend.get_bytes(log_key)).get("skipped")
            held = json.loads(self.backend.get_bytes(claim_key))
            age = (
                datetime.now(UTC) - datetime.fromisoformat(held["claimed_at"].replace("Z", "+00:00"))
            ).total_seconds()
            if age > self.claim_timeout_s:
                return self._skip(dataset_id, version, held)
            log.info("%s v%s is being committed by run %s; waiting", dataset_id, version, held.get("run"))
            time.sleep(CLAIM_POLL_S)

    def _skip(self, dataset_id: str, version: int, held: dict[str, Any]) -> bool:
        """Close an abandoned version for good: a tombstone in place of its commit record.

        If the claim holder was only slow, not dead, its own put-if-absent of the commit record now
        fails (``VersionConflict``, retried), so the chain cannot fork. Returns True when the holder
        committed after all, False once the version is skipped.
        """
        tombstone = {
            "dataset_id": dataset_id,
            "version": version,
            "skipped": True,
            "claimed_by": held.get("run"),
            "skipped_at": _now(),
        }
        if not self.backend.put_if_absent(f"{dataset_id}/_log/{version}.json", dumps(tombstone)):
            record = json.loads(self.backend.get_bytes(f"{dataset_id}/_log/{version}.json"))
            if not record.get("skipped"):
                return True
        self.backend.put_bytes(f"{dataset_id}/_log/{version}.skipped", dumps(tombstone))
        log.warning(
            "%s v%s: claim by run %s had no commit within %.0f s; version skipped",
            dataset_id,
            version,
            held.get("run"),
            self.claim_timeout_s,
        )
        return False

    def _claim(self, dataset_id: str, version: int, run_key: str) -> bool:
        key = f"{dataset_id}/v{version}/_claim.json"
        claim = {"run": run_key, "claimed_at": datetime.now(UTC).isoformat().replace("+00:00", "Z")}
        if self.backend.put_if_absent(key, dumps(claim)):
            return True
        held = json.loads(self.backend.get_bytes(key))
        if held.get("run") == run_key and not self.backend.exists(f"{dataset_id}/_log/{version}.json"):
            log.info("Taking back the claim on %s v%s left by an earlier try of run %s", dataset_id, version, run_key)
            return True
        return False

    def commit(
        self,
        dataset_id: str,
        *,
        run_key: str,
        files: Sequence[DataFile],
        manifest: dict[str, Any],
        validation_dir: Path | None,
        content_sha256: str,
    ) -> CommitResult:
        """Commit a release whose files are staged locally; see the module docstring for the protocol.

        ``manifest`` is the datapackage without the per-version fields, which this method fills in
        (``version``, ``previous``); ``content_sha256`` identifies the data for the no-change check.
        """
        for _attempt in range(MAX_CLAIM_ATTEMPTS):
            latest = self.latest(dataset_id)
            if latest is not None and latest.record.get("content_sha256") == content_sha256:
                log.info("%s: content equals v%s; no new version", dataset_id, latest.version)
                return CommitResult(dataset_id, latest.version, created=False, release=latest)
            version = (latest.version if latest is not None else 0) + 1
            while not self._claim(dataset_id, version, run_key):
                if self._wait_for(dataset_id, version):
                    break  # committed meanwhile: re-check the content and the chain against it
                version += 1  # the claim was abandoned (its run died): an invisible gap
            else:
                return self._write(
                    dataset_id, version, run_key, files, manifest, validation_dir, content_sha256, latest
                )
        raise VersionConflict(f"{dataset_id}: could not claim a version after {MAX_CLAIM_ATTEMPTS} attempts")

    def _write(
        self,
        dataset_id: str,
        version: int,
        run_key: str,
        files: Sequence[DataFile],
        manifest: dict[str, Any],
        validation_dir: Path | None,
        content_sha256: str,
        previous: Release | None,
    ) -> CommitResult:
        prefix = f"{dataset_id}/v{version}"
        for f in files:
            self.backend.put_file(f"{prefix}/data/{f.name}", f.local)
            if self.backend.size(f"{prefix}/data/{f.name}") != f.bytes:
                raise ReleaseError(f"{self.backend.describe(prefix + '/data/' + f.name)}: size differs after upload")
        if validation_dir is not None:
            for path in sorted(p for p in validation_dir.iterdir() if p.is_file()):
                self.backend.put_file(f"{prefix}/validation/{path.name}", path)
        previous_ref = None
        if previous is not None:
            previous_ref = {
                "version": previous.version,
                "manifest_sha256": previous.record["manifest_sha256"],
                "record_sha256": sha256_bytes(self.backend.get_bytes(f"{dataset_id}/_log/{previous.version}.json")),
            }
        full = json.loads(json.dumps(manifest))
        full["version"] = str(version)
        full["datashare"]["version"] = version
        full["datashare"]["previous"] = previous_ref
        manifest_bytes = dumps(full)
        self.backend.put_bytes(f"{prefix}/datapackage.json", manifest_bytes)
        record = {
            "dataset_id": dataset_id,
            "version": version,
            "run": run_key,
            "committed_at": _now(),
            "manifest_sha256": sha256_bytes(manifest_bytes),
            "content_sha256": content_sha256,
            "previous": previous_ref,
        }
        if not self.backend.put_if_absent(f"{dataset_id}/_log/{version}.json", dumps(record)):
            raise VersionConflict(f"{dataset_id} v{version} was committed by another writer despite the claim")
        log.info("Committed %s v%s (%s rows)", dataset_id, version, full["datashare"]["rows"])
        release = Release(dataset_id=dataset_id, version=version, record=record, manifest=full)
        return CommitResult(dataset_id, version, created=True, release=release)

    # -- auditing --------------------------------------------------------------------------

    def verify(self, dataset_id: str, version: int) -> list[Finding]:
        """Re-hash a release's files against its manifest and the manifest against its commit record."""
        findings: list[Finding] = []
        prefix = f"{dataset_id}/v{version}"
        try:
            record = self.record(dataset_id, version)
            manifest_bytes = self.backend.get_bytes(f"{prefix}/datapackage.json")
        except ReleaseError as exc:
            return [Finding(dataset_id, version, str(exc))]
        if sha256_bytes(manifest_bytes) != record.get("manifest_sha256"):
            findings.append(Finding(dataset_id, version, "datapackage.json was edited after commit (sha256 differs)"))
        manifest = json.loads(manifest_bytes)
        for f in manifest["datashare"]["files"]:
            key = f"{prefix}/{f['path']}"
            if not self.backend.exists(key):
                findings.append(Finding(dataset_id, version, f"{f['path']} is missing"))
                continue
            size = self.backend.size(key)
            if size != f["bytes"]:
                findings.append(
                    Finding(dataset_id, version, f"{f['path']} is {size} bytes, manifest says {f['bytes']}")
                )
            digest = self.backend.sha256(key)
            if digest != f["sha256"]:
                findings.append(Finding(dataset_id, version, f"{f['path']} sha256 {digest} != manifest {f['sha256']}"))
        prev = record.get("previous")
        if prev is not None:
            try:
                prev_bytes = self.backend.get_bytes(f"{dataset_id}/_log/{prev['version']}.json")
            except ReleaseError:
                findings.append(
                    Finding(dataset_id, version, f"previous release v{prev['version']} has no commit record")
                )
            else:
                if sha256_bytes(prev_bytes) != prev.get("record_sha256"):
                    findings.append(Finding(dataset_id, version, f"commit record of v{prev['version']} was rewritten"))
        return findings


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
