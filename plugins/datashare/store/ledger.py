"""The ledger: an append-only, hash-chained log of what happened to releases.

Each entry is its own object ``_ledger/<seq>.json`` written with put-if-absent, so two writers can
never both take the same sequence number, and each carries the SHA-256 of the entry before it, so an
edited, removed or reordered entry breaks the chain where it happened.

An append costs the same at ten entries or ten million: ``_ledger/_head.json`` remembers the newest
sequence number (a hint, rewritten after each append and possibly behind when writers race or die),
the writer checks forward from it and chains to the entry it finds last. Only :meth:`Ledger.verify`
and :meth:`Ledger.entries` read the whole chain; readers that need one dataset's state use the
store's per-dataset objects (commit records, withdrawal markers, heads), which ``verify`` checks
against the chain.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from datashare import faults
from datashare.exceptions import ReleaseError
from datashare.store.backends import Backend
from datashare.store.codec import dumps, parse_object, sha256_bytes

log = logging.getLogger(__name__)

PREFIX = "_ledger"
HEAD = f"{PREFIX}/_head.json"
GENESIS = "0" * 64
MAX_ATTEMPTS = 1000
"""A lost race moves the writer one entry forward, so each failed attempt is another writer's progress."""


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

    # -- the tip -----------------------------------------------------------------------------

    def _listed(self) -> list[int]:
        """Every sequence number present, by listing the whole ledger (verify, and stores without a head)."""
        out = []
        for key in self.backend.list(PREFIX):
            stem = key.rsplit("/", 1)[-1].removesuffix(".json")
            if stem.isdigit():
                out.append(int(stem))
        return sorted(out)

    def _hint(self) -> int | None:
        """The head object's sequence number, or None when it is missing or unreadable."""
        try:
            seq = parse_object(self.backend.get_bytes(HEAD), HEAD).get("seq")
        except ReleaseError:
            return None
        return seq if isinstance(seq, int) and seq >= 0 else None

    def tip(self) -> int:
        """The newest sequence number (0 for an empty ledger): the hint, checked forward.

        Usually one read and one existence check. A hint that points at a missing entry (a ledger
        whose entries were deleted) falls back to listing, so a damaged ledger still takes appends
        (and ``verify`` names the damage).
        """
        seq = self._hint()
        if seq is None or (seq and not self.backend.exists(_key(seq))):
            listed = self._listed()
            seq = listed[-1] if listed else 0
        while self.backend.exists(_key(seq + 1)):
            seq += 1
        return seq

    def _write_hint(self, seq: int, sha256: str) -> None:
        """Remember the tip; a failure here costs the next writer a few more checks, nothing else."""
        try:
            self.backend.put_bytes(HEAD, dumps({"seq": seq, "sha256": sha256}))
        except Exception as exc:  # the entry is written; the hint is only a shortcut
            log.warning("ledger: could not update %s: %s", HEAD, exc)

    # -- writing -----------------------------------------------------------------------------

    def append(self, event: str, *, dataset_id: str | None, version: int | None = None, **details: Any) -> Entry:
        """Append an event after the newest entry; a lost race chains after the winner and tries again."""
        seq = self.tip()
        for _ in range(MAX_ATTEMPTS):
            prev = sha256_bytes(self.backend.get_bytes(_key(seq))) if seq else GENESIS
            body = {
                "seq": seq + 1,
                "at": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "event": event,
                "dataset_id": dataset_id,
                "version": version,
                "previous_sha256": prev,
                **details,
            }
            data = dumps(body)
            if self.backend.put_if_absent(_key(seq + 1), data):
                faults.point("ledger.appended")
                entry = Entry(seq=seq + 1, body=body, sha256=sha256_bytes(data))
                self._write_hint(entry.seq, entry.sha256)
                return entry
            seq += 1
            while self.backend.exists(_key(seq + 1)):
                seq += 1
        raise ReleaseError(f"ledger: could not append {event!r} after {MAX_ATTEMPTS} attempts")

    # -- reading -----------------------------------------------------------------------------

    def entry(self, seq: int) -> Entry:
        """One entry by its sequence number; ``ReleaseError`` if missing or unreadable."""
        data = self.backend.get_bytes(_key(seq))
        return Entry(seq=seq, body=parse_object(data, f"ledger entry {seq}"), sha256=sha256_bytes(data))

    def entries_after(self, seq: int) -> Iterator[Entry]:
        """Entries newer than ``seq``, oldest first, read one by one up to the tip (for short catch-ups)."""
        current = seq + 1
        while self.backend.exists(_key(current)):
            try:
                yield self.entry(current)
            except ReleaseError as exc:
                log.warning("ledger: %s", exc)
            current += 1

    def entries(self, dataset_id: str | None = None) -> list[Entry]:
        """Every readable entry in order, optionally of one dataset: the whole chain (audits only)."""
        out = []
        for seq in self._listed():
            try:
                entry = self.entry(seq)
            except ReleaseError:
                continue  # verify names it
            if dataset_id is None or entry.body.get("dataset_id") == dataset_id:
                out.append(entry)
        return out

    def committed(self, dataset_id: str) -> dict[int, int] | None:
        """Versions of a dataset that ``release_committed`` entries record, each with its first entry's seq.

        Reads the whole chain (repairs call it only when a release's entry is not where its record
        says). None when an entry cannot be read: it might be the one looked for.
        """
        out: dict[int, int] = {}
        for seq in self._listed():
            try:
                body = self.entry(seq).body
            except ReleaseError:
                return None
            version = body.get("version")
            if (
                body.get("event") == "release_committed"
                and body.get("dataset_id") == dataset_id
                and isinstance(version, int)
            ):
                out.setdefault(version, seq)
        return out

    def head(self) -> Anchor | None:
        """The newest entry's sequence number and hash: what to keep outside the store as an anchor."""
        seq = self.tip()
        if not seq:
            return None
        return Anchor(seq=seq, sha256=sha256_bytes(self.backend.get_bytes(_key(seq))), source="this store")

    # -- auditing ----------------------------------------------------------------------------

    def verify(self, anchors: Sequence[Anchor] = ()) -> list[str]:
        """Walk the chain; each problem is named by its sequence number.

        An edited entry shows as a break in the link that the *next* entry holds, so a break is
        reported naming both entries. The newest entry has no successor: editing it is only caught
        against a copy of its hash kept elsewhere, an :class:`Anchor` (the audit DAG keeps the head it
        verified in an Airflow Variable; ``datashare verify`` prints it and takes ``--anchor``).
        The head hint is checked against the chain too.
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
        for link in self.backend.links(PREFIX):
            problems.append(f"ledger: {link} is a symbolic link, not an entry written to the store")
        prev = GENESIS
        expected = 1
        hashes: dict[int, str] = {}
        for seq in self._listed():
            try:
                data = self.backend.get_bytes(_key(seq))
            except ReleaseError as exc:
                problems.append(f"ledger: entry {seq} cannot be read: {exc}")
                data = b""
            if seq != expected:
                problems.append(f"ledger: entry {expected} is missing (next is {seq})")
            try:
                body: dict[str, Any] = parse_object(data, f"entry {seq}")
            except ReleaseError:
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
            hashes[seq] = prev
            expected = seq + 1
        problems += self._check_hint(hashes)
        return problems

    def _check_hint(self, hashes: dict[int, str]) -> list[str]:
        if not self.backend.exists(HEAD):
            return []
        try:
            hint = parse_object(self.backend.get_bytes(HEAD), HEAD)
        except ReleaseError as exc:
            return [f"ledger: {exc}"]
        seq, digest = hint.get("seq"), hint.get("sha256")
        if not isinstance(seq, int) or (seq and seq not in hashes):
            return [f"ledger: {HEAD} names entry {seq!r}, which the chain does not have"]
        if seq and hashes[seq] != digest:
            return [f"ledger: {HEAD} records another hash for entry {seq} than the entry has (one of them edited)"]
        return []
