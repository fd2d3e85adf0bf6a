"""Withdrawn releases: a marker hides a release from consumers; its files and report stay for auditors.

Releases are immutable, so withdrawal is not a change to the release: it is a marker
``<id>/_withdrawn/<N>.json`` (what readers consult: one listing per dataset) followed by a
``release_withdrawn`` ledger entry carrying the reason and the manifest SHA-256 (what auditors
check). A kill between the two leaves a withdrawal without its entry: still a withdrawal for every
reader, and ``datashare verify --repair`` appends the entry. Runs build on :func:`newest_available`
(the cursor, carried-over files and derived inputs never come from a withdrawn release), and the SQL
share is moved back to that release by :func:`datashare.pipeline.stages.sync_sql_share`.
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Collection, Iterable
from typing import TYPE_CHECKING

from datashare import faults
from datashare.exceptions import ReleaseError
from datashare.store.ledger import Entry
from datashare.store.releases import Release, ReleaseStore

if TYPE_CHECKING:
    from datashare.spec import DatasetSpec

log = logging.getLogger(__name__)

EVENT = "release_withdrawn"


def withdrawn_versions(store: ReleaseStore, dataset_id: str) -> dict[int, str]:
    """Withdrawn versions of a dataset and the reason given for each."""
    return store.withdrawn(dataset_id)


def newest_available(store: ReleaseStore, dataset_id: str, withdrawn: Collection[int]) -> Release | None:
    """The newest committed release that is not withdrawn: what consumers are served and runs build on."""
    for version in reversed(store.versions(dataset_id)):
        if version not in withdrawn:
            return store.release(dataset_id, version)
    return None


def withdraw(store: ReleaseStore, dataset_id: str, version: int, reason: str) -> Entry:
    """Withdraw a committed release: the marker, then the ledger entry; the files stay.

    Raises :class:`ReleaseError` when the reason is empty, the version was never committed, or it is
    already withdrawn.
    """
    reason = unicodedata.normalize("NFC", " ".join((reason or "").split()))
    if not reason:
        raise ReleaseError(f"withdrawing {dataset_id} v{version} needs a reason (non-empty text)")
    release = store.release(dataset_id, version)  # ReleaseError naming the release if it does not exist
    already = store.withdrawn(dataset_id)
    if version in already or not store.mark_withdrawn(dataset_id, version, reason, release.record["manifest_sha256"]):
        raise ReleaseError(f"{dataset_id} v{version} is already withdrawn (reason: {already.get(version, reason)})")
    faults.point("withdraw.marked")
    entry = store.ledger.append(
        EVENT,
        dataset_id=dataset_id,
        version=version,
        reason=reason,
        manifest_sha256=release.record["manifest_sha256"],
    )
    log.info("Withdrew %s v%s (ledger entry %s): %s", dataset_id, version, entry.seq, reason)
    return entry


def built_on(store: ReleaseStore, specs: Iterable[DatasetSpec], dataset_id: str, version: int) -> list[Release]:
    """Releases of derived datasets, still served, that were built from ``dataset_id`` release ``version``.

    Withdrawing an input does not rebuild what was derived from it: these need a new run (or their own
    withdrawal), and the withdraw command names them.
    """
    found = []
    for spec in specs:
        if spec.source.kind != "derived" or dataset_id not in spec.source.inputs:
            continue
        served = newest_available(store, spec.id, store.withdrawn(spec.id))
        if (
            served is not None
            and (served.manifest["datashare"].get("stats") or {}).get("inputs", {}).get(dataset_id) == version
        ):
            found.append(served)
    return found
