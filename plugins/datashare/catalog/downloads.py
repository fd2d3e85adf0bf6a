"""Sending a release file that passed the access check, and recording that it was sent.

:func:`record_download` is what every kind of download calls before it answers: it spends one of the
caller's downloads (429 with ``Retry-After`` past the limit, see :mod:`datashare.catalog.limits`) and
writes an entry to the access log (:mod:`datashare.accesslog`: dataset, version, file, recipient code or
``anonymous``; never the token), not to the audit ledger, which anonymous traffic must not grow.
:func:`send` then answers with the file: a local store sends it from disk; an object store that can
presign redirects to a short-lived URL; any other backend is copied to a temporary file and streamed.
"""

from __future__ import annotations

import base64
import logging
import os
import tempfile
from pathlib import Path
from typing import Protocol

from fastapi.responses import FileResponse, RedirectResponse, Response
from starlette.background import BackgroundTask

from datashare.accesslog import AccessLogUnavailable
from datashare.catalog.auth import Caller
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


def download_name(served: ServedFile) -> str:
    """File name offered to the browser: the dataset and version first, so downloads never collide."""
    return f"{served.dataset_id}-v{served.version}-{served.name.replace('/', '-')}"


def _headers(served: ServedFile) -> dict[str, str]:
    headers = dict(FILE_HEADERS)
    if served.sha256:
        headers["Repr-Digest"] = f"sha-256=:{base64.b64encode(bytes.fromhex(served.sha256)).decode()}:"
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


def send(catalog: Catalog, caller: Caller, served: ServedFile) -> Response:
    """Record the download (:func:`record_download`), then answer with the file (or a presigned redirect)."""
    record_download(catalog, caller, served)
    backend = catalog.store.backend
    presign = getattr(backend, "presigned_url", None)
    if callable(presign):
        return RedirectResponse(presign(served.key, PRESIGN_EXPIRES_S), status_code=307, headers=FILE_HEADERS)
    inline = not served.name.endswith(".parquet")
    disposition = "inline" if inline else "attachment"
    local = backend.local_path(served.key)
    background = None
    if local is None:
        fd, tmp = tempfile.mkstemp(prefix="datashare-download-", suffix=Path(served.name).suffix)
        os.close(fd)
        backend.download(served.key, Path(tmp))
        local = Path(tmp)
        background = BackgroundTask(local.unlink, missing_ok=True)
    return FileResponse(
        local,
        media_type=served.media_type,
        filename=download_name(served),
        content_disposition_type=disposition,
        headers=_headers(served),
        background=background,
    )
