"""Errors of the datashare engine.

Every error names the thing at fault. ``retryable`` tells the orchestrator whether another try can
help (a source that refused a connection) or not (a malformed spec, a failed suite): the DAG factory
turns non-retryable errors into ``AirflowFailException`` so Airflow does not waste retries on them.
"""

from __future__ import annotations


class DatashareError(Exception):
    """Base of every error the engine raises on purpose."""

    retryable: bool = False


class SpecError(DatashareError):
    """A dataset spec is malformed: names the file, the field and what was expected."""


class SuiteError(DatashareError):
    """A Great Expectations suite file cannot be loaded."""


class SourceUnavailable(DatashareError):
    """The source database refused or dropped the connection; worth a retry."""

    retryable = True


class SourceError(DatashareError):
    """The source answered but the extraction cannot go on (missing table, bad query)."""


class ContractError(DatashareError):
    """The data does not match the spec's schema contract (missing column, changed type)."""


class TransformError(DatashareError):
    """A transform could not be applied; names the transform, column and value."""


class ValidationFailed(DatashareError):
    """The suite failed: nothing is published; the report is stored for auditors."""


class ReleaseError(DatashareError):
    """The release store refused an operation (conflict, missing release, tampered file)."""


class StoreUnavailable(ReleaseError):
    """The release store's server cannot be reached (refused, timed out, dropped); worth a retry."""

    retryable = True


class VersionConflict(ReleaseError):
    """Another writer committed or claimed the same version first."""

    retryable = True


class PublishError(DatashareError):
    """The SQL share could not be updated."""


class PublishBusy(PublishError):
    """Readers held the view longer than the lock timeout; worth a retry."""

    retryable = True


class ConfigError(DatashareError):
    """A connection or setting needed by the run is missing or malformed."""


class ExportRefused(DatashareError):
    """A download format cannot hold a release (e.g. more rows than an Excel sheet); says which other to use."""


class WebhookError(DatashareError):
    """A webhook subscription was refused (bad or forbidden URL, too many subscriptions) or cannot be delivered."""


class TargetRefused(WebhookError):
    """A well-formed webhook URL whose host may not be sent to: it has no address, or one we refuse."""


class ChangesError(DatashareError):
    """Two releases cannot be compared by key (a key column missing, a key that is not unique)."""
