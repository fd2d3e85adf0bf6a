"""A Delta Sharing server over our releases, under ``/delta-sharing`` in the catalog.

It follows the protocol's PROTOCOL.md (REST APIs, parquet response format): data platforms (pandas,
Spark...) read what a recipient is granted with their own Delta Sharing client.

| Delta Sharing | here |
|---|---|
| recipient | a registered agency, by its bearer token (``datashare grant --profile``) |
| share | what the recipient is granted: one share, named by the agency's code |
| schema | a sector (``land``, ``environment_monitoring``...) |
| table | a dataset with at least one visible release |
| table version | a release number; ``version`` / ``timestamp`` read an older release |
| change data feed | derived from consecutive releases by key (:mod:`datashare.releases.changes`) |

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

import functools
import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from datashare.access import Recipient
from datashare.catalog.app import base_path, get_catalog
from datashare.catalog.auth import check_token, client_address
from datashare.catalog.hints import StatsCache, may_match
from datashare.catalog.service import Catalog, Reader
from datashare.catalog.sharing_protocol import (
    CHANGES_PARAMS,
    ERRORS,
    MAX_PAGE_PARAM,
    PAGING,
    PROTOCOL,
    QUERY_BODY,
    VERSION_HEADER,
    VERSION_PARAMS,
    QueryBody,
    SharingError,
    SharingRoute,
    bad_request,
    int_param,
    ndjson_lines,
    ndjson_response,
    not_shared,
    parse_timestamp,
    read_body,
)
from datashare.catalog.signed import file_url
from datashare.releases.changes import ChangeSet, compare, table_schema_fields
from datashare.spec import DatasetSpec
from datashare.store import Release

log = logging.getLogger(__name__)

PREFIX = "/delta-sharing"
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
    address = client_address(request, catalog)  # failed tokens count against the per-address limit
    recipient = check_token(catalog, token.strip(), address=address)  # Unauthorized: unknown, revoked, expired
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
    if raw_max is not None and (not raw_max.isdigit() or len(raw_max) > 10 or int(raw_max) > MAX_PAGE_PARAM):
        raise bad_request(f"maxResults must be a non-negative whole number, got {raw_max[:20]!r}")
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
        raise not_shared()


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
    raise not_shared()


# -- versions and time --------------------------------------------------------------------------------


def _committed_ms(release: Release) -> int:
    stamp = release.record["committed_at"]
    return int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1000)


def _version_at(who: Recipientship, spec: DatasetSpec, versions: list[int], when: datetime, *, after: bool) -> int:
    """The version committed at or before ``when`` (``after=False``) or the first at or after it."""
    moment = when.timestamp() * 1000
    releases = [(v, _committed_ms(who.catalog.release(spec.id, v))) for v in versions]
    if after:
        later = [v for v, ms in releases if ms >= moment]
        if not later:
            raise bad_request(f"{spec.id}: no release was committed at or after {when.isoformat()}")
        return later[0]
    earlier = [v for v, ms in releases if ms <= moment]
    if not earlier:
        raise bad_request(f"{spec.id}: no release was committed at or before {when.isoformat()}")
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
        raise not_shared()
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
    return ndjson_response(ndjson_lines(PROTOCOL, {"metaData": _metadata(release, spec)}), release.version)


_stats = StatsCache()


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
            functools.partial(file_url, who.catalog, request, key),
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
    query = QueryBody.parse(await read_body(request))
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
    return ndjson_response(ndjson_lines(PROTOCOL, {"metaData": meta}, *files), version)


def change_set(catalog: Catalog, spec: DatasetSpec, before: int, after: int) -> ChangeSet:
    """The changes between two visible releases (cached by :func:`datashare.releases.changes.compare`)."""
    return compare(catalog.store, catalog.release(spec.id, before), catalog.release(spec.id, after), key=spec.key)


@router.get(
    "/shares/{share}/schemas/{schema}/tables/{table}/changes",
    summary="Change data feed (Delta Sharing)",
    openapi_extra=CHANGES_PARAMS,
)
def table_changes(share: str, schema: str, table: str, request: Request, who: Who) -> Response:
    """Row changes of each release from the start to the end version (inclusive), against the release before it.

    The first release of a table is all inserts (its data files as ``add``); every later one is the
    change file of :mod:`datashare.releases.changes` (``cdf``), whose ``_change_type`` is the protocol's.
    """
    spec, versions = _find(who, share, schema, table)
    start_v, end_v = int_param(request, "startingVersion"), int_param(request, "endingVersion")
    start_ts, end_ts = request.query_params.get("startingTimestamp"), request.query_params.get("endingTimestamp")
    if start_v is not None and start_ts:
        raise bad_request("give either startingVersion or startingTimestamp, not both")
    if end_v is not None and end_ts:
        raise bad_request("give either endingVersion or endingTimestamp, not both")
    if start_v is None and not start_ts:
        raise bad_request("startingVersion or startingTimestamp is required")
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
        raise bad_request(f"{spec.id}: startingVersion {start} is past the latest version {versions[-1]}")
    if end < start:
        raise bad_request(f"{spec.id}: the ending version ({end}) is before the starting version ({start})")
    end = min(end, versions[-1])
    historical_text = request.query_params.get("includeHistoricalMetadata", "false").lower()
    if historical_text not in ("true", "false"):
        raise bad_request(f"includeHistoricalMetadata must be true or false, got {historical_text[:20]!r}")
    historical = historical_text == "true"
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
    return ndjson_response(ndjson_lines(PROTOCOL, {"metaData": _metadata(final, spec)}, *lines), start)


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
