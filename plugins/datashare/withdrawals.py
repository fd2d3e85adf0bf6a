"""Withdrawn releases: a ledger event hides a release from consumers; its files and report stay for auditors.

Releases are immutable, so withdrawal is not a change to the release: it is a ``release_withdrawn``
ledger entry carrying the reason and the manifest SHA-256 of the release it concerns. Consumers ask
:func:`withdrawn_versions` which versions to skip; runs build on :func:`newest_available` (the
cursor, carried-over files and derived inputs never come from a withdrawn release), and the SQL share
is moved back to that release by :func:`datashare.pipeline.sync_sql_share`.
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Collection, Iterable
from typing import TYPE_CHECKING

from datashare.exceptions import ReleaseError
from datashare.ledger import Entry, Ledger
from datashare.store import Release, ReleaseStore

if TYPE_CHECKING:
    from datashare.spec import DatasetSpec

log = logging.getLogger(__name__)

EVENT = "release_withdrawn"


def withdrawn_versions(ledger: Ledger, dataset_id: str) -> dict[int, str]:
    """Withdrawn versions of a dataset and the reason given for each."""
    out: dict[int, str] = {}
    for entry in ledger.entries(dataset_id):
        body = entry.body
        if body.get("event") == EVENT and isinstance(body.get("version"), int):
            out[body["version"]] = str(body.get("reason", ""))
    return out


def newest_available(store: ReleaseStore, dataset_id: str, withdrawn: Collection[int]) -> Release | None:
    """The newest committed release that is not withdrawn: what consumers are served and runs build on."""
    for version in reversed(store.versions(dataset_id)):
        if version not in withdrawn:
            return store.release(dataset_id, version)
    return None


def withdraw(store: ReleaseStore, dataset_id: str, version: int, reason: str) -> Entry:
    """Withdraw a committed release: append the ledger entry; the files stay.

    Raises :class:`ReleaseError` when the reason is empty, the version was never committed, or it is
    already withdrawn.
    """
    reason = unicodedata.normalize("NFC", " ".join((reason or "").split()))
    if not reason:
        raise ReleaseError(f"withdrawing {dataset_id} v{version} needs a reason (non-empty text)")
    release = store.release(dataset_id, version)  # ReleaseError naming the release if it does not exist
    ledger = Ledger(store.backend)
    already = withdrawn_versions(ledger, dataset_id)
    if version in already:
        raise ReleaseError(f"{dataset_id} v{version} is already withdrawn (reason: {already[version]})")
    entry = ledger.append(
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
    ledger = Ledger(store.backend)
    found = []
    for spec in specs:
        if spec.source.kind != "derived" or dataset_id not in spec.source.inputs:
            continue
        served = newest_available(store, spec.id, withdrawn_versions(ledger, spec.id))
        if (
            served is not None
            and (served.manifest["datashare"].get("stats") or {}).get("inputs", {}).get(dataset_id) == version
        ):
            found.append(served)
    return found
