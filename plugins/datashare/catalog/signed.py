"""Short-lived file URLs for Delta Sharing: presigned on S3, signed by the catalog on a local store.

Delta Sharing hands a client one URL per file, which the client reads directly (HTTP range requests,
no bearer token). On S3 that is a presigned GET. A local store has no such thing, so the catalog
signs the URL itself and serves it from :data:`ROUTE`::

    {base}/delta-sharing/files/{store key}?expires={unix seconds}&signature={hex HMAC-SHA256}

The HMAC covers the key and the expiry, so a URL cannot be stretched in time nor pointed at another
object, and it is checked on every request (``HEAD`` and ranges included). No token travels in the
URL: the signature is the only secret in it, and it opens one object until it expires. The key is
``DATASHARE_URL_SIGNING_KEY`` when set (hex, at least 32 bytes; give every catalog process the same),
else a random key kept in the store (``_access/url-signing.key``, made once, put-if-absent), which
every catalog process on the same store shares.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import time
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.background import BackgroundTask

from datashare.catalog.app import get_catalog
from datashare.catalog.downloads import FILE_HEADERS
from datashare.catalog.service import MEDIA_TYPES, Catalog
from datashare.exceptions import ConfigError, ReleaseError
from datashare.store.backends import check_key

log = logging.getLogger(__name__)

KEY_ENV = "DATASHARE_URL_SIGNING_KEY"
KEY_OBJECT = "_access/url-signing.key"
ROUTE = "/delta-sharing/files"
MIN_KEY_BYTES = 32

router = APIRouter(include_in_schema=False)


def signing_key(catalog: Catalog) -> bytes:
    """The deployment's URL-signing key (from the environment, else made once in the store)."""
    cached = getattr(catalog, "_url_signing_key", None)
    if cached is not None:
        return cached
    text = os.environ.get(KEY_ENV, "").strip()
    if text:
        try:
            key = bytes.fromhex(text)
        except ValueError:
            raise ConfigError(f"{KEY_ENV} must be hex") from None
        if len(key) < MIN_KEY_BYTES:
            raise ConfigError(f"{KEY_ENV} must hold at least {MIN_KEY_BYTES} bytes (64 hex digits)")
    else:
        backend = catalog.store.backend
        backend.put_if_absent(KEY_OBJECT, secrets.token_hex(MIN_KEY_BYTES).encode())  # the first one wins
        key = bytes.fromhex(backend.get_bytes(KEY_OBJECT).decode().strip())
    catalog._url_signing_key = key  # type: ignore[attr-defined]
    return key


def _signature(key: bytes, object_key: str, expires: int) -> str:
    return hmac.new(key, f"{object_key}\n{expires}".encode(), hashlib.sha256).hexdigest()


def file_url(catalog: Catalog, request: Request, object_key: str) -> str:
    """A URL a client can read ``object_key`` from for the next ``sharing_url_ttl_s`` seconds."""
    ttl = catalog.settings.sharing_url_ttl_s
    presign = getattr(catalog.store.backend, "presigned_url", None)
    if callable(presign):
        return str(presign(object_key, ttl))
    expires = int(time.time()) + ttl
    signature = _signature(signing_key(catalog), object_key, expires)
    base = str(request.base_url).rstrip("/")
    return f"{base}{ROUTE}/{quote(object_key)}?expires={expires}&signature={signature}"


def _refuse(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"errorCode": code, "message": message}, status_code=status, headers=dict(FILE_HEADERS))


@router.api_route(ROUTE + "/{object_key:path}", methods=["GET", "HEAD"])
def signed_file(
    object_key: str,
    catalog: Annotated[Catalog, Depends(get_catalog)],
    expires: Annotated[str, Query(max_length=20)] = "",
    signature: Annotated[str, Query(max_length=64)] = "",
) -> Response:
    """A store object whose URL the catalog signed and which has not expired; 403 otherwise."""
    if not expires.isdigit() or len(signature) != 64:
        return _refuse(403, "PERMISSION_DENIED", "This file URL is not signed.")
    if int(expires) < time.time():
        return _refuse(403, "PERMISSION_DENIED", "This file URL has expired; query the table again for a new one.")
    try:
        key = check_key(object_key)
        expected = _signature(signing_key(catalog), key, int(expires))
    except ReleaseError:
        return _refuse(403, "PERMISSION_DENIED", "This file URL is not signed.")
    if not hmac.compare_digest(expected, signature.lower()):
        log.warning("Refused a file URL with a wrong signature for %r", object_key[:200])
        return _refuse(403, "PERMISSION_DENIED", "This file URL is not signed.")
    backend = catalog.store.backend
    if not backend.exists(key):
        return _refuse(404, "RESOURCE_DOES_NOT_EXIST", "The file no longer exists.")
    local = backend.local_path(key)
    background: Any = None
    if local is None:  # a backend with neither presigning nor local files: copy, then serve
        import tempfile

        fd, tmp = tempfile.mkstemp(prefix="datashare-signed-", suffix=Path(key).suffix)
        os.close(fd)
        backend.download(key, Path(tmp))
        local = Path(tmp)
        background = BackgroundTask(local.unlink, missing_ok=True)
    return FileResponse(
        local,
        media_type=MEDIA_TYPES.get(Path(key).suffix, "application/octet-stream"),
        headers=dict(FILE_HEADERS),
        background=background,
    )
