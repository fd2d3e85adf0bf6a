"""The auditor's check: every release file against its manifest, the ledger chain, and the two against each other.

:func:`audit` names exactly what is wrong, one finding per line:

- a data file whose bytes changed, is missing or has another size (``ReleaseStore.verify``);
- a manifest edited after commit, a rewritten commit record of the release before;
- a release whose validation report is missing;
- a ledger entry deleted, edited or reordered (``Ledger.verify``);
- a release with no ``release_committed`` ledger entry, or one whose entry records another manifest
  SHA-256 than the commit record (manifest and record rewritten together);
- a ``release_committed`` entry for a release the store no longer has.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from datashare.ledger import PREFIX, Anchor, Ledger
from datashare.store import ReleaseStore

log = logging.getLogger(__name__)


def _ledger_bodies(store: ReleaseStore) -> list[dict[str, Any]]:
    """Every ledger entry that still parses, in order; unreadable ones are reported by ``Ledger.verify``."""
    out = []
    for key in store.backend.list(PREFIX):
        try:
            body = json.loads(store.backend.get_bytes(key))
        except ValueError:
            continue
        if isinstance(body, dict):
            out.append(body)
    return out


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
    datasets = [dataset_id] if dataset_id else store.datasets()
    releases = {(d, v) for d in datasets for v in ([version] if version else store.versions(d))}
    findings: list[str] = []
    for d, v in sorted(releases):
        findings += [str(f) for f in store.verify(d, v)]
        if store.backend.exists(f"{d}/_log/{v}.json") and not store.backend.exists(f"{d}/v{v}/validation/report.html"):
            findings.append(f"{d} v{v}: validation/report.html is missing (auditors cannot see what was checked)")
    findings += Ledger(store.backend).verify(anchors)
    findings += _releases_against_ledger(store, releases, all_releases=dataset_id is None)
    log.info("Audited %d release(s) and the ledger: %d finding(s)", len(releases), len(findings))
    return findings


def _releases_against_ledger(store: ReleaseStore, releases: set[tuple[str, int]], *, all_releases: bool) -> list[str]:
    """Each committed release has its ledger entry, with the same manifest SHA-256, and vice versa."""
    committed: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for body in _ledger_bodies(store):
        if body.get("event") == "release_committed" and isinstance(body.get("version"), int):
            committed[(str(body.get("dataset_id")), body["version"])].append(body)
    findings = []
    for d, v in sorted(releases):
        if not store.backend.exists(f"{d}/_log/{v}.json"):
            continue  # ReleaseStore.verify already said the commit record is missing
        record_sha = store.record(d, v).get("manifest_sha256")
        entries = committed.get((d, v), [])
        if not entries:
            findings.append(f"{d} v{v}: release with no ledger entry (no release_committed entry records it)")
        elif not any(e.get("manifest_sha256") == record_sha for e in entries):
            seqs = ", ".join(str(e.get("seq")) for e in entries)
            recorded = ", ".join(str(e.get("manifest_sha256")) for e in entries)
            findings.append(
                f"{d} v{v}: ledger entry {seqs} records manifest sha256 {recorded}, "
                f"but the commit record says {record_sha}"
            )
    scope = {d for d, _ in releases}
    for (d, v), entries in sorted(committed.items()):
        if (d, v) in releases or not (all_releases or d in scope) or store.backend.exists(f"{d}/_log/{v}.json"):
            continue
        seqs = ", ".join(str(e.get("seq")) for e in entries)
        findings.append(f"{d} v{v}: ledger entry {seqs} records this release, but the store has no commit record")
    return findings
