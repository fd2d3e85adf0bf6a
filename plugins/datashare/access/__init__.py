"""Recipients and who may read what: the registry, HTTP tokens, and the one access rule.

The registry (``config/recipients.yaml``) lists the agencies that receive data, without secrets. A
token is issued by CLI, shown once, and only its SHA-256 is stored (``_access/tokens/<sha256>.json``
in the release store), so a leaked store does not leak credentials. The access rule follows the Law on
Data 2024 classes:

| sharing | who may read |
|---|---|
| open | anyone, no credentials |
| shared | every active government recipient |
| restricted | only the recipients the dataset's spec names |
"""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from datashare.exceptions import ConfigError
from datashare.spec import IDENTIFIER, DatasetSpec, Sharing, Text
from datashare.store import Backend

TOKEN_PREFIX = "dsh_"
TOKENS = "_access/tokens"


class Contact(BaseModel):
    """Who to call at the recipient agency."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1, description="Contact person or desk.")
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", description="Contact e-mail.")
    phone: str | None = Field(default=None, description="Contact phone.")


class Recipient(BaseModel):
    """An agency that receives shared data."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    code: str = Field(pattern=IDENTIFIER, description="Agency code: names its SQL role and its tokens.")
    name: Text = Field(description="Agency name.")
    kind: Literal["government", "other"] = Field(
        default="government", description="government recipients read every 'shared' dataset."
    )
    contact: Contact
    active: bool = Field(default=True, description="An inactive recipient reads open data only.")


class Registry(BaseModel):
    """The recipients registry file."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    recipients: list[Recipient] = Field(default_factory=list)

    def get(self, code: str) -> Recipient | None:
        """The recipient with this code, if registered."""
        return next((r for r in self.recipients if r.code == code), None)


def load_registry(path: Path) -> Registry:
    """Load ``recipients.yaml``; errors name the file and the field."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        registry = Registry.model_validate(data)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the recipients registry: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    except ValidationError as exc:
        lines = [f"  - {'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise ConfigError(f"{path}: invalid recipients registry\n" + "\n".join(lines)) from None
    codes = [r.code for r in registry.recipients]
    dupes = sorted({c for c in codes if codes.count(c) > 1})
    if dupes:
        raise ConfigError(f"{path}: recipients: duplicate codes {dupes}")
    return registry


def check_spec_recipients(spec: DatasetSpec, registry: Registry) -> list[str]:
    """Recipients a spec names that the registry does not know."""
    return [code for code in spec.recipients if registry.get(code) is None]


def can_read(recipient: Recipient | None, spec: DatasetSpec) -> bool:
    """The access rule: ``recipient`` is None for an anonymous caller."""
    sharing = spec.classification.sharing
    if sharing == Sharing.open:
        return True
    if recipient is None or not recipient.active:
        return False
    if sharing == Sharing.shared:
        return recipient.kind == "government"
    return recipient.code in spec.recipients


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class Tokens:
    """HTTP tokens kept as hashes in the release store."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def issue(self, recipient: Recipient, expires_at: datetime | None = None) -> str:
        """A new token for a recipient; the plain token is returned once and never stored.

        ``expires_at`` (aware) ends the token's validity; None: valid until revoked (as every token
        issued before expiry existed, whose records have no ``expires_at``).
        """
        if expires_at is not None and expires_at.tzinfo is None:
            raise ConfigError("a token expiry must carry a time zone")
        token = f"{TOKEN_PREFIX}{recipient.code}_{secrets.token_urlsafe(32)}"
        record = {"recipient": recipient.code, "issued_at": _now(), "revoked_at": None, "id": _digest(token)[:12]}
        if expires_at is not None:
            record["expires_at"] = _stamp(expires_at)
        if not self.backend.put_if_absent(f"{TOKENS}/{_digest(token)}.json", _dumps(record)):
            raise ConfigError("token collision; issue again")  # 256 bits of randomness: practically impossible
        return token

    def lookup(self, token: str) -> str | None:
        """The recipient code of a valid token (not revoked, not expired), else None."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            return None
        key = f"{TOKENS}/{_digest(token)}.json"
        if not self.backend.exists(key):
            return None
        record = json.loads(self.backend.get_bytes(key))
        if record.get("revoked_at") or expired(record):
            return None
        return record["recipient"]

    def list(self, recipient: str | None = None) -> list[dict[str, Any]]:
        """Token records (no secrets), optionally of one recipient."""
        out = [json.loads(self.backend.get_bytes(k)) for k in self.backend.list(TOKENS)]
        return [r for r in out if recipient is None or r["recipient"] == recipient]

    def revoke(self, recipient: str, token_id: str | None = None) -> int:
        """Revoke one token (by id) or all of a recipient's tokens; returns how many were revoked."""
        count = 0
        for key in self.backend.list(TOKENS):
            record = json.loads(self.backend.get_bytes(key))
            if record["recipient"] != recipient or record.get("revoked_at"):
                continue
            if token_id is not None and record.get("id") != token_id:
                continue
            record["revoked_at"] = _now()
            self.backend.put_bytes(key, _dumps(record))
            count += 1
        return count


def expired(record: dict[str, Any], now: datetime | None = None) -> bool:
    """Whether a token record's ``expires_at`` has passed; a record without one never expires."""
    stamp = record.get("expires_at")
    if not stamp:
        return False
    try:
        until = datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    except ValueError:
        return True  # an expiry nobody can read is no licence to read forever
    if until.tzinfo is None:
        return True
    return (now or datetime.now(UTC)) >= until


def _stamp(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _dumps(obj: dict[str, Any]) -> bytes:
    return (json.dumps(obj, sort_keys=True, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
