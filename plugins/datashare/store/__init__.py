"""The release store: immutable numbered releases, the hash-chained ledger, and the auditor's check.

Everything the rest of the engine needs is imported from here; the modules' underscore names stay
inside this package.

- :mod:`.backends` and :mod:`.s3`: the object operations (local folder, S3-compatible storage);
- :mod:`.releases`: the commit protocol, per-dataset state, claims, tombstones, withdrawal markers;
- :mod:`.ledger`: the audit chain; :mod:`.manifest`: ``datapackage.json``;
- :mod:`.withdrawals`, :mod:`.audit`: withdrawing a release, verifying and repairing the store;
- :mod:`.staging`: what one task hands the next, as keys in the store.
"""

from datashare.store.audit import audit, repair
from datashare.store.backends import Backend, LocalBackend, RangedReader, check_key, sha256_file
from datashare.store.codec import dumps, parse_object, sha256_bytes
from datashare.store.ledger import Anchor, Entry, Ledger
from datashare.store.releases import (
    CommitPlan,
    CommitResult,
    DataFile,
    DatasetState,
    Finding,
    OpensStore,
    Release,
    ReleaseStore,
)
from datashare.store.withdrawals import built_on, newest_available, withdraw, withdrawn_versions

__all__ = [
    "Anchor",
    "Backend",
    "CommitPlan",
    "CommitResult",
    "DataFile",
    "DatasetState",
    "Entry",
    "Finding",
    "Ledger",
    "LocalBackend",
    "OpensStore",
    "RangedReader",
    "Release",
    "ReleaseStore",
    "audit",
    "built_on",
    "check_key",
    "dumps",
    "newest_available",
    "parse_object",
    "repair",
    "sha256_bytes",
    "sha256_file",
    "withdraw",
    "withdrawn_versions",
]
