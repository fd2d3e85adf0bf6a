"""Typed references the stages hand each other: small, JSON-serialisable, never data, never a host path.

Airflow carries them through XCom as JSON (``to_json``/``from_json``); the CLI passes the objects
themselves. Files are :class:`~datashare.store.staging.StagedFile` keys in the release store.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, TypeVar

from datashare.store.staging import StagedFile

R = TypeVar("R", bound="Ref")


class Ref:
    """JSON round trip shared by the references (StagedFile fields and lists of them included)."""

    def to_json(self) -> dict[str, Any]:
        """The reference as JSON for XCom."""
        out: dict[str, Any] = {}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if isinstance(value, StagedFile):
                value = value.to_json()
            elif isinstance(value, tuple) and value and isinstance(value[0], StagedFile):
                value = [v.to_json() for v in value]
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    @classmethod
    def of(cls: type[R], value: R | dict[str, Any]) -> R:
        """The reference itself, or read back from its JSON."""
        if isinstance(value, cls):
            return value
        if not isinstance(value, dict):
            raise TypeError(f"{cls.__name__}: expected a reference or its JSON, got {type(value).__name__}")
        kwargs: dict[str, Any] = {}
        for f in fields(cls):  # type: ignore[arg-type]
            if f.name not in value:
                continue
            item = value[f.name]
            if f.name in cls._staged_fields() and item is not None:
                item = StagedFile.from_json(item)
            elif f.name in cls._staged_lists():
                item = tuple(StagedFile.from_json(v) for v in item or [])
            elif isinstance(item, list):
                item = tuple(item)
            kwargs[f.name] = item
        return cls(**kwargs)

    @classmethod
    def _staged_fields(cls) -> frozenset[str]:
        return frozenset()

    @classmethod
    def _staged_lists(cls) -> frozenset[str]:
        return frozenset()


@dataclass(frozen=True)
class Extracted(Ref):
    """What extraction staged (or a derived dataset built), for the transform and commit stages."""

    files: tuple[StagedFile, ...]
    rows: int
    cursor_from: Any = None
    """The cursor the run read past (the base release's), or None."""
    cursor_max: Any = None
    """The largest cursor value read, or None."""
    ignored_columns: tuple[str, ...] = ()
    base_version: int | None = None
    inputs: dict[str, int] | None = None
    """Derived datasets: the release of each input it was built from."""

    @classmethod
    def _staged_lists(cls) -> frozenset[str]:
        return frozenset({"files"})


@dataclass(frozen=True)
class Transformed(Ref):
    """The transformed file (None when an incremental run found nothing new)."""

    file: StagedFile | None
    rows: int
    duplicates_dropped: int = 0
    conflicts_dropped: int = 0

    @classmethod
    def _staged_fields(cls) -> frozenset[str]:
        return frozenset({"file"})


@dataclass(frozen=True)
class Validated(Ref):
    """The file that passed the suite (quarantined rows set aside), its summary and the evidence files."""

    skipped: bool
    file: StagedFile | None = None
    rows: int = 0
    summary: dict[str, Any] | None = None
    report: str | None = None
    """Store key of the run's report (``<id>/_validation/<run>/report.html``)."""
    evidence: tuple[StagedFile, ...] = field(default=())
    """``report.html`` and ``result.json`` of the run, sealed into the release's manifest."""

    @classmethod
    def _staged_fields(cls) -> frozenset[str]:
        return frozenset({"file"})

    @classmethod
    def _staged_lists(cls) -> frozenset[str]:
        return frozenset({"evidence"})


@dataclass(frozen=True)
class Committed(Ref):
    """The release the run committed, or the one that stays latest (and why)."""

    version: int
    created: bool
    rows: int
    manifest_sha256: str
    reason: str | None = None


__all__ = ["Committed", "Extracted", "Ref", "StagedFile", "Transformed", "Validated", "asdict"]
