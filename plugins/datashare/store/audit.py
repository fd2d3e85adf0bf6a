"""The auditor's check: every release against its manifest, the ledger chain, and the two against each other.

:func:`audit` names exactly what is wrong, one finding per line, and never ends in a traceback (an
unreadable object is a finding):

- a data file or validation report whose bytes changed, is missing or has another size; a file added
  to a release folder, or a file or any folder above it (release, dataset, commit log) replaced by a
  symbolic link, even to an identical copy (``ReleaseStore.verify``);
- a manifest edited after commit, a rewritten commit record of the release before;
- a ledger entry deleted, edited, reordered or linked (``Ledger.verify``), checked against anchors kept outside;
- a release with no ``release_committed`` ledger entry, or one whose entry records another manifest or
  commit-record SHA-256 than the store holds (the commit record's every field is covered that way);
- a ``release_committed`` entry for a release the store no longer has, or whose record became a tombstone;
- a gap in a dataset's commit log, a head or withdrawal marker that disagrees with the ledger, a
  withdrawal marker that is unreadable, names no release, or records another manifest than its release.

:func:`repair` completes what a killed writer left half-done (a release or withdrawal without its
ledger entry, a stale head, a store from before withdrawal markers) and says what it did; it never
touches a release, and it never seals tampering: a release gets its missing entry only if it verifies
intact and no entry for it is anywhere in the chain (and the chain is readable), a withdrawal only if
its marker withdraws a committed release with that release's manifest SHA-256.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from datashare.exceptions import ReleaseError
from datashare.store.codec import parse_object, sha256_bytes
from datashare.store.ledger import PREFIX, Anchor, Ledger
from datashare.store.releases import ReleaseStore

log = logging.getLogger(__name__)


def _ledger_bodies(store: ReleaseStore) -> list[dict[str, Any]]:
    """Every ledger entry that still parses, in order; unreadable ones are reported by ``Ledger.verify``."""
    out = []
    for key in store.backend.list(PREFIX):
        if not key.rsplit("/", 1)[-1].removesuffix(".json").isdigit():
            continue
        try:
            out.append(parse_object(store.backend.get_bytes(key), key))
        except ReleaseError:
            continue
    return out


def _dataset_ids(store: ReleaseStore) -> list[str]:
    """Every folder that has a commit log, releases or not."""
    return [
        c for c in store.backend.children("") if not c.startswith(("_", ".")) and store.backend.children(f"{c}/_log")
    ]


def audit(
    store: ReleaseStore,
    *,
    dataset_id: str | None = None,
    version: int | None = None,
    anchors: Sequence[Anchor] = (),
) -> list[str]:
    """All findings over the store (or one dataset, or one release of it); empty when everything is intact.

    The ledger chain is always walked whole: an entry cannot be judged without the ones before it.
    ``anchors`` are ledger hashes kept outside the store (an earlier audit's head): they catch an edit
    of the newest entries, which no later entry's link can.
    """
    datasets = [dataset_id] if dataset_id else _dataset_ids(store)
    findings: list[str] = []
    releases: set[tuple[str, int]] = set()
    for d in datasets:
        findings += _commit_log(store, d)
        versions = store.versions(d)
        releases |= {(d, v) for v in ([version] if version else versions)}
    for d, v in sorted(releases):
        findings += [str(f) for f in store.verify(d, v)]
        if store.backend.exists(f"{d}/_log/{v}.json") and not store.backend.exists(f"{d}/v{v}/validation/report.html"):
            findings.append(f"{d} v{v}: validation/report.html is missing (auditors cannot see what was checked)")
    findings += Ledger(store.backend).verify(anchors)
    bodies = _ledger_bodies(store)
    findings += _releases_against_ledger(store, releases, bodies, all_releases=dataset_id is None)
    findings += _withdrawals_against_ledger(store, datasets, bodies)
    findings = list(dict.fromkeys(findings))  # a missing report is found by two checks
    log.info("Audited %d release(s) and the ledger: %d finding(s)", len(releases), len(findings))
    return findings


def _commit_log(store: ReleaseStore, dataset_id: str) -> list[str]:
    """Every number up to the highest has a record or a tombstone; the head agrees with the log."""
    findings = []
    numbers = set()
    for key in store.backend.list(f"{dataset_id}/_log"):
        name = key.rsplit("/", 1)[-1]
        stem = name.removesuffix(".json")
        if name.endswith(".json") and stem.isdigit():
            numbers.add(int(stem))
        elif not (name.endswith(".skipped") and name.removesuffix(".skipped").isdigit()):
            findings.append(f"{dataset_id}: {key} is not a commit record (added to the commit log)")
    top = max(numbers, default=0)
    for missing in sorted(set(range(1, top + 1)) - numbers):
        findings.append(f"{dataset_id}: commit record {missing} is missing (deleted: the log must have 1..{top})")
    tombstones = set()
    for n in sorted(numbers):
        try:
            record = store.record(dataset_id, n)
        except ReleaseError as exc:
            findings.append(f"{dataset_id} v{n}: {exc}")
            continue
        if record.get("skipped"):
            tombstones.add(n)
        elif record.get("version") != n or record.get("dataset_id") != dataset_id:
            findings.append(
                f"{dataset_id} v{n}: the commit record names {record.get('dataset_id')} v{record.get('version')}"
            )
    head = store.read_head(dataset_id)
    if head is not None:
        if head.top > top:
            findings.append(f"{dataset_id}: the head says v{head.top} exists, the commit log ends at {top}")
        wrong = {n for n in head.skipped if n <= top} ^ {n for n in tombstones if n <= head.top}
        if wrong:
            findings.append(
                f"{dataset_id}: the head lists closed numbers {sorted(head.skipped)}, the log {sorted(tombstones)}"
            )
    return findings


def _releases_against_ledger(
    store: ReleaseStore, releases: set[tuple[str, int]], bodies: list[dict[str, Any]], *, all_releases: bool
) -> list[str]:
    """Each committed release has its ledger entry, with the same manifest and record SHA-256, and vice versa."""
    committed: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for body in bodies:
        if body.get("event") == "release_committed" and isinstance(body.get("version"), int):
            committed[(str(body.get("dataset_id")), body["version"])].append(body)
    findings = []
    for d, v in sorted(releases):
        try:
            record_bytes = store.backend.get_bytes(f"{d}/_log/{v}.json")
            record = parse_object(record_bytes, "record")
        except ReleaseError:
            continue  # ReleaseStore.verify already named it
        entries = committed.get((d, v), [])
        seqs = ", ".join(str(e.get("seq")) for e in entries)
        if not entries:
            findings.append(f"{d} v{v}: release with no ledger entry (no release_committed entry records it)")
        elif not any(e.get("manifest_sha256") == record.get("manifest_sha256") for e in entries):
            recorded = ", ".join(str(e.get("manifest_sha256")) for e in entries)
            findings.append(
                f"{d} v{v}: ledger entry {seqs} records manifest sha256 {recorded}, "
                f"but the commit record says {record.get('manifest_sha256')}"
            )
        elif not any(e.get("record_sha256") in (None, sha256_bytes(record_bytes)) for e in entries):
            findings.append(
                f"{d} v{v}: the commit record was edited after commit (its sha256 differs from ledger entry {seqs})"
            )
    scope = {d for d, _ in releases}
    for (d, v), entries in sorted(committed.items()):
        if (d, v) in releases or not (all_releases or d in scope):
            continue
        seqs = ", ".join(str(e.get("seq")) for e in entries)
        if not store.backend.exists(f"{d}/_log/{v}.json"):
            findings.append(f"{d} v{v}: ledger entry {seqs} records this release, but the store has no commit record")
        elif _is_tombstone(store, d, v):
            findings.append(
                f"{d} v{v}: ledger entry {seqs} records this release, but its commit record is a tombstone "
                "(rewritten: the release is hidden from readers)"
            )
    return findings


def _is_tombstone(store: ReleaseStore, dataset_id: str, version: int) -> bool:
    try:
        return bool(store.record(dataset_id, version).get("skipped"))
    except ReleaseError:
        return False


def _marker_problem(store: ReleaseStore, dataset_id: str, version: int) -> str | None:
    """What is wrong with a withdrawal marker in itself (None: it withdraws a release the store has)."""
    key = f"{dataset_id}/_withdrawn/{version}.json"
    try:
        marker = parse_object(store.backend.get_bytes(key), f"withdrawal marker {store.backend.describe(key)}")
    except ReleaseError as exc:
        return str(exc)
    try:
        record = store.record(dataset_id, version)
    except ReleaseError:
        return "withdrawal marker for a version the store has no (readable) commit record of: forged or misplaced"
    if record.get("skipped"):
        return "withdrawal marker for a number closed unused (a tombstone): forged or misplaced"
    if marker.get("manifest_sha256") != record.get("manifest_sha256"):
        return (
            f"withdrawal marker records manifest sha256 {marker.get('manifest_sha256')}, "
            f"but the commit record says {record.get('manifest_sha256')}"
        )
    return None


def _withdrawals_against_ledger(store: ReleaseStore, datasets: list[str], bodies: list[dict[str, Any]]) -> list[str]:
    """Each withdrawal marker has its ledger entry and each ledger withdrawal its marker."""
    in_ledger = {
        (str(b.get("dataset_id")), b["version"])
        for b in bodies
        if b.get("event") == "release_withdrawn" and isinstance(b.get("version"), int)
    }
    findings = []
    current = store.is_current_format()
    for d in datasets:
        marked = set()
        for key in store.backend.list(f"{d}/_withdrawn"):
            stem = key.rsplit("/", 1)[-1].removesuffix(".json")
            if stem.isdigit():
                marked.add(int(stem))
        for v in sorted(marked):
            problem = _marker_problem(store, d, v)
            if problem is not None:
                findings.append(f"{d} v{v}: {problem}")
            elif (d, v) not in in_ledger:
                findings.append(f"{d} v{v}: withdrawn in the store, but no release_withdrawn ledger entry (repairable)")
        if current:
            for v in sorted({v for dd, v in in_ledger if dd == d} - marked):
                findings.append(
                    f"{d} v{v}: the ledger withdraws it, but the store has no withdrawal marker (repairable)"
                )
    return findings


def repair(store: ReleaseStore, dataset_id: str | None = None) -> list[str]:
    """Complete what killed writers left half-done; returns one line per repair. Releases are never touched."""
    done = store.ensure_format()
    datasets = [dataset_id] if dataset_id else _dataset_ids(store)
    bodies = _ledger_bodies(store)
    in_ledger = {
        (str(b.get("dataset_id")), b["version"])
        for b in bodies
        if b.get("event") == "release_withdrawn" and isinstance(b.get("version"), int)
    }
    for d in datasets:
        head = store.read_head(d)
        rebuilt = store.rebuild_state(d)
        if head is not None and (head.top > rebuilt.top or head.skipped - rebuilt.skipped):
            store.write_head(d, rebuilt)
            done.append(f"{d}: the head disagreed with the commit log; rebuilt from it")
        done += store.repair_ledger(d)
        for key in store.backend.list(f"{d}/_withdrawn"):
            stem = key.rsplit("/", 1)[-1].removesuffix(".json")
            if not stem.isdigit() or (d, int(stem)) in in_ledger:
                continue
            problem = _marker_problem(store, d, int(stem))
            if problem is not None:
                log.warning("%s v%s: not repaired: %s", d, stem, problem)
                continue
            marker = parse_object(store.backend.get_bytes(key), key)
            entry = store.ledger.append(
                "release_withdrawn",
                dataset_id=d,
                version=int(stem),
                reason=marker.get("reason", ""),
                manifest_sha256=marker.get("manifest_sha256"),
                repaired=True,
            )
            done.append(f"{d} v{stem}: release_withdrawn ledger entry was missing; appended as entry {entry.seq}")
        for dd, v in sorted(in_ledger):
            if dd == d and not store.backend.exists(f"{d}/_withdrawn/{v}.json"):
                body = next(
                    b
                    for b in bodies
                    if b.get("event") == "release_withdrawn" and (b.get("dataset_id"), b.get("version")) == (d, v)
                )
                store.write_withdrawal_marker(
                    d, v, str(body.get("reason", "")), body.get("manifest_sha256"), body.get("seq")
                )
                done.append(f"{d} v{v}: withdrawal marker written from ledger entry {body.get('seq')}")
    return done
