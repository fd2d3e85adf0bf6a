"""Sending a file that passed the access check, and recording that it was sent.

:func:`record_download` is what every kind of download calls before data leaves: it spends one of the
caller's downloads (429 with ``Retry-After`` past the limit, see :mod:`datashare.catalog.limits`) and
writes an entry to the access log (:mod:`datashare.access.log`: dataset, version, file, recipient code or
``anonymous``; never the token), not to the audit ledger, which anonymous traffic must not grow.
:func:`respond` builds the answer.
:func:`send` does both for a ``GET`` whose answer carries data (200, 206, or a redirect to it); a
``HEAD``, a ``304`` or a ``416`` sends no data and is not recorded.

A local store sends the file from disk with ``HEAD``, ``Range`` and ``ETag`` support
(:mod:`datashare.catalog.ranges`); an object store that can presign redirects a ``GET`` to a
short-lived URL (the object store answers ranges itself) and answers ``HEAD`` here, since a URL
presigned for ``GET`` refuses ``HEAD``; any other backend is copied to a temporary file and streamed.
"""

from __future__ import annotations

import base64
import logging
import os
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Protocol
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from datashare.access.log import AccessLogUnavailable
from datashare.catalog.auth import Caller
from datashare.catalog.ranges import file_response, sha256_etag
from datashare.catalog.service import Catalog, CatalogError, ServedFile

log = logging.getLogger(__name__)


class Unavailable(CatalogError):
    """The download could not be recorded, so it is not served: 503, worth a retry."""

    status = 503
    key = "unavailable"

    def __init__(self) -> None:
        super().__init__("The download cannot be recorded right now, so it was not served; try again shortly.")


class DownloadRecord(Protocol):
    """What a download names: a release file, or anything another download kind serves of a release."""

    @property
    def dataset_id(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def name(self) -> str: ...


PRESIGN_EXPIRES_S = 300
FILE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    # A report opened from the catalog may show, never run anything or load anything.
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; sandbox",
    "Cache-Control": "private, no-store",
}
INLINE_SUFFIXES = (".json", ".html", ".txt")
_DIGESTS: dict[tuple[str, str], str] = {}
_DIGESTS_MAX = 4096


def download_name(served: ServedFile) -> str:
    """File name offered to the browser: the dataset and version first, so downloads never collide."""
    if served.filename:
        return served.filename
    return f"{served.dataset_id}-v{served.version}-{served.name.replace('/', '-')}"


def _disposition(served: ServedFile) -> str:
    kind = "inline" if served.name.endswith(INLINE_SUFFIXES) else "attachment"
    name = download_name(served)
    quoted = quote(name)
    return f'{kind}; filename="{name}"' if quoted == name else f"{kind}; filename*=utf-8''{quoted}"


def _sha256(catalog: Catalog, served: ServedFile) -> str:
    """The file's SHA-256: from the manifest or export record, else hashed once (release files never change)."""
    if served.sha256:
        return served.sha256
    cache_key = (catalog.settings.release_uri, served.key)
    digest = _DIGESTS.get(cache_key)
    if digest is None:
        digest = catalog.store.backend.sha256(served.key)
        if len(_DIGESTS) >= _DIGESTS_MAX:
            _DIGESTS.pop(next(iter(_DIGESTS)))
        _DIGESTS[cache_key] = digest
    return digest


def _headers(served: ServedFile, sha256: str) -> dict[str, str]:
    headers = {**FILE_HEADERS, "Content-Disposition": _disposition(served), **served.headers}
    headers["Repr-Digest"] = f"sha-256=:{base64.b64encode(bytes.fromhex(sha256)).decode()}:"
    return headers


def record_download(catalog: Catalog, caller: Caller, served: DownloadRecord) -> None:
    """Admit a download under the caller's rate limit, then record it in the access log.

    Raises :class:`~datashare.catalog.limits.RateLimited` (429) past the limit, before anything is
    recorded or sent. A recipient's download is written to the store before this returns; if the store
    refuses, :class:`Unavailable` (503) and the file must not be sent. An anonymous one is batched.
    """
    catalog.limits.downloads.spend(caller.key)
    details = {"address": caller.address} if caller.recipient is not None else {}
    try:
        catalog.access_log.record(
            flush=caller.recipient is not None,
            dataset_id=served.dataset_id,
            version=served.version,
            file=served.name,
            recipient=caller.code,
            via=caller.via,
            **details,
        )
    except AccessLogUnavailable as exc:
        log.error("Download of %s v%s %s by %s not served: %s", served.dataset_id, served.version, served.name,
                  caller.code, exc)  # fmt: skip
        raise Unavailable() from exc
    log.info("Serving %s v%s %s to %s", served.dataset_id, served.version, served.name, caller.code)


def respond(catalog: Catalog, served: ServedFile, request: Request) -> Response:
    """The answer for a checked file: from disk with ranges, a presigned redirect, or a streamed copy."""
    backend = catalog.store.backend
    sha256 = _sha256(catalog, served)
    served = replace(served, sha256=sha256)
    headers = _headers(served, sha256)
    etag = sha256_etag(sha256)
    presign = getattr(backend, "presigned_url", None)
    if callable(presign):
        if request.method == "HEAD":
            size = str(backend.size(served.key))
            head = {**headers, "Accept-Ranges": "bytes", "ETag": etag, "Content-Length": size}
            return Response(status_code=200, headers=head, media_type=served.media_type)
        return RedirectResponse(presign(served.key, PRESIGN_EXPIRES_S), status_code=307, headers=FILE_HEADERS)
    local = backend.local_path(served.key)
    cleanup = None
    if local is None:
        fd, tmp = tempfile.mkstemp(prefix="datashare-download-", suffix=Path(served.name).suffix)
        os.close(fd)
        local = Path(tmp)
        backend.download(served.key, local)
        cleanup = lambda: local.unlink(missing_ok=True)  # noqa: E731
    return file_response(request, local, etag=etag, media_type=served.media_type, headers=headers, background=cleanup)


def send(catalog: Catalog, caller: Caller, served: ServedFile, request: Request) -> Response:
    """Answer a download request; a ``GET`` that sends data is recorded first."""
    response = respond(catalog, served, request)
    if request.method == "GET" and response.status_code in (200, 206, 307):
        try:
            record_download(catalog, caller, served)
        except BaseException:
            if response.background is not None:  # remove the temporary copy of a remote file
                task = response.background
                task.func(*task.args, **task.kwargs)
            raise
    return response
