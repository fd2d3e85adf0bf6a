"""How the store writes and reads its small JSON objects: canonical bytes in, checked objects out."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from datashare.exceptions import ReleaseError


def dumps(obj: Any) -> bytes:
    """Canonical JSON bytes: sorted keys, UTF-8, trailing newline; what we hash is what we store."""
    return (json.dumps(obj, sort_keys=True, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of bytes."""
    return hashlib.sha256(data).hexdigest()


def parse_object(data: bytes, where: str) -> dict[str, Any]:
    """A JSON object from stored bytes; ``ReleaseError`` naming ``where`` if it is not UTF-8 JSON of an object."""
    try:
        body = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ReleaseError(f"{where} is not UTF-8 text (byte {exc.start}): unreadable, edited or corrupted") from None
    except ValueError as exc:
        raise ReleaseError(f"{where} is not valid JSON ({exc}): unreadable, edited or corrupted") from None
    if not isinstance(body, dict):
        raise ReleaseError(f"{where} is not a JSON object: edited or corrupted")
    return body
