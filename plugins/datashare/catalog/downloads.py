"""Sending a release file that passed the access check, and recording that it was sent.

Every served download appends a ``download_served`` ledger entry (dataset, version, file, recipient
code or ``anonymous``; never the token) before any byte leaves. A local store sends the file from
disk; an object store that can presign redirects to a short-lived URL; any other backend is copied
to a temporary file and streamed.
"""

from __future__ import annotations

import base64
import logging
import os
import tempfile
from pathlib import Path

from fastapi.responses import FileResponse, RedirectResponse, Response
from starlette.background import BackgroundTask

from datashare.catalog.auth import Caller
from datashare.catalog.service import Catalog, ServedFile

log = logging.getLogger(__name__)

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


def send(catalog: Catalog, caller: Caller, served: ServedFile) -> Response:
    """Record the download in the ledger, then answer with the file (or a presigned redirect)."""
    catalog.ledger.append(
        "download_served",
        dataset_id=served.dataset_id,
        version=served.version,
        file=served.name,
        recipient=caller.code,
    )
    log.info("Serving %s v%s %s to %s", served.dataset_id, served.version, served.name, caller.code)
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
