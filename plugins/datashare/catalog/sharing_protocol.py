"""The Delta Sharing protocol on the wire: errors, response lines, request bodies and parameters, time.

What PROTOCOL.md fixes and our server must say exactly so (:mod:`datashare.catalog.sharing` decides
what a recipient may read): the error object (``errorCode``, ``message``) for every refusal, including
FastAPI's own validation errors; newline-delimited JSON answers with the ``Delta-Table-Version`` header;
the ``/query`` body, read with a size cap and checked field by field; integer query parameters; and the
protocol's timestamps (``yyyy-[m]m-[d]d hh:mm:ss[.f...]`` in the server's zone, or ISO 8601 with one).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from datashare.catalog.service import CatalogError, Unauthorized
from datashare.exceptions import DatashareError

log = logging.getLogger(__name__)

NDJSON = "application/x-ndjson; charset=utf-8"
VERSION_HEADER = "Delta-Table-Version"
CAPABILITIES_HEADER = "Delta-Sharing-Capabilities"


class SharingError(Exception):
    """An answer other than 200 in the protocol's error format."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def bad_request(message: str) -> SharingError:
    """A malformed request (400), with what is wrong."""
    return SharingError(400, "INVALID_PARAMETER_VALUE", message)


def not_shared() -> SharingError:
    """404: unknown, or not granted to the caller; the same answer on purpose."""
    return SharingError(404, "RESOURCE_DOES_NOT_EXIST", "No such share, schema or table, or it is not shared with you.")


def error_code(status: int) -> str:
    """The protocol's ``errorCode`` for a refusal known only by its status (the catalog's, the limits')."""
    if status == 401:
        return "UNAUTHENTICATED"
    if status == 404:
        return "RESOURCE_DOES_NOT_EXIST"
    return "INTERNAL_ERROR" if status >= 500 else "INVALID_PARAMETER_VALUE"


def error_body(status: int, message: str) -> dict[str, str]:
    """The protocol's error object, for refusals made before a sharing route runs (unknown path, limits)."""
    return {"errorCode": error_code(status), "message": message}


def _answer(exc: SharingError, retry_after: int | None = None) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'} if exc.status == 401 else {}
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return JSONResponse({"errorCode": exc.code, "message": exc.message}, status_code=exc.status, headers=headers)


class SharingRoute(APIRoute):
    """Routes whose every refusal (ours, FastAPI's validation, the catalog's) is a protocol error."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except SharingError as exc:
                log.warning(
                    "Delta Sharing %s %s refused with %s: %s", request.method, request.url.path, exc.status, exc.message
                )
                return _answer(exc)
            except Unauthorized:
                log.warning("Delta Sharing %s %s refused: invalid token", request.method, request.url.path)
                return _answer(SharingError(401, "UNAUTHENTICATED", "The bearer token is invalid, expired or revoked."))
            except CatalogError as exc:  # a rate limit (429) keeps its Retry-After
                error = SharingError(exc.status, error_code(exc.status), exc.detail)
                return _answer(error, getattr(exc, "retry_after", None))
            except RequestValidationError as exc:
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}" for e in exc.errors()
                )
                return _answer(bad_request(f"Invalid request: {problems[:500]}"))
            except StarletteHTTPException as exc:
                return _answer(SharingError(exc.status_code, "INVALID_PARAMETER_VALUE", str(exc.detail)))
            except DatashareError as exc:  # the store or the change engine refused: say what, keep the status honest
                log.error("Delta Sharing %s %s failed: %s", request.method, request.url.path, exc)
                return _answer(SharingError(500, "INTERNAL_ERROR", "The server could not read the table."))

        return guarded


class ProtocolError(BaseModel):
    """The protocol's error answer."""

    errorCode: str = Field(description="INVALID_PARAMETER_VALUE, UNAUTHENTICATED, RESOURCE_DOES_NOT_EXIST...")
    message: str


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ProtocolError, "description": "Malformed request."},
    401: {"model": ProtocolError, "description": "No bearer token, or one that is invalid, expired or revoked."},
    404: {"model": ProtocolError, "description": "No such share, schema, table or version, or not shared with you."},
    500: {"model": ProtocolError, "description": "The server could not read the table."},
}


def _params(*specs: tuple[str, dict[str, Any], str]) -> dict[str, Any]:
    """OpenAPI query parameters of a route that reads them itself (to answer bad ones in the protocol's format)."""
    return {
        "parameters": [
            {"name": name, "in": "query", "required": False, "schema": schema, "description": text}
            for name, schema, text in specs
        ]
    }


MAX_PAGE_PARAM = 10**9
"""Largest ``maxResults`` read (pages hold at most 1000 items whatever is asked)."""
MAX_VERSION_DIGITS = 18
"""Longest version number read from a query string (anything longer is no version of ours)."""
TIMESTAMP: dict[str, Any] = {
    "type": "string",
    "format": "date-time",
    "description": "RFC 3339 (ISO 8601 with a zone); the protocol's yyyy-[m]m-[d]d hh:mm:ss[.f], read in "
    "the server's zone, is accepted too.",
}
VERSION: dict[str, Any] = {"type": "integer", "minimum": 0, "maximum": 10**MAX_VERSION_DIGITS - 1}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema, or JSON null (the /query body's fields may be null: the same as absent)."""
    return {**schema, "type": [schema["type"], "null"]}


PAGING = _params(
    ("maxResults", {"type": "integer", "minimum": 0, "maximum": MAX_PAGE_PARAM}, "Items per page (at most 1000)."),
    ("pageToken", {"type": "string"}, "nextPageToken of the previous page."),
)


VERSION_PARAMS = _params(
    ("startingTimestamp", TIMESTAMP, "The first version committed at or after this time."),
)


CHANGES_PARAMS = _params(
    ("startingVersion", VERSION, "First version, inclusive."),
    ("startingTimestamp", TIMESTAMP, "Or: the first version committed at or after this time."),
    ("endingVersion", VERSION, "Last version, inclusive (default: the newest)."),
    ("endingTimestamp", TIMESTAMP, "Or: the last version committed at or before this time."),
    ("includeHistoricalMetadata", {"type": "boolean"}, "Also the metadata of versions whose schema changed."),
)


QUERY_BODY = {
    "requestBody": {
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "predicateHints": _nullable({"type": "array", "items": {"type": "string"}}),
                        "jsonPredicateHints": _nullable({"type": "string"}),
                        "limitHint": _nullable({"type": "integer", "minimum": 0}),
                        "version": _nullable({"type": "integer", "minimum": 0}),
                        "timestamp": _nullable(TIMESTAMP),
                    },
                    "not": {
                        "anyOf": [  # what QueryBody.parse refuses although each field alone is fine
                            {"required": ["startingVersion"]},
                            {"required": ["endingVersion"]},
                            {
                                "required": ["version", "timestamp"],
                                "properties": {"version": {"type": "integer"}, "timestamp": {"type": "string"}},
                            },
                        ]
                    },
                }
            }
        }
    }
}


def parse_timestamp(text: str) -> datetime:
    """A protocol timestamp (``yyyy-[m]m-[d]d hh:mm:ss[.f...]``, the server's local zone) or ISO 8601 with a zone."""
    raw = text.strip()
    try:
        parts = raw.replace("T", " ").split(" ", 1)
        y, m, d = parts[0].split("-")
        normal = f"{int(y):04d}-{int(m):02d}-{int(d):02d}" + (f"T{parts[1]}" if len(parts) > 1 else "")
        when = datetime.fromisoformat(normal.replace("Z", "+00:00"))
        when = when if when.tzinfo is not None else when.astimezone()  # naive: the server's local time
        when.timestamp()
    except (ValueError, OverflowError, OSError):
        raise bad_request(f"not a timestamp: {raw[:40]!r} (expected yyyy-mm-dd hh:mm:ss[.f], or ISO 8601)") from None
    return when


def ndjson_lines(*objects: dict[str, Any]) -> str:
    """Objects as the protocol's newline-delimited JSON, one compact object a line."""
    return "".join(json.dumps(o, ensure_ascii=False, separators=(",", ":")) + "\n" for o in objects)


def ndjson_response(body: str, version: int) -> Response:
    """An ndjson answer with the table version header; always the parquet response format (no Delta log)."""
    return Response(
        body,
        media_type=NDJSON,
        headers={VERSION_HEADER: str(version), CAPABILITIES_HEADER: "responseformat=parquet"},
    )


PROTOCOL = {"protocol": {"minReaderVersion": 1}}
"""The first line of every table answer: plain Parquet files, no reader features needed."""


def _whole(body: dict[str, Any], name: str) -> int | None:
    """A non-negative whole number of the body, None when absent or null; ``5.0`` is 5, as JSON Schema reads it."""
    value = body.get(name)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise bad_request(f"{name} must be a non-negative whole number")
    return value


@dataclass(frozen=True)
class QueryBody:
    """The ``/query`` request body, checked field by field."""

    predicate_hints: list[str]
    json_predicate_hints: Any
    limit_hint: int | None
    version: int | None
    timestamp: str | None

    @classmethod
    def parse(cls, raw: bytes) -> QueryBody:
        try:
            body = json.loads(raw or b"{}")
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise bad_request("the request body is not JSON") from None
        if not isinstance(body, dict):
            raise bad_request("the request body must be a JSON object")
        unsupported = sorted(set(body) & {"startingVersion", "endingVersion"})
        if unsupported:
            raise bad_request(f"{', '.join(unsupported)} on /query is not served here: read changes from /changes")
        hints = body.get("predicateHints")
        hints = [] if hints is None else hints
        if not isinstance(hints, list) or not all(isinstance(h, str) for h in hints):
            raise bad_request("predicateHints must be a list of strings")
        json_hint, raw_hint = None, body.get("jsonPredicateHints")
        if raw_hint is not None and not isinstance(raw_hint, str):
            raise bad_request("jsonPredicateHints must be a string (the predicate as JSON text)")
        if raw_hint:
            try:  # a hint: one we cannot read is skipped, as the protocol says
                json_hint = json.loads(raw_hint)
            except (ValueError, RecursionError):
                log.info("Skipping jsonPredicateHints that are not JSON")
        limit, version = _whole(body, "limitHint"), _whole(body, "version")
        timestamp = body.get("timestamp")
        if timestamp is not None and not isinstance(timestamp, str):
            raise bad_request("timestamp must be a string")
        if version is not None and timestamp is not None:
            raise bad_request("give either version or timestamp, not both")
        return cls(hints, json_hint, limit, version, timestamp)


MAX_BODY = 1 << 20


async def read_body(request: Request) -> bytes:
    """The request body, refused past 1 MiB without reading the rest (a query body is a few hints)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise bad_request("the request body is larger than 1 MiB")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise bad_request("the request body is larger than 1 MiB")
        chunks.append(chunk)
    return b"".join(chunks)


def int_param(request: Request, name: str) -> int | None:
    """A non-negative integer query parameter, None when absent; 400 in the protocol's format otherwise."""
    raw = request.query_params.get(name)
    if raw is None:
        return None
    if not raw.isdigit() or len(raw) > MAX_VERSION_DIGITS:
        raise bad_request(f"{name} must be a non-negative whole number, got {raw[:20]!r}")
    return int(raw)
