"""A Delta Sharing server over our releases, under ``/delta-sharing`` in the catalog.

It follows the protocol's PROTOCOL.md (REST APIs, parquet response format): data platforms (pandas,
Spark, Power BI's connector...) read what a recipient is granted with their own Delta Sharing client.

| Delta Sharing | here |
|---|---|
| recipient | a registered agency, by its bearer token (``datashare grant --profile``) |
| share | what the recipient is granted: one share, named by the agency's code |
| schema | a sector (``land``, ``environment_monitoring``...) |
| table | a dataset with at least one visible release |
| table version | a release number; ``version`` / ``timestamp`` read an older release |
| change data feed | derived from consecutive releases by key (:mod:`datashare.changes`) |

Access goes through the catalog's :class:`~datashare.catalog.service.Reader`, so the rule is the
catalog's (open + shared + the agency's restricted datasets) and a withdrawn release does not exist
here: not as a version, not in the change feed (changes skip over it, from the release before to the
one after). A table the caller may not read answers 404 exactly like one that does not exist. Files
are handed out as short-lived URLs (:mod:`datashare.catalog.signed`). Errors are the protocol's JSON
(``errorCode``, ``message``); a request the protocol allows but we do not serve (``startingVersion``
on ``/query``, a response in Delta format) gets a clear 400 or the parquet format, never a silent
half-answer.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from datashare.access import Recipient
from datashare.catalog.app import base_path, get_catalog
from datashare.catalog.auth import check_token
from datashare.catalog.hints import StatsCache, may_match
from datashare.catalog.service import Catalog, CatalogError, Reader, Unauthorized
from datashare.catalog.signed import file_url
from datashare.changes import ChangeSet, compare, table_schema_fields
from datashare.exceptions import DatashareError
from datashare.spec import DatasetSpec
from datashare.store import Release

log = logging.getLogger(__name__)

PREFIX = "/delta-sharing"
NDJSON = "application/x-ndjson; charset=utf-8"
VERSION_HEADER = "Delta-Table-Version"
CAPABILITIES_HEADER = "Delta-Sharing-Capabilities"
MAX_RESULTS = 1000
_NAMESPACE = uuid.UUID("6f1d8a4e-5d0c-4f5e-9a57-2c1b7e0d9a11")
"""Fixed namespace of the share and table ids (UUID 5), so an id never changes for the same name."""

DELTA_TYPES = {
    "string": "string",
    "integer": "long",
    "number": "double",
    "boolean": "boolean",
    "date": "date",
    "datetime": "timestamp",
}
"""Our Table Schema types as Delta (Spark SQL) primitive types: integer is 64-bit, number a double."""


class SharingError(Exception):
    """An answer other than 200 in the protocol's error format."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _bad(message: str) -> SharingError:
    return SharingError(400, "INVALID_PARAMETER_VALUE", message)


def _missing() -> SharingError:
    return SharingError(404, "RESOURCE_DOES_NOT_EXIST", "No such share, schema or table, or it is not shared with you.")


def _answer(exc: SharingError) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'} if exc.status == 401 else None
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
            except CatalogError as exc:
                return _answer(SharingError(exc.status, "INVALID_PARAMETER_VALUE", exc.detail))
            except RequestValidationError as exc:
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}" for e in exc.errors()
                )
                return _answer(_bad(f"Invalid request: {problems[:500]}"))
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


PAGING = _params(
    ("maxResults", {"type": "integer", "minimum": 0}, "Items per page (at most 1000)."),
    ("pageToken", {"type": "string"}, "nextPageToken of the previous page."),
)
VERSION_PARAMS = _params(
    ("startingTimestamp", {"type": "string"}, "The first version committed at or after this time."),
)
CHANGES_PARAMS = _params(
    ("startingVersion", {"type": "integer", "minimum": 0}, "First version, inclusive."),
    ("startingTimestamp", {"type": "string"}, "Or: the first version committed at or after this time."),
    ("endingVersion", {"type": "integer", "minimum": 0}, "Last version, inclusive (default: the newest)."),
    ("endingTimestamp", {"type": "string"}, "Or: the last version committed at or before this time."),
    ("includeHistoricalMetadata", {"type": "boolean"}, "Also the metadata of versions whose schema changed."),
)
QUERY_BODY = {
    "requestBody": {
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "predicateHints": {"type": "array", "items": {"type": "string"}},
                        "jsonPredicateHints": {"type": "string"},
                        "limitHint": {"type": "integer", "minimum": 0},
                        "version": {"type": "integer", "minimum": 0},
                        "timestamp": {"type": "string"},
                    },
                }
            }
        }
    }
}
router = APIRouter(prefix=PREFIX, tags=["delta-sharing"], route_class=SharingRoute, responses=ERRORS)


# -- who is asking ------------------------------------------------------------------------------------


@dataclass
class Recipientship:
    """The recipient of one request and the catalog as it may see it."""

    catalog: Catalog
    recipient: Recipient
    reader: Reader

    @property
    def share(self) -> str:
        """The recipient's one share: its agency code."""
        return self.recipient.code


def get_recipient(request: Request, catalog: Annotated[Catalog, Depends(get_catalog)]) -> Recipientship:
    """The bearer token's recipient; 401 without a valid token (Delta Sharing has no anonymous reader)."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise SharingError(401, "UNAUTHENTICATED", "Send the bearer token of your profile file.")
    recipient = check_token(catalog, token.strip())  # Unauthorized for unknown, revoked or expired tokens
    return Recipientship(catalog, recipient, catalog.reader(recipient, base_path(request)))


Who = Annotated[Recipientship, Depends(get_recipient)]


# -- names, paging ----------------------------------------------------------------------------------


def _share_id(code: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"share:{code}"))


def _table_id(dataset_id: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"table:{dataset_id}"))


def _page(request: Request, items: list[dict[str, Any]], sort_key: Callable[[dict[str, Any]], str]) -> dict[str, Any]:
    """One page of a list answer (``maxResults``, ``pageToken``: the sort key of the last item sent)."""
    raw_max = request.query_params.get("maxResults")
    token = request.query_params.get("pageToken") or ""
    if raw_max is not None and (not raw_max.isdigit() or int(raw_max) > 10**9):
        raise _bad(f"maxResults must be a non-negative whole number, got {raw_max[:20]!r}")
    limit = min(int(raw_max), MAX_RESULTS) if raw_max is not None else MAX_RESULTS
    items = sorted(items, key=sort_key)
    if token:
        items = [i for i in items if sort_key(i) > token]
    chosen = items[:limit]
    out: dict[str, Any] = {"items": chosen}
    if len(items) > limit:
        out["nextPageToken"] = sort_key(chosen[-1]) if chosen else token
    return out


def _tables(who: Recipientship) -> list[tuple[DatasetSpec, list[int]]]:
    """Datasets the recipient may read that have at least one visible release, with those versions."""
    out = []
    for spec in who.reader.visible_specs().values():
        versions = who.reader.versions(spec.id)
        if versions:
            out.append((spec, versions))
    return out


def _check_share(who: Recipientship, share: str) -> None:
    if share.lower() != who.share:
        raise _missing()


def _table_item(who: Recipientship, spec: DatasetSpec) -> dict[str, Any]:
    return {
        "name": spec.id,
        "schema": spec.sector,
        "share": who.share,
        "shareId": _share_id(who.share),
        "id": _table_id(spec.id),
    }


def _find(who: Recipientship, share: str, schema: str, table: str) -> tuple[DatasetSpec, list[int]]:
    _check_share(who, share)
    for spec, versions in _tables(who):
        if spec.id == table.lower() and spec.sector == schema.lower():
            return spec, versions
    raise _missing()


# -- versions and time --------------------------------------------------------------------------------


def _committed_ms(release: Release) -> int:
    stamp = release.record["committed_at"]
    return int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1000)


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
        raise _bad(f"not a timestamp: {raw[:40]!r} (expected yyyy-mm-dd hh:mm:ss[.f], or ISO 8601)") from None
    return when


def _version_at(who: Recipientship, spec: DatasetSpec, versions: list[int], when: datetime, *, after: bool) -> int:
    """The version committed at or before ``when`` (``after=False``) or the first at or after it."""
    moment = when.timestamp() * 1000
    releases = [(v, _committed_ms(who.catalog.release(spec.id, v))) for v in versions]
    if after:
        later = [v for v, ms in releases if ms >= moment]
        if not later:
            raise _bad(f"{spec.id}: no release was committed at or after {when.isoformat()}")
        return later[0]
    earlier = [v for v, ms in releases if ms <= moment]
    if not earlier:
        raise _bad(f"{spec.id}: no release was committed at or before {when.isoformat()}")
    return earlier[-1]


def _check_version(spec: DatasetSpec, versions: list[int], version: int) -> int:
    if version not in versions:
        raise SharingError(
            404, "RESOURCE_DOES_NOT_EXIST", f"{spec.id} has no version {version} (never released, or withdrawn)."
        )
    return version


# -- metadata -------------------------------------------------------------------------------------


def delta_schema(release: Release, spec: DatasetSpec) -> dict[str, Any]:
    """The release's columns in Delta's schema JSON (Spark struct), descriptions as comments."""
    described = {c.name: c for c in spec.columns}
    fields = []
    for f in table_schema_fields(release):
        column = described.get(f["name"])
        comment = f"{column.description.vi} / {column.description.en}" if column else f.get("description", "")
        required = bool((f.get("constraints") or {}).get("required"))
        fields.append(
            {
                "name": f["name"],
                "type": DELTA_TYPES.get(str(f.get("type")), "string"),
                "nullable": not required,
                "metadata": {"comment": comment} if comment else {},
            }
        )
    return {"type": "struct", "fields": fields}


def _metadata(release: Release, spec: DatasetSpec, *, version: int | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "id": _table_id(spec.id),
        "name": spec.id,
        "description": f"{spec.title.vi} / {spec.title.en}",
        "format": {"provider": "parquet"},
        "schemaString": json.dumps(delta_schema(release, spec), ensure_ascii=False, separators=(",", ":")),
        "partitionColumns": [],
        "configuration": {"enableChangeDataFeed": "true"},
        "size": sum(int(f["bytes"]) for f in release.files),
        "numFiles": len(release.files),
    }
    if version is not None:
        meta["version"] = version
    return meta


def _lines(*objects: dict[str, Any]) -> str:
    return "".join(json.dumps(o, ensure_ascii=False, separators=(",", ":")) + "\n" for o in objects)


def _ndjson(body: str, version: int) -> Response:
    return Response(
        body,
        media_type=NDJSON,
        headers={VERSION_HEADER: str(version), CAPABILITIES_HEADER: "responseformat=parquet"},
    )


PROTOCOL = {"protocol": {"minReaderVersion": 1}}


# -- routes ---------------------------------------------------------------------------------------


@router.get("/shares", summary="Shares of the caller (Delta Sharing)", openapi_extra=PAGING)
def list_shares(request: Request, who: Who) -> dict[str, Any]:
    """The recipient's one share: everything it is granted."""
    return _page(request, [{"name": who.share, "id": _share_id(who.share)}], lambda i: i["name"])


@router.get("/shares/{share}", summary="One share (Delta Sharing)")
def get_share(share: str, who: Who) -> dict[str, Any]:
    """A share's name and id."""
    _check_share(who, share)
    return {"share": {"name": who.share, "id": _share_id(who.share)}}


@router.get("/shares/{share}/schemas", summary="Schemas (sectors) of a share (Delta Sharing)", openapi_extra=PAGING)
def list_schemas(request: Request, share: str, who: Who) -> dict[str, Any]:
    """Sectors holding at least one table the recipient may read."""
    _check_share(who, share)
    sectors = sorted({spec.sector for spec, _ in _tables(who)})
    return _page(request, [{"name": s, "share": who.share} for s in sectors], lambda i: i["name"])


@router.get(
    "/shares/{share}/schemas/{schema}/tables", summary="Tables of a schema (Delta Sharing)", openapi_extra=PAGING
)
def list_tables(request: Request, share: str, schema: str, who: Who) -> dict[str, Any]:
    """Datasets of one sector the recipient may read."""
    _check_share(who, share)
    items = [_table_item(who, spec) for spec, _ in _tables(who) if spec.sector == schema.lower()]
    if not items:
        raise _missing()
    return _page(request, items, lambda i: i["name"])


@router.get("/shares/{share}/all-tables", summary="Every table of a share (Delta Sharing)", openapi_extra=PAGING)
def list_all_tables(request: Request, share: str, who: Who) -> dict[str, Any]:
    """Every dataset the recipient may read, across sectors."""
    _check_share(who, share)
    items = [_table_item(who, spec) for spec, _ in _tables(who)]
    return _page(request, items, lambda i: f"{i['schema']}.{i['name']}")


@router.get(
    "/shares/{share}/schemas/{schema}/tables/{table}/version",
    summary="Table version (Delta Sharing)",
    openapi_extra=VERSION_PARAMS,
)
def table_version(share: str, schema: str, table: str, request: Request, who: Who) -> Response:
    """The newest release number, or the first committed at or after ``startingTimestamp``."""
    spec, versions = _find(who, share, schema, table)
    starting = request.query_params.get("startingTimestamp")
    version = _version_at(who, spec, versions, parse_timestamp(starting), after=True) if starting else versions[-1]
    return Response(status_code=200, headers={VERSION_HEADER: str(version)})


@router.head("/shares/{share}/schemas/{schema}/tables/{table}", summary="Table version (deprecated HEAD form)")
def table_version_head(share: str, schema: str, table: str, who: Who) -> Response:
    """The newest release number (the protocol's deprecated HEAD form of ``/version``)."""
    _, versions = _find(who, share, schema, table)
    return Response(status_code=200, headers={VERSION_HEADER: str(versions[-1])})


@router.get("/shares/{share}/schemas/{schema}/tables/{table}/metadata", summary="Table metadata (Delta Sharing)")
def table_metadata(share: str, schema: str, table: str, who: Who) -> Response:
    """Protocol and metadata (schema in Delta's JSON) of the newest release."""
    spec, versions = _find(who, share, schema, table)
    release = who.catalog.release(spec.id, versions[-1])
    return _ndjson(_lines(PROTOCOL, {"metaData": _metadata(release, spec)}), release.version)


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
            raise _bad("the request body is not JSON") from None
        if not isinstance(body, dict):
            raise _bad("the request body must be a JSON object")
        unsupported = sorted(set(body) & {"startingVersion", "endingVersion"})
        if unsupported:
            raise _bad(f"{', '.join(unsupported)} on /query is not served here: read changes from /changes")
        hints = body.get("predicateHints") or []
        if not isinstance(hints, list) or not all(isinstance(h, str) for h in hints):
            raise _bad("predicateHints must be a list of strings")
        json_hint = None
        if body.get("jsonPredicateHints") not in (None, ""):
            try:  # a hint: one we cannot read is skipped, as the protocol says
                json_hint = json.loads(str(body["jsonPredicateHints"]))
            except (ValueError, RecursionError):
                log.info("Skipping jsonPredicateHints that are not JSON")
        limit, version, timestamp = body.get("limitHint"), body.get("version"), body.get("timestamp")
        for name, value in (("limitHint", limit), ("version", version)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise _bad(f"{name} must be a non-negative whole number")
        if timestamp is not None and not isinstance(timestamp, str):
            raise _bad("timestamp must be a string")
        if version is not None and timestamp is not None:
            raise _bad("give either version or timestamp, not both")
        return cls(hints, json_hint, limit, version, timestamp)


_stats = StatsCache()
MAX_BODY = 1 << 20


async def _body(request: Request) -> bytes:
    """The request body, refused past 1 MiB without reading the rest (a query body is a few hints)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise _bad("the request body is larger than 1 MiB")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise _bad("the request body is larger than 1 MiB")
        chunks.append(chunk)
    return b"".join(chunks)


def _file_lines(
    who: Recipientship, request: Request, release: Release, query: QueryBody, *, time_travel: bool
) -> list[dict[str, Any]]:
    backend = who.catalog.store.backend
    out = []
    rows = 0
    timestamp = _committed_ms(release)
    for f in release.files:
        key = f"{release.prefix}/{f['path']}"
        stats = _stats.get(
            f["sha256"],
            int(f["rows"]),
            backend.local_path(key),
            lambda key=key: file_url(who.catalog, request, key),
            int(f["bytes"]),
        )
        if (query.predicate_hints or query.json_predicate_hints is not None) and not may_match(
            stats, query.predicate_hints, query.json_predicate_hints
        ):
            continue
        line: dict[str, Any] = {
            "url": file_url(who.catalog, request, key),
            "id": f["sha256"],
            "partitionValues": {},
            "size": int(f["bytes"]),
            "stats": stats.to_delta() if stats is not None else json.dumps({"numRecords": int(f["rows"])}),
        }
        if time_travel:
            line.update(version=release.version, timestamp=timestamp)
        out.append({"file": line})
        rows += int(f["rows"])
        if query.limit_hint is not None and rows >= query.limit_hint:
            break
    return out


@router.post(
    "/shares/{share}/schemas/{schema}/tables/{table}/query",
    summary="Read a table (Delta Sharing)",
    openapi_extra=QUERY_BODY,
)
async def query_table(share: str, schema: str, table: str, request: Request, who: Who) -> Response:
    """Files of the newest release, or of the release given by ``version`` or ``timestamp``."""
    query = QueryBody.parse(await _body(request))
    spec, versions = _find(who, share, schema, table)
    if query.version is not None:
        version = _check_version(spec, versions, query.version)
    elif query.timestamp is not None:
        version = _version_at(who, spec, versions, parse_timestamp(query.timestamp), after=False)
    else:
        version = versions[-1]
    release = who.catalog.release(spec.id, version)
    time_travel = query.version is not None or query.timestamp is not None
    files = _file_lines(who, request, release, query, time_travel=time_travel)
    log.info(
        "Delta Sharing: %s read %s v%s (%s of %s files)", who.share, spec.id, version, len(files), len(release.files)
    )
    meta = _metadata(release, spec, version=version if time_travel else None)
    return _ndjson(_lines(PROTOCOL, {"metaData": meta}, *files), version)


def _int_param(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    if not raw.isdigit() or len(raw) > 18:
        raise _bad(f"{name} must be a non-negative whole number, got {raw[:20]!r}")
    return int(raw)


def change_set(catalog: Catalog, spec: DatasetSpec, before: int, after: int) -> ChangeSet:
    """The changes between two visible releases (cached by :func:`datashare.changes.compare`)."""
    return compare(catalog.store, catalog.release(spec.id, before), catalog.release(spec.id, after), key=spec.key)


@router.get(
    "/shares/{share}/schemas/{schema}/tables/{table}/changes",
    summary="Change data feed (Delta Sharing)",
    openapi_extra=CHANGES_PARAMS,
)
def table_changes(share: str, schema: str, table: str, request: Request, who: Who) -> Response:
    """Row changes of each release from the start to the end version (inclusive), against the release before it.

    The first release of a table is all inserts (its data files as ``add``); every later one is the
    change file of :mod:`datashare.changes` (``cdf``), whose ``_change_type`` is the protocol's.
    """
    spec, versions = _find(who, share, schema, table)
    start_v, end_v = _int_param(request, "startingVersion"), _int_param(request, "endingVersion")
    start_ts, end_ts = request.query_params.get("startingTimestamp"), request.query_params.get("endingTimestamp")
    if start_v is not None and start_ts:
        raise _bad("give either startingVersion or startingTimestamp, not both")
    if end_v is not None and end_ts:
        raise _bad("give either endingVersion or endingTimestamp, not both")
    if start_v is None and not start_ts:
        raise _bad("startingVersion or startingTimestamp is required")
    start = (
        start_v
        if start_v is not None
        else _version_at(who, spec, versions, parse_timestamp(start_ts or ""), after=True)
    )
    if end_v is not None:
        end = end_v
    elif end_ts:
        end = _version_at(who, spec, versions, parse_timestamp(end_ts), after=False)
    else:
        end = versions[-1]
    if start > versions[-1]:
        raise _bad(f"{spec.id}: startingVersion {start} is past the latest version {versions[-1]}")
    if end < start:
        raise _bad(f"{spec.id}: the ending version ({end}) is before the starting version ({start})")
    end = min(end, versions[-1])
    historical = request.query_params.get("includeHistoricalMetadata", "").lower() == "true"
    lines: list[dict[str, Any]] = []
    previous: Release | None = None
    for v in versions:
        release = who.catalog.release(spec.id, v)
        if start <= v <= end:
            lines += _change_lines(who, request, spec, previous, release, historical)
        previous = release
        if v >= end:
            break
    final = who.catalog.release(spec.id, max(v for v in versions if v <= end))
    log.info("Delta Sharing: %s read changes of %s v%s..v%s", who.share, spec.id, start, end)
    return _ndjson(_lines(PROTOCOL, {"metaData": _metadata(final, spec)}, *lines), start)


def _change_lines(
    who: Recipientship,
    request: Request,
    spec: DatasetSpec,
    previous: Release | None,
    release: Release,
    historical: bool,
) -> list[dict[str, Any]]:
    stamp = {"version": release.version, "timestamp": _committed_ms(release)}
    out: list[dict[str, Any]] = []
    if historical and (previous is None or table_schema_fields(previous) != table_schema_fields(release)):
        out.append({"metaData": _metadata(release, spec, version=release.version)})
    if previous is None:  # the table's first visible release: every row is an insert
        for f in release.files:
            key = f"{release.prefix}/{f['path']}"
            out.append(
                {
                    "add": {
                        "url": file_url(who.catalog, request, key),
                        "id": f["sha256"],
                        "partitionValues": {},
                        "size": int(f["bytes"]),
                        "stats": json.dumps({"numRecords": int(f["rows"])}),
                        **stamp,
                    }
                }
            )
        return out
    changes = change_set(who.catalog, spec, previous.version, release.version)
    if changes.change_rows:
        out.append(
            {
                "cdf": {
                    "url": file_url(who.catalog, request, changes.file_key),
                    "id": changes.file_sha256,
                    "partitionValues": {},
                    "size": changes.file_bytes,
                    **stamp,
                }
            }
        )
    return out
