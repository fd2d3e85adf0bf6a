"""Conditional and range answers for immutable files (RFC 9110 §13 and §14).

Remote readers (DuckDB's httpfs, pyarrow/fsspec over HTTP, GDAL) probe a file with ``HEAD``, then
read the Parquet footer and the row groups they need with single ``Range`` requests. What is served:

- ``HEAD``: the headers of the ``GET`` answer (``Content-Length``, ``ETag``, ``Accept-Ranges: bytes``)
  and no body;
- ``Range: bytes=a-b``, ``bytes=a-``, ``bytes=-n`` (one range): ``206`` with ``Content-Range``;
  a range starting past the end: ``416`` with ``Content-Range: bytes */<size>``;
- several ranges in one header, a unit other than ``bytes`` or a malformed specifier: the range is
  ignored and the whole file is sent with ``200`` (RFC 9110 §14.2 lets a server ignore ``Range``;
  it must ignore units it does not know). Remote readers send one range per request;
- ``If-None-Match`` matching the ``ETag``: ``304``; ``If-Range`` not matching it: the whole file.

ETags are strong, the file's SHA-256: releases are immutable, so equal tags mean equal bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from fastapi import Request
from fastapi.responses import Response, StreamingResponse
from starlette.background import BackgroundTask

CHUNK = 256 * 1024


class Unsatisfiable(Exception):
    """The range starts at or past the end of the file."""


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """The one byte range ``[start, end]`` (inclusive) a ``Range`` header asks for, or None to send everything.

    Raises :class:`Unsatisfiable` for a syntactically valid single range that selects no byte.
    """
    unit, sep, spec = header.partition("=")
    if not sep or unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    first, last = first.strip(), last.strip()
    if not dash or not (first.isdigit() or first == "") or not (last.isdigit() or last == "") or first == last == "":
        return None
    if first == "":  # suffix: the last n bytes
        length = int(last)
        if length == 0 or size == 0:
            raise Unsatisfiable()
        return max(0, size - length), size - 1
    start = int(first)
    if last and int(last) < start:
        return None  # invalid specifier: ignored
    if start >= size:
        raise Unsatisfiable()
    return start, min(int(last) if last else size - 1, size - 1)


def _tags(header: str) -> list[str]:
    return [t.strip().removeprefix("W/") for t in header.split(",") if t.strip()]


def _none_match(request: Request, etag: str) -> bool:
    header = request.headers.get("if-none-match")
    return header is not None and (header.strip() == "*" or etag in _tags(header))


def _range_applies(request: Request, etag: str) -> bool:
    """``If-Range``: only a strong ETag equal to ours keeps the range (we send no Last-Modified)."""
    condition = request.headers.get("if-range")
    return condition is None or condition.strip() == etag


def _chunks(path: Path, start: int, length: int) -> Iterator[bytes]:
    with path.open("rb") as f:
        f.seek(start)
        left = length
        while left > 0:
            chunk = f.read(min(CHUNK, left))
            if not chunk:
                raise OSError(f"{path} ended {left} bytes early")
            left -= len(chunk)
            yield chunk


def sha256_etag(sha256: str) -> str:
    """The strong ETag of a file with this SHA-256."""
    return f'"{sha256}"'


def file_response(
    request: Request,
    path: Path,
    *,
    etag: str,
    media_type: str,
    headers: dict[str, str],
    background: Callable[[], object] | None = None,
) -> Response:
    """``path`` answered as RFC 9110 asks for ``request``'s method, conditions and range."""
    size = path.stat().st_size
    base = {**headers, "Accept-Ranges": "bytes", "ETag": etag}
    task = BackgroundTask(background) if background else None
    if _none_match(request, etag):
        return Response(status_code=304, headers=base, background=task)
    status, start, length = 200, 0, size
    wanted = request.headers.get("range")
    if wanted is not None and _range_applies(request, etag):
        try:
            chosen = parse_range(wanted, size)
        except Unsatisfiable:
            return Response(status_code=416, headers={**base, "Content-Range": f"bytes */{size}"}, background=task)
        if chosen is not None:
            start, end = chosen
            status, length = 206, end - start + 1
            base["Content-Range"] = f"bytes {start}-{end}/{size}"
    base["Content-Length"] = str(length)
    if request.method == "HEAD":
        return Response(status_code=status, headers=base, media_type=media_type, background=task)
    return StreamingResponse(
        _chunks(path, start, length), status_code=status, headers=base, media_type=media_type, background=task
    )
