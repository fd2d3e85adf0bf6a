"""Personal data (Decree 13/2023/NĐ-CP): pseudonymise or mask before anything is published.

Pseudonyms are keyed HMAC-SHA256 tokens: the same input gives the same token, so datasets can still be
joined on them, but without the key nobody can recompute a token from a guessed ID number (12-digit
citizen IDs have little entropy, so a plain hash would be reversible by enumeration). The key comes
from the environment or an Airflow connection, never from the repository.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import unicodedata

import pyarrow as pa

KEY_ENV = "DATASHARE_PSEUDONYM_KEY"
KEY_CONN_ID = "datashare_pseudonym_key"
TOKEN_HEX_CHARS = 32


class PseudonymKeyMissing(RuntimeError):
    """No pseudonymisation key is configured."""


def pseudonym_key() -> bytes:
    """The HMAC key: ``DATASHARE_PSEUDONYM_KEY``, else the password of connection ``datashare_pseudonym_key``."""
    value = os.environ.get(KEY_ENV)
    if not value:
        from datashare.sdk import secret

        value = secret(KEY_CONN_ID)
    if not value or len(value) < 16:
        raise PseudonymKeyMissing(
            f"personal data must be pseudonymised but no key of 16+ characters is set: define {KEY_ENV} "
            f"or the password of Airflow connection {KEY_CONN_ID!r}"
        )
    return value.encode("utf-8")


def pseudonymise_value(value: str | None, key: bytes) -> str | None:
    """Token of one value (NFC, trimmed): 32 hex characters of HMAC-SHA256."""
    if value is None:
        return None
    text = unicodedata.normalize("NFC", str(value).strip())
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()[:TOKEN_HEX_CHARS]


def mask_value(value: str | None) -> str | None:
    """Initials only: 'Nguyễn Văn An' -> 'N. V. A.'."""
    if value is None:
        return None
    words = unicodedata.normalize("NFC", str(value)).split()
    return " ".join(f"{w[0]}." for w in words) if words else ""


def pseudonymise_array(array: pa.Array, key: bytes) -> pa.Array:
    """Tokens for a column of any type (values are compared as text)."""
    return pa.array([pseudonymise_value(None if v is None else str(v), key) for v in array.to_pylist()], pa.string())


def mask_array(array: pa.Array) -> pa.Array:
    """Initials for a text column."""
    return pa.array([mask_value(v) for v in array.to_pylist()], pa.string())
