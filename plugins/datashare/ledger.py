"""The ledger: an append-only, hash-chained log of what happened to releases.

Each entry is its own object ``_ledger/<seq>.json`` written with put-if-absent, so two writers can
never both take the same sequence number, and each carries the SHA-256 of the entry before it, so an
edited, removed or reordered entry breaks the chain where it happened.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from datashare.backends import Backend
from datashare.exceptions import ReleaseError
from datashare.store import dumps, sha256_bytes

PREFIX = "_ledger"
GENESIS = "0" * 64
MAX_ATTEMPTS = 50


def _key(seq: int) -> str:
    return f"{PREFIX}/{seq:012d}.json"


@dataclass(frozen=True)
class Anchor:
    """A ledger entry's hash kept outside the store, against which the entry is checked."""

    seq: int
    sha256: str
    source: str
    """Where the hash was kept, for the finding (an Airflow Variable, an auditor's note...)."""

    @classmethod
    def parse(cls, text: str, source: str) -> Anchor:
        """``SEQ:SHA256`` (as ``datashare verify`` prints the head); ``ValueError`` naming what is wrong."""
        seq, _, digest = text.strip().partition(":")
        if not seq.isdigit() or int(seq) < 1 or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ValueError(f"ledger anchor {text!r} from {source}: expected SEQ:SHA256 (64 lowercase hex digits)")
        return cls(seq=int(seq), sha256=digest, source=source)

    def __str__(self) -> str:
        return f"{self.seq}:{self.sha256}"


@dataclass(frozen=True)
class Entry:
    """A ledger entry and the hash of its stored bytes."""

    seq: int
    body: dict[str, Any]
    sha256: str


class Ledger:
    """Append and read ledger entries in a store backend."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def _seqs(self) -> list[int]:
        out = []
        for key in self.backend.list(PREFIX):
            stem = key.rsplit("/", 1)[-1].removesuffix(".json")
            if stem.isdigit():
                out.append(int(stem))
        return sorted(out)

    def append(self, event: str, *, dataset_id: str, version: int | None = None, **details: Any) -> Entry:
        """Append an event; retried on a race for the same sequence number."""
        for _ in range(MAX_ATTEMPTS):
            seqs = self._seqs()
            seq = seqs[-1] + 1 if seqs else 1
            prev = sha256_bytes(self.backend.get_bytes(_key(seqs[-1]))) if seqs else GENESIS
            body = {
                "seq": seq,
                "at": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "event": event,
                "dataset_id": dataset_id,
                "version": version,
                "previous_sha256": prev,
                **details,
            }
            data = dumps(body)
            if self.backend.put_if_absent(_key(seq), data):
                return Entry(seq=seq, body=body, sha256=sha256_bytes(data))
        raise ReleaseError(f"ledger: could not append {event!r} after {MAX_ATTEMPTS} attempts")

    def entries(self, dataset_id: str | None = None) -> list[Entry]:
        """Entries in order, optionally of one dataset."""
        out = []
        for seq in self._seqs():
            data = self.backend.get_bytes(_key(seq))
            body = json.loads(data)
            if dataset_id is None or body.get("dataset_id") == dataset_id:
                out.append(Entry(seq=seq, body=body, sha256=sha256_bytes(data)))
        return out

    def head(self) -> Anchor | None:
        """The newest entry's sequence number and hash: what to keep outside the store as an anchor."""
        seqs = self._seqs()
        if not seqs:
            return None
        return Anchor(seq=seqs[-1], sha256=sha256_bytes(self.backend.get_bytes(_key(seqs[-1]))), source="this store")

    def verify(self, anchors: Sequence[Anchor] = ()) -> list[str]:
        """Walk the chain; each problem is named by its sequence number.

        An edited entry shows as a break in the link that the *next* entry holds, so a break is
        reported naming both entries. The newest entry has no successor: editing it is only caught
        against a copy of its hash kept elsewhere, an :class:`Anchor` (the audit DAG keeps the head it
        verified in an Airflow Variable; ``datashare verify`` prints it and takes ``--anchor``).
        """
        problems = []
        for anchor in anchors:
            if not self.backend.exists(_key(anchor.seq)):
                problems.append(f"ledger: entry {anchor.seq}, anchored in {anchor.source}, is missing")
            elif sha256_bytes(self.backend.get_bytes(_key(anchor.seq))) != anchor.sha256:
                problems.append(
                    f"ledger: entry {anchor.seq} differs from its hash anchored in {anchor.source} "
                    f"({anchor.sha256[:12]}…): edited after it was anchored"
                )
        prev = GENESIS
        expected = 1
        for seq in self._seqs():
            data = self.backend.get_bytes(_key(seq))
            if seq != expected:
                problems.append(f"ledger: entry {expected} is missing (next is {seq})")
            try:
                body = json.loads(data)
            except ValueError:
                body = None
            if not isinstance(body, dict):
                problems.append(f"ledger: entry {seq} is not a JSON object (edited or truncated)")
                body = {}
            if body.get("seq") != seq:
                problems.append(f"ledger: entry {seq} says it is entry {body.get('seq')}")
            if body.get("previous_sha256") != prev:
                before = expected - 1
                if not before:
                    why = "does not start the chain (edited or reordered)"
                elif seq != expected:
                    why = f"does not chain to entry {before} (entries in between are missing)"
                else:
                    why = f"does not chain to entry {before}: entry {before} was edited, or entries were reordered"
                problems.append(f"ledger: entry {seq} {why}")
            prev = sha256_bytes(data)
            expected = seq + 1
        return problems
