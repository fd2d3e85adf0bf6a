"""HTTP tokens: expiry (new), revocation, and tokens issued before expiry existed."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from datashare.access import TOKENS, Recipient, Tokens, expired
from datashare.exceptions import ConfigError
from datashare.store.backends import LocalBackend

AGENCY = Recipient.model_validate(
    {"code": "agency_a", "name": {"vi": "Sở A", "en": "Department A"}, "contact": {"name": "A", "email": "a@x.vn"}}
)


@pytest.fixture
def tokens(tmp_path: Path) -> Tokens:
    return Tokens(LocalBackend(tmp_path))


def _record(tokens: Tokens) -> tuple[str, dict]:
    [key] = tokens.backend.list(TOKENS)
    return key, json.loads(tokens.backend.get_bytes(key))


def test_a_token_with_an_expiry_works_until_then(tokens: Tokens) -> None:
    until = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    token = tokens.issue(AGENCY, expires_at=until)

    assert tokens.lookup(token) == "agency_a"
    _, record = _record(tokens)
    assert record["expires_at"] == until.isoformat(timespec="seconds").replace("+00:00", "Z")
    assert expired(record, now=until) and not expired(record, now=until - dt.timedelta(seconds=1))


def test_an_expired_token_is_refused(tokens: Tokens) -> None:
    token = tokens.issue(AGENCY, expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
    assert tokens.lookup(token) is None


def test_tokens_issued_before_expiry_existed_keep_working(tokens: Tokens) -> None:
    token = tokens.issue(AGENCY)
    key, record = _record(tokens)
    assert "expires_at" not in record
    record.pop("revoked_at")  # the oldest records may lack fields added since
    tokens.backend.put_bytes(key, json.dumps(record).encode())
    assert tokens.lookup(token) == "agency_a"
    assert tokens.revoke("agency_a") == 1 and tokens.lookup(token) is None


@pytest.mark.parametrize("stamp", ["tomorrow", "2999-01-01T00:00:00", ""])
def test_an_unreadable_or_zoneless_expiry_is_not_a_licence_forever(stamp: str) -> None:
    assert expired({"expires_at": stamp}) is (stamp != "")


def test_an_expiry_needs_a_time_zone(tokens: Tokens) -> None:
    with pytest.raises(ConfigError, match="time zone"):
        tokens.issue(AGENCY, expires_at=dt.datetime(2030, 1, 1))
