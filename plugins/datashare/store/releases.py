"""The release store: immutable, numbered releases made visible by a put-if-absent commit record.

Layout (DESIGN §5)::

    <root>/<id>/_log/<N>.json            commit record (its existence is release N), or a tombstone
    <root>/<id>/_claims/<N>.json         which live writer is writing version N (a lease it renews)
    <root>/<id>/_withdrawn/<N>.json      withdrawal marker (the ledger entry follows it)
    <root>/<id>/_head.json               what readers need to know quickly (a hint, checked forward)
    <root>/<id>/v<N>/data/part-*.parquet
    <root>/<id>/v<N>/datapackage.json
    <root>/<id>/v<N>/validation/         result.json and report.html (hashed in the manifest)
    <root>/<id>/_validation/<run>/       every validation run, passed or failed, for auditors

Commit protocol (:meth:`ReleaseStore.commit`), repeated until it ends:

1. read the latest release and *plan* against it (the caller's function: which files, which content);
   if the content equals the latest release, stop: no new version;
2. claim version N = highest record + 1 with a put-if-absent claim. A claim is held by a live process:
   its writer renews it every few seconds. A claim whose process is shown dead (same machine, the pid
   gone) or whose lease ran out is closed with a tombstone in place of its commit record, so that
   writer, if it was only slow, can never commit N (no fork); then go to 1. A live claim is waited for,
   then go to 1 (re-plan against the new release: a writer that lost the race publishes nothing if
   its content now equals the winner's);
3. write files, validation files and the manifest under ``v<N>/`` (only the claim holder writes there);
4. put-if-absent ``_log/<N>.json``: until it exists nothing of N is visible, and once it exists N is
   complete. If a tombstone got there first, go to 1;
5. append the ``release_committed`` ledger entry and update the head. A kill before this leaves a
   release without its entry: the next commit of the dataset (or ``datashare verify --repair``)
   finds it by the ledger tip the record remembers and appends it, marked as a repair.

Every state a kill can leave is legal for every reader: a claim or partial ``v<N>/`` without a
record is invisible; a tombstone is a closed number (versions can have gaps); a record without its
ledger entry is a release, completed later; a stale head is checked forward; a withdrawal marker
without its ledger entry is a withdrawal.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datashare import faults
from datashare.exceptions import ReleaseError, VersionConflict
from datashare.store.backends import Backend, LocalBackend, sha256_file
from datashare.store.codec import dumps, parse_object, sha256_bytes
from datashare.store.ledger import Ledger

if TYPE_CHECKING:
    from datashare.settings import Settings

log = logging.getLogger(__name__)

FORMAT_KEY = "_format.json"
FORMAT = 2
"""Store format: 2 keeps claims in ``_claims/``, withdrawal markers and per-dataset heads."""
MAX_COMMIT_ATTEMPTS = 200
DEFAULT_LEASE_S = 20.0
"""A claim not renewed for this long belongs to a writer that is gone (or frozen: it is fenced off)."""
POLL_S = 0.2
EVIDENCE = ("validation/report.html", "validation/result.json")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse_time(text: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


@dataclass(frozen=True)
class DataFile:
    """A file of a release: its name there, its digest, and where its bytes come from.

    The bytes come from a local file (``local``) or from an object already in the store (``key``:
    staging, or a file an earlier release carries over), which is copied inside the store.
    """

    name: str
    rows: int
    sha256: str
    bytes: int
    local: Path | None = None
    key: str | None = None

    @classmethod
    def from_path(cls, local: Path, name: str, rows: int) -> DataFile:
        """Describe a local Parquet file."""
        return cls(name=name, rows=rows, sha256=sha256_file(local), bytes=local.stat().st_size, local=local)


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
    def evidence(self) -> list[dict[str, Any]]:
        """Validation files (report, result) with path, bytes and sha256; empty for releases made before."""
        return list(self.manifest["datashare"].get("evidence") or [])

    @property
    def prefix(self) -> str:
        """Key prefix of the release folder."""
        return f"{self.dataset_id}/v{self.version}"

    def key(self, path: str) -> str:
        """Store key of a file of the release (``data/part-00000.parquet``, ``validation/report.html``)."""
        return f"{self.prefix}/{path}"


@dataclass(frozen=True)
class CommitPlan:
    """What a writer would commit on top of a given latest release."""

    files: Sequence[DataFile]
    manifest: dict[str, Any]
    """The datapackage without ``version``, ``previous`` and ``evidence`` (the store fills them in)."""
    content_sha256: str
    validation: Sequence[DataFile] = ()
    """Validation files, named as under ``validation/`` (``report.html``, ``result.json``)."""


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


@dataclass
class DatasetState:
    """What the commit log says of a dataset: the highest number taken, and which numbers are tombstones."""

    top: int = 0
    skipped: set[int] = field(default_factory=set)
    ledgered: dict[int, int] = field(default_factory=dict)
    """Versions whose ``release_committed`` ledger entry is known, and that entry's sequence number."""

    @property
    def versions(self) -> list[int]:
        """Committed versions, ascending."""
        return [v for v in range(1, self.top + 1) if v not in self.skipped]

    def to_json(self) -> dict[str, Any]:
        """The head object's body."""
        return {
            "top": self.top,
            "skipped": sorted(self.skipped),
            "ledgered": {str(v): s for v, s in sorted(self.ledgered.items())},
            "updated_at": _now(),
        }


# -- who holds a claim -----------------------------------------------------------------------------


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def _process_start(pid: int) -> str | None:
    """The kernel's start time of a process (field 22 of /proc/<pid>/stat): tells a reused pid apart."""
    stat = _read(f"/proc/{pid}/stat")
    if stat is None:
        return None
    return stat.rsplit(")", 1)[-1].split()[19]


def _machine() -> dict[str, Any]:
    """Where this process runs: enough for another process to tell whether it is still alive."""
    try:
        pidns: int | None = Path("/proc/self/ns/pid").stat().st_ino
    except OSError:
        pidns = None
    return {
        "host": socket.gethostname(),
        "boot_id": _read("/proc/sys/kernel/random/boot_id"),
        "pidns": pidns,
        "pid": os.getpid(),
        "pid_start": _process_start(os.getpid()),
    }


def holder_alive(claim: dict[str, Any]) -> bool | None:
    """True/False when this machine can tell whether the claim's process lives, None when it cannot."""
    here = _machine()
    if not here["boot_id"] or claim.get("boot_id") != here["boot_id"] or claim.get("pidns") != here["pidns"]:
        return None
    pid = claim.get("pid")
    if not isinstance(pid, int):
        return None
    return _process_start(pid) == claim.get("pid_start") is not None


class _Lease:
    """Renews a claim in a thread while its writer works, so other writers know it is alive."""

    def __init__(self, backend: Backend, key: str, claim: dict[str, Any], lease_s: float) -> None:
        self.backend = backend
        self.key = key
        self.claim = claim
        self.every = max(0.05, lease_s / 4)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"lease {key}", daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(self.every):
            self.claim["renewed_at"] = _now()
            try:
                self.backend.put_bytes(self.key, dumps(self.claim))
            except Exception as exc:  # keep trying: the commit record's put-if-absent is the real fence
                log.warning("Could not renew claim %s: %s", self.key, exc)

    def __enter__(self) -> _Lease:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


# -- the store -------------------------------------------------------------------------------------


class ReleaseStore:
    """Releases of every dataset in one backend."""

    def __init__(self, backend: Backend, *, lease_s: float | None = None) -> None:
        self.backend = backend
        self.lease_s = lease_s if lease_s is not None else float(os.environ.get("DATASHARE_LEASE_S", DEFAULT_LEASE_S))
        self._formatted = False
        self._format_written = False

    @classmethod
    def local(cls, root: Path) -> ReleaseStore:
        """A store in a local directory."""
        return cls(LocalBackend(root))

    @classmethod
    def open(cls, uri: str) -> ReleaseStore:
        """A store from its URI: a local folder, or ``s3://bucket/prefix`` (endpoint from the environment)."""
        if uri.startswith("s3://"):
            from datashare.store.s3 import S3Backend

            return cls(S3Backend.from_uri(uri))
        return cls.local(Path(uri))

    @property
    def ledger(self) -> Ledger:
        """The ledger beside the releases."""
        return Ledger(self.backend)

    # -- format ----------------------------------------------------------------------------------

    def is_current_format(self) -> bool:
        """Whether the store keeps withdrawal markers (format 2); older stores kept withdrawals only in the ledger."""
        if not self._formatted:
            self._formatted = self.backend.exists(FORMAT_KEY) or not self.backend.exists("_ledger/000000000001.json")
        return self._formatted

    def ensure_format(self) -> list[str]:
        """Bring an older store to the current format (writers call this); returns what was done."""
        if self._format_written:
            return []
        if self.is_current_format():
            if not self.backend.exists(FORMAT_KEY):
                self.backend.put_if_absent(FORMAT_KEY, dumps({"format": FORMAT, "since": _now()}))
            self._format_written = True
            return []
        done = []
        for entry in self.ledger.entries():
            body = entry.body
            if body.get("event") == "release_withdrawn" and isinstance(body.get("version"), int):
                d, v = str(body.get("dataset_id")), body["version"]
                if self.write_withdrawal_marker(
                    d, v, str(body.get("reason", "")), body.get("manifest_sha256"), entry.seq
                ):
                    done.append(f"{d} v{v}: withdrawal marker written from ledger entry {entry.seq}")
        self.backend.put_if_absent(FORMAT_KEY, dumps({"format": FORMAT, "since": _now(), "migrated": True}))
        self._formatted = self._format_written = True
        return done

    # -- per-dataset state -----------------------------------------------------------------------

    def _log_key(self, dataset_id: str, version: int) -> str:
        return f"{dataset_id}/_log/{version}.json"

    def _head_key(self, dataset_id: str) -> str:
        return f"{dataset_id}/_head.json"

    def _classify(self, dataset_id: str, version: int) -> bool:
        """Whether ``_log/<version>.json`` is a tombstone (unreadable records count as releases: verify names them).

        Without a record, whether a tombstone of store format 1 (``_log/<version>.skipped``) is there.
        """
        key = self._log_key(dataset_id, version)
        try:
            record = parse_object(self.backend.get_bytes(key), "record")
        except ReleaseError:
            if not self.backend.exists(key):
                return self.backend.exists(f"{dataset_id}/_log/{version}.skipped")
            return False
        return bool(record.get("skipped"))

    def rebuild_state(self, dataset_id: str) -> DatasetState:
        """State from a full listing of the commit log: for a missing or unreadable head."""
        state = DatasetState()
        for key in self.backend.list(f"{dataset_id}/_log"):
            stem = key.rsplit("/", 1)[-1]
            if stem.endswith(".json") and stem.removesuffix(".json").isdigit():
                version = int(stem.removesuffix(".json"))
                state.top = max(state.top, version)
                if self._classify(dataset_id, version):
                    state.skipped.add(version)
            elif stem.endswith(".skipped") and stem.removesuffix(".skipped").isdigit():
                state.skipped.add(int(stem.removesuffix(".skipped")))  # tombstones of store format 1
        return state

    def read_head(self, dataset_id: str) -> DatasetState | None:
        """The head as written, or None when it is missing or not of the head's shape (then it is rebuilt)."""
        try:
            body = parse_object(self.backend.get_bytes(self._head_key(dataset_id)), "head")
            top, skipped, ledgered = body["top"], body.get("skipped", []), body.get("ledgered") or {}
            if not _is_count(top) or not isinstance(skipped, list) or not isinstance(ledgered, dict):
                return None
            if not all(_is_count(v) for v in skipped) or not all(_is_count(s) for s in ledgered.values()):
                return None
            return DatasetState(
                top=top, skipped=set(skipped), ledgered={int(v): s for v, s in ledgered.items() if v.isdigit()}
            )
        except (ReleaseError, KeyError, TypeError, ValueError):
            return None

    def state(self, dataset_id: str) -> DatasetState:
        """The dataset's commit log as of now: the head, checked forward (usually one existence check).

        The head is a hint anyone with write access can edit, so what it says that readers act on is
        checked: its top record exists, and each number it calls closed is a tombstone in the log (one
        read per tombstone; they are rare). Otherwise the state is rebuilt from the log.
        """
        state = self.read_head(dataset_id)
        changed = False
        if (
            state is None
            or (state.top and not self.backend.exists(self._log_key(dataset_id, state.top)))
            or any(n > state.top or not self._classify(dataset_id, n) for n in state.skipped)
        ):
            state = self.rebuild_state(dataset_id)
            changed = state.top > 0
        while self.backend.exists(self._log_key(dataset_id, state.top + 1)):
            state.top += 1
            changed = True
            if self._classify(dataset_id, state.top):
                state.skipped.add(state.top)
        if changed:
            self.write_head(dataset_id, state)
        return state

    def write_head(self, dataset_id: str, state: DatasetState) -> None:
        try:
            self.backend.put_bytes(self._head_key(dataset_id), dumps(state.to_json()))
        except Exception as exc:  # a shortcut for readers; the commit log stays the truth
            log.warning("%s: could not update the head: %s", dataset_id, exc)

    # -- reading ---------------------------------------------------------------------------------

    def versions(self, dataset_id: str) -> list[int]:
        """Committed versions, ascending (numbers closed by a tombstone are not releases)."""
        return self.state(dataset_id).versions

    def datasets(self) -> list[str]:
        """Dataset ids with at least one committed release."""
        ids = [c for c in self.backend.children("") if not c.startswith("_") and not c.startswith(".")]
        return [i for i in ids if self.backend.exists(self._log_key(i, 1)) and self.versions(i)]

    def record(self, dataset_id: str, version: int) -> dict[str, Any]:
        """The commit record of a version; ``ReleaseError`` naming it if missing or unreadable."""
        key = self._log_key(dataset_id, version)
        return parse_object(self.backend.get_bytes(key), f"commit record {self.backend.describe(key)}")

    def release(self, dataset_id: str, version: int) -> Release:
        """A committed release; ``ReleaseError`` if it does not exist or cannot be read."""
        key = self._log_key(dataset_id, version)
        if not self.backend.exists(key):
            raise ReleaseError(f"{dataset_id} has no release v{version}")
        record = self.record(dataset_id, version)
        if record.get("skipped"):
            raise ReleaseError(f"{dataset_id} has no release v{version} (the number was closed unused)")
        manifest_key = f"{dataset_id}/v{version}/datapackage.json"
        manifest = parse_object(self.backend.get_bytes(manifest_key), f"manifest {self.backend.describe(manifest_key)}")
        return Release(dataset_id=dataset_id, version=version, record=record, manifest=manifest)

    def latest(self, dataset_id: str) -> Release | None:
        """The newest committed release, or None."""
        versions = self.versions(dataset_id)
        return self.release(dataset_id, versions[-1]) if versions else None

    # -- withdrawals -----------------------------------------------------------------------------

    def withdrawn(self, dataset_id: str) -> dict[int, str]:
        """Withdrawn versions of a dataset and the reason given for each (one listing of its markers)."""
        out: dict[int, str] = {}
        for key in self.backend.list(f"{dataset_id}/_withdrawn"):
            stem = key.rsplit("/", 1)[-1].removesuffix(".json")
            if not stem.isdigit():
                continue
            try:
                out[int(stem)] = str(parse_object(self.backend.get_bytes(key), key).get("reason", ""))
            except ReleaseError:
                out[int(stem)] = "(unreadable withdrawal marker)"  # still withdrawn: never serve it by mistake
        if not self.is_current_format():
            for entry in self.ledger.entries(dataset_id):  # a store written before markers existed
                body = entry.body
                if body.get("event") == "release_withdrawn" and isinstance(body.get("version"), int):
                    out.setdefault(body["version"], str(body.get("reason", "")))
        return out

    def write_withdrawal_marker(
        self, dataset_id: str, version: int, reason: str, manifest_sha256: Any, ledger_seq: int | None = None
    ) -> bool:
        body = {"version": version, "reason": reason, "manifest_sha256": manifest_sha256, "at": _now()}
        if ledger_seq is not None:
            body["ledger_seq"] = ledger_seq
        return self.backend.put_if_absent(f"{dataset_id}/_withdrawn/{version}.json", dumps(body))

    def mark_withdrawn(self, dataset_id: str, version: int, reason: str, manifest_sha256: str) -> bool:
        """Write the withdrawal marker (before the ledger entry); False if the version was already withdrawn."""
        self.ensure_format()
        return self.write_withdrawal_marker(dataset_id, version, reason, manifest_sha256)

    # -- runs and validation ---------------------------------------------------------------------

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
        """Summaries of finished runs, oldest first (unreadable ones are left out)."""
        out = []
        for key in self.backend.list(f"{dataset_id}/_runs"):
            try:
                out.append(parse_object(self.backend.get_bytes(key), key))
            except ReleaseError as exc:
                log.warning("%s", exc)
        return sorted(out, key=lambda r: str(r.get("finished_at", "")))

    # -- committing ------------------------------------------------------------------------------

    def commit(
        self,
        dataset_id: str,
        *,
        run_key: str,
        plan: Callable[[Release | None], CommitPlan] | None = None,
        files: Sequence[DataFile] = (),
        manifest: dict[str, Any] | None = None,
        validation_dir: Path | None = None,
        content_sha256: str | None = None,
    ) -> CommitResult:
        """Commit a release; see the module docstring for the protocol.

        ``plan`` is called with the latest release each time the writer (re)starts, so a writer that
        lost a race plans again against the winner. Without it, the release is the fixed ``files``,
        ``manifest`` and ``content_sha256``, with the validation files of ``validation_dir``.
        """
        if plan is None:
            if manifest is None or content_sha256 is None:
                raise ValueError("commit needs a plan, or files, manifest and content_sha256")
            fixed = CommitPlan(
                files=list(files),
                manifest=manifest,
                content_sha256=content_sha256,
                validation=_validation_files(validation_dir),
            )
            plan = lambda _latest: fixed  # noqa: E731
        self.ensure_format()
        self.repair_ledger(dataset_id)
        attempt = uuid.uuid4().hex[:12]
        for _ in range(MAX_COMMIT_ATTEMPTS):
            state = self.state(dataset_id)
            latest = self.release(dataset_id, state.versions[-1]) if state.versions else None
            planned = plan(latest)
            if latest is not None and latest.record.get("content_sha256") == planned.content_sha256:
                log.info("%s: content equals v%s; no new version", dataset_id, latest.version)
                return CommitResult(dataset_id, latest.version, created=False, release=latest)
            version = state.top + 1
            claim = self._claim(dataset_id, version, run_key, attempt)
            if claim is None:
                self._wait_or_close(dataset_id, version)
                continue
            if self.backend.exists(self._log_key(dataset_id, version)):
                # decided between our state read and our claim, whose claim its writer had already removed:
                # writing now would overwrite a committed release's files
                self.backend.delete(self._claim_key(dataset_id, version))
                continue
            try:
                with _Lease(self.backend, self._claim_key(dataset_id, version), claim, self.lease_s):
                    release = self._write(dataset_id, version, run_key, attempt, planned, latest)
            except VersionConflict as exc:
                log.warning("%s", exc)
                continue
            self._after_commit(dataset_id, release, state)
            return CommitResult(dataset_id, version, created=True, release=release)
        raise VersionConflict(f"{dataset_id}: could not commit after {MAX_COMMIT_ATTEMPTS} attempts")

    def _claim_key(self, dataset_id: str, version: int) -> str:
        return f"{dataset_id}/_claims/{version}.json"

    def _claim(self, dataset_id: str, version: int, run_key: str, attempt: str) -> dict[str, Any] | None:
        """Put-if-absent the claim on ``version``; the claim body if this writer holds it now, else None."""
        now = _now()
        claim = {
            "run": run_key,
            "attempt": attempt,
            "claimed_at": now,
            "renewed_at": now,
            "lease_s": self.lease_s,
            **_machine(),
        }
        if self.backend.put_if_absent(self._claim_key(dataset_id, version), dumps(claim)):
            faults.point("commit.claimed")
            return claim
        return None

    def claim_state(self, dataset_id: str, version: int) -> tuple[str, dict[str, Any] | None]:
        """``committed``, ``closed`` (tombstone), ``live`` or ``dead`` for a version someone claimed, and the claim."""
        if self.backend.exists(self._log_key(dataset_id, version)):
            return ("closed" if self._classify(dataset_id, version) else "committed"), None
        try:
            claim = parse_object(self.backend.get_bytes(self._claim_key(dataset_id, version)), "claim")
        except ReleaseError:
            claim = None
        if claim is None:
            legacy = f"{dataset_id}/v{version}/_claim.json"  # store format 1 kept claims in the release folder
            try:
                claim = parse_object(self.backend.get_bytes(legacy), "claim")
            except ReleaseError:
                return "dead", None  # an unreadable claim (a kill mid-write on a backend without atomic puts)
        alive = holder_alive(claim)
        renewed = _parse_time(claim.get("renewed_at") or claim.get("claimed_at"))
        lease = float(claim.get("lease_s") or self.lease_s)
        expired = renewed is None or time.time() - renewed > lease
        return ("dead" if alive is False or expired else "live"), claim

    def _wait_or_close(self, dataset_id: str, version: int) -> None:
        """Wait while a live writer holds ``version``; close it with a tombstone once its writer is gone."""
        waited = False
        while True:
            status, claim = self.claim_state(dataset_id, version)
            if status in ("committed", "closed"):
                return
            if status == "dead":
                self._close(dataset_id, version, claim)
                return
            if not waited:
                log.info("%s v%s is being committed by run %s; waiting", dataset_id, version, (claim or {}).get("run"))
                waited = True
            time.sleep(POLL_S)

    def _close(self, dataset_id: str, version: int, claim: dict[str, Any] | None) -> None:
        """A tombstone in place of the commit record of a version whose writer is gone: nobody can commit it."""
        tombstone = {
            "dataset_id": dataset_id,
            "version": version,
            "skipped": True,
            "claimed_by": (claim or {}).get("run"),
            "attempt": (claim or {}).get("attempt"),
            "skipped_at": _now(),
        }
        if self.backend.put_if_absent(self._log_key(dataset_id, version), dumps(tombstone)):
            faults.point("commit.closed")
            log.warning(
                "%s v%s: its writer (run %s) is gone; the number is closed unused",
                dataset_id,
                version,
                tombstone["claimed_by"],
            )

    def _write(
        self,
        dataset_id: str,
        version: int,
        run_key: str,
        attempt: str,
        planned: CommitPlan,
        previous: Release | None,
    ) -> Release:
        prefix = f"{dataset_id}/v{version}"
        files = [f for f in planned.files if f.rows > 0 or len(planned.files) == 1]  # never an empty data file
        for f in files:
            self._place(f"{prefix}/data/{f.name}", f)
            faults.point("commit.data_placed")
        evidence = []
        for f in planned.validation:
            self._place(f"{prefix}/validation/{f.name}", f)
            evidence.append({"path": f"validation/{f.name}", "bytes": f.bytes, "sha256": f.sha256})
        previous_ref = None
        if previous is not None:
            previous_ref = {
                "version": previous.version,
                "manifest_sha256": previous.record["manifest_sha256"],
                "record_sha256": sha256_bytes(self.backend.get_bytes(self._log_key(dataset_id, previous.version))),
            }
        full = _with_files(planned.manifest, files)
        full["version"] = str(version)
        full["datashare"]["version"] = version
        full["datashare"]["previous"] = previous_ref
        full["datashare"]["evidence"] = evidence
        manifest_bytes = dumps(full)
        self.backend.put_bytes(f"{prefix}/datapackage.json", manifest_bytes)
        faults.point("commit.manifest_written")
        record = {
            "dataset_id": dataset_id,
            "version": version,
            "run": run_key,
            "attempt": attempt,
            "committed_at": _now(),  # to the millisecond: Delta Sharing reads a table "at" a moment
            "manifest_sha256": sha256_bytes(manifest_bytes),
            "content_sha256": planned.content_sha256,
            "previous": previous_ref,
            "ledger_tip": self.ledger.tip(),
        }
        if not self.backend.put_if_absent(self._log_key(dataset_id, version), dumps(record)):
            raise VersionConflict(f"{dataset_id} v{version}: the number was closed before this writer committed it")
        faults.point("commit.recorded")
        log.info("Committed %s v%s (%s rows)", dataset_id, version, full["datashare"]["rows"])
        return Release(dataset_id=dataset_id, version=version, record=record, manifest=full)

    def _place(self, key: str, f: DataFile) -> None:
        """Put a file of the release in place, from the store (a copy inside it) or from a local file."""
        if f.key is not None:
            self.backend.copy(f.key, key)
        elif f.local is not None:
            self.backend.put_file(key, f.local)
        else:
            raise ReleaseError(f"{key}: the file to commit has neither a local path nor a store key")
        size = self.backend.size(key)
        if size != f.bytes:
            raise ReleaseError(f"{self.backend.describe(key)}: {size} bytes after writing, expected {f.bytes}")

    def _after_commit(self, dataset_id: str, release: Release, state: DatasetState) -> None:
        entry = self.ledger.append(
            "release_committed",
            dataset_id=dataset_id,
            version=release.version,
            run=release.record["run"],
            manifest_sha256=release.record["manifest_sha256"],
            record_sha256=sha256_bytes(dumps(release.record)),
            rows=release.rows,
        )
        faults.point("commit.ledgered")
        state.top = max(state.top, release.version)
        state.ledgered[release.version] = entry.seq
        self.write_head(dataset_id, state)
        faults.point("commit.head_written")
        self.backend.delete(self._claim_key(dataset_id, release.version))
        self.sweep(dataset_id, state)

    # -- repair and sweeping ---------------------------------------------------------------------

    def repair_ledger(self, dataset_id: str) -> list[str]:
        """Append the ``release_committed`` entries that a kill between record and ledger left missing.

        Only versions the head does not already know are looked for, from the ledger tip their commit
        record remembers, so this usually reads a handful of entries, not the chain. A version still
        not found there is looked for in the whole chain before anything is appended (its record's
        tip may have been edited), and an entry is appended only for a release that verifies intact:
        repair completes a genuine release, it never seals tampering (``verify`` names it instead).
        Returns what was repaired.
        """
        state = self.state(dataset_id)
        missing = [v for v in state.versions if v not in state.ledgered]
        if not missing:
            return []
        records = {}
        for v in missing:
            try:
                records[v] = self.record(dataset_id, v)
            except ReleaseError:
                continue  # verify names an unreadable record
        if not records:
            return []
        start = min(_ledger_tip(r) for r in records.values())
        for entry in self.ledger.entries_after(start):
            body = entry.body
            if (
                body.get("event") == "release_committed"
                and body.get("dataset_id") == dataset_id
                and body.get("version") in records
            ):
                state.ledgered[body["version"]] = entry.seq
        unfound = [v for v in sorted(records) if v not in state.ledgered]
        known = self.ledger.committed(dataset_id) if unfound else {}
        repaired = []
        for v in unfound:
            if known is None:
                log.warning(
                    "%s v%s: not repaired: the ledger has an unreadable entry (it may be this one's)", dataset_id, v
                )
                continue
            if v in known:
                state.ledgered[v] = known[v]
                continue
            problems = self._unsealable(dataset_id, v, records[v])
            if problems:
                log.warning("%s v%s: no ledger entry, and not repaired: %s", dataset_id, v, "; ".join(problems))
                continue
            record_bytes = self.backend.get_bytes(self._log_key(dataset_id, v))
            manifest = self.release(dataset_id, v).manifest
            entry = self.ledger.append(
                "release_committed",
                dataset_id=dataset_id,
                version=v,
                run=records[v].get("run"),
                manifest_sha256=records[v].get("manifest_sha256"),
                record_sha256=sha256_bytes(record_bytes),
                rows=manifest["datashare"].get("rows"),
                repaired=True,
            )
            state.ledgered[v] = entry.seq
            repaired.append(
                f"{dataset_id} v{v}: release_committed ledger entry was missing; appended as entry {entry.seq}"
            )
            log.warning("%s", repaired[-1])
        self.write_head(dataset_id, state)
        return repaired

    def _unsealable(self, dataset_id: str, version: int, record: dict[str, Any]) -> list[str]:
        """Why a release without a ledger entry must not get one appended (empty: it is intact)."""
        if record.get("skipped") or record.get("version") != version or record.get("dataset_id") != dataset_id:
            return [f"the commit record names {record.get('dataset_id')} v{record.get('version')}"]
        return [str(f) for f in self.verify(dataset_id, version)]

    def sweep(self, dataset_id: str, state: DatasetState | None = None) -> int:
        """Remove what no release references: folders of closed numbers and claims of decided ones."""
        state = state or self.state(dataset_id)
        removed = 0
        for version in sorted(state.skipped):
            removed += self.backend.delete_prefix(f"{dataset_id}/v{version}")
        for key in self.backend.list(f"{dataset_id}/_claims"):
            stem = key.rsplit("/", 1)[-1].removesuffix(".json")
            if stem.isdigit() and int(stem) <= state.top:
                self.backend.delete(key)
                removed += 1
        sweep_temporary = getattr(self.backend, "sweep_temporary", None)
        if callable(sweep_temporary):
            removed += sweep_temporary(dataset_id)
        return removed

    # -- auditing --------------------------------------------------------------------------------

    def verify(self, dataset_id: str, version: int) -> list[Finding]:
        """Re-hash a release's files, report and manifest; check the folder holds exactly those files.

        Never raises for what it finds: an unreadable or missing object is a finding.
        """
        findings: list[Finding] = []

        def found(what: str) -> None:
            findings.append(Finding(dataset_id, version, what))

        prefix = f"{dataset_id}/v{version}"
        for link in dict.fromkeys(self.backend.links(prefix) + self.backend.links(self._log_key(dataset_id, version))):
            found(f"{link} is a symbolic link, not a file of the release")
        try:
            record = self.record(dataset_id, version)
        except ReleaseError as exc:
            found(str(exc))
            return findings
        try:
            manifest_bytes = self.backend.get_bytes(f"{prefix}/datapackage.json")
            manifest = parse_object(manifest_bytes, "datapackage.json")
        except ReleaseError as exc:
            found(str(exc))
            return findings
        if sha256_bytes(manifest_bytes) != record.get("manifest_sha256"):
            found("datapackage.json was edited after commit (sha256 differs)")
        listed = _listed_files(manifest)
        if listed is None:
            found("datapackage.json does not list its files (edited)")
            return findings
        for path, size, digest in listed:
            found_what = self._check_object(f"{prefix}/{path}", path, size, digest)
            if found_what:
                found(found_what)
        expected = {f"{prefix}/datapackage.json", *(f"{prefix}/{p}" for p, _, _ in listed)}
        legacy = not manifest.get("datashare", {}).get("evidence") and not isinstance(
            manifest.get("datashare", {}).get("evidence"), list
        )
        if legacy:  # releases made before reports were hashed: the report is expected, not checked
            expected |= {f"{prefix}/{p}" for p in EVIDENCE}
            expected.add(f"{prefix}/_claim.json")
        for key in self.backend.list(prefix):
            if key not in expected:
                found(f"{key.removeprefix(prefix + '/')} is in the release folder but not in its manifest (added)")
        prev = record.get("previous")
        if isinstance(prev, dict) and isinstance(prev.get("version"), int):
            try:
                prev_bytes = self.backend.get_bytes(self._log_key(dataset_id, prev["version"]))
            except ReleaseError:
                found(f"previous release v{prev['version']} has no commit record")
            else:
                if sha256_bytes(prev_bytes) != prev.get("record_sha256"):
                    found(f"commit record of v{prev['version']} was rewritten")
        return findings

    def _check_object(self, key: str, path: str, size: Any, digest: Any) -> str | None:
        try:
            if not self.backend.exists(key):
                why = " (auditors cannot see what was checked)" if path.startswith("validation/") else ""
                return f"{path} is missing{why}"
            actual_size = self.backend.size(key)
            if actual_size != size:
                return f"{path} is {actual_size} bytes, manifest says {size}"
            actual = self.backend.sha256(key)
        except ReleaseError as exc:
            return f"{path}: {exc}"
        if actual != digest:
            return f"{path} sha256 {actual} != manifest {digest}"
        return None


def _ledger_tip(record: dict[str, Any]) -> int:
    """The ledger tip a commit record remembers (0, the whole chain, when it is not a count)."""
    tip = record.get("ledger_tip")
    return tip if isinstance(tip, int) and _is_count(tip) else 0


def _is_count(value: Any) -> bool:
    """A non-negative int that is not a bool (what a head's numbers must be)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


class OpensStore:
    """A holder of :class:`~datashare.settings.Settings` whose release store opens on first use and is kept.

    Building the holder does no I/O; ``store`` may be assigned (a test's own backend) before first use.
    """

    settings: Settings

    @cached_property
    def store(self) -> ReleaseStore:
        """The release store named by ``settings.release_uri`` (opened on first use, once per holder)."""
        return ReleaseStore.open(self.settings.release_uri)

    @property
    def ledger(self) -> Ledger:
        """The ledger beside the releases."""
        return self.store.ledger


def _listed_files(manifest: dict[str, Any]) -> list[tuple[str, Any, Any]] | None:
    """(path, bytes, sha256) of every file the manifest seals: data files and validation evidence."""
    try:
        section = manifest["datashare"]
        out = [(str(f["path"]), f["bytes"], f["sha256"]) for f in section["files"]]
        out += [(str(f["path"]), f["bytes"], f["sha256"]) for f in section.get("evidence") or []]
    except (KeyError, TypeError):
        return None
    if any(p.startswith("/") or ".." in p.split("/") for p, _, _ in out):
        return None
    return out


def _with_files(manifest: dict[str, Any], files: Sequence[DataFile]) -> dict[str, Any]:
    """A deep copy of the planned manifest whose resources and file list match ``files`` exactly."""
    import json

    full = json.loads(json.dumps(manifest))
    names = {f"data/{f.name}" for f in files}
    full["resources"] = [r for r in full.get("resources", []) if r.get("path") in names]
    full["datashare"]["files"] = [f for f in full["datashare"]["files"] if f["path"] in names]
    full["datashare"]["rows"] = sum(f.rows for f in files)
    return full


def _validation_files(folder: Path | None) -> list[DataFile]:
    if folder is None:
        return []
    return [
        DataFile.from_path(p, p.name, 0)
        for p in sorted(folder.iterdir())
        if p.is_file() and p.name in ("report.html", "result.json")
    ]
