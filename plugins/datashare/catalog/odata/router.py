"""The OData v4 service under ``/odata``: service roots, ``$metadata``, entity sets, ``$count``, key lookups.

Two kinds of service root, each with its own service document and ``$metadata``:

| URL | serves |
|---|---|
| ``/odata/`` | one entity set per dataset the caller may read, at its latest release |
| ``/odata/releases/<dataset>/<N>/`` | that dataset's entity set at release N (the version selector) |

Below a root: ``<set>`` (the collection, with ``$filter $select $orderby $top $skip $count``),
``<set>/$count`` (a number as text/plain), ``<set>(<key>)`` (one entity) and ``$metadata`` (CSDL
XML; JSON with ``$format=json``). Pages hold at most :data:`PAGE_SIZE` entities (less with
``Prefer: odata.maxpagesize``) and end with an ``@odata.nextLink`` while rows remain; next links
pin the release of the first page, so a client paging while a new release lands reads one release.

Access is the catalog's: no token reads open data; ``Authorization: Bearer <token>`` (or Basic with
the token as password, for Excel and Power BI's "Basic" credentials) reads what the recipient is
granted; an invalid token is a 401. A dataset the caller may not read, a withdrawn release and an
unknown name are the same 404, and the service document and ``$metadata`` list only what the caller
may read. Data is read from the release's sorted copy (:mod:`.cache`), never from the SQL share.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from datashare.catalog.app import base_path
from datashare.catalog.auth import Caller, check_token, client_address, identify
from datashare.catalog.odata.cache import CacheError, QueryCache
from datashare.catalog.odata.engine import Engine, PageStream
from datashare.catalog.odata.errors import ODataError, bad_request, not_found, not_implemented
from datashare.catalog.odata.expr import Compare, Literal, Logical, Node, Prop, parse_literal
from datashare.catalog.odata.model import EntityModel, ModelError, csdl_json, csdl_xml, entity_model
from datashare.catalog.odata.options import (
    SkipToken,
    canonical_options,
    encode_skiptoken,
    parse_options,
)
from datashare.catalog.service import Catalog, CatalogError, NotFound, Reader, Unauthorized
from datashare.spec import DatasetSpec
from datashare.store import Release

log = logging.getLogger(__name__)

PREFIX = "/odata"
PAGE_SIZE = int(os.environ.get("DATASHARE_ODATA_PAGE_SIZE", "50000"))
MAX_PAGE_SIZE = 100_000
ODATA_HEADERS = {"OData-Version": "4.0", "Cache-Control": "private, no-store"}
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

router = APIRouter(include_in_schema=False)


# -- the service of one process -------------------------------------------------------------------


@dataclass
class Service:
    """The query cache and engine of one app (built on the first OData request)."""

    cache: QueryCache
    engine: Engine


_SERVICE_LOCK = threading.Lock()


def service_of(request: Request) -> Service:
    """The app's OData service; settings from the environment (see the README)."""
    state = request.app.state
    with _SERVICE_LOCK:
        service = getattr(state, "odata", None)
        if service is None:
            catalog: Catalog = state.catalog
            root = Path(
                os.environ.get("DATASHARE_ODATA_CACHE_DIR") or catalog.settings.home / "var" / "odata-cache"
            ).resolve()
            memory = os.environ.get("DATASHARE_ODATA_MEMORY_LIMIT", "512MB")
            threads = int(os.environ.get("DATASHARE_ODATA_THREADS", "2"))
            cache = QueryCache(
                root,
                max_bytes=int(os.environ.get("DATASHARE_ODATA_CACHE_MAX_MIB", "10240")) << 20,
                memory_limit=memory,
                threads=threads,
            )
            service = Service(cache=cache, engine=Engine(root, memory_limit=memory, threads=threads))
            state.odata = service
    return service


# -- who is calling -------------------------------------------------------------------------------


def caller_of(request: Request, catalog: Catalog) -> Caller:
    """The catalog's caller rule, plus HTTP Basic with the token as password (Excel, Power BI)."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return identify(request, catalog)
    try:
        user, _, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise Unauthorized() from None
    address = client_address(request, catalog)  # failed tokens count against the same per-address limit
    return Caller(recipient=check_token(catalog, password or user, address=address), via="header")


# -- content negotiation --------------------------------------------------------------------------


@dataclass(frozen=True)
class Format:
    """The representation chosen for a response."""

    kind: str
    """json, xml or text."""
    metadata: str = "minimal"
    ieee754: bool = False

    @property
    def media_type(self) -> str:
        """The Content-Type header value."""
        if self.kind == "xml":
            return "application/xml"
        if self.kind == "text":
            return "text/plain;charset=utf-8"
        ieee = ";IEEE754Compatible=true" if self.ieee754 else ""
        return f"application/json;odata.metadata={self.metadata};odata.streaming=true{ieee};charset=utf-8"


def _media_ranges(text: str) -> list[tuple[str, dict[str, str]]]:
    ranges = []
    for part in text.split(","):
        pieces = [p.strip() for p in part.split(";")]
        params = {}
        for piece in pieces[1:]:
            name, _, value = piece.partition("=")
            params[name.strip().lower()] = value.strip().strip('"')
        if pieces[0]:
            ranges.append((pieces[0].lower(), params))
    return ranges


def negotiate(request: Request, format_option: str | None, *, metadata_document: bool = False) -> Format:
    """JSON (or CSDL XML for ``$metadata``) from ``$format`` or ``Accept``; 406 when neither is acceptable."""
    if format_option is not None:
        ranges = _media_ranges({"json": "application/json", "xml": "application/xml"}.get(format_option, format_option))
        explicit = True
    else:
        ranges = _media_ranges(request.headers.get("accept", "")) or [("*/*", {})]
        explicit = False
    ranges = [(kind, params) for kind, params in ranges if params.get("q", "1") not in ("0", "0.0", "0.00", "0.000")]
    if metadata_document and any(kind in ("application/xml", "text/xml", "application/*", "*/*") for kind, _ in ranges):
        return Format("xml")  # CSDL XML whenever acceptable: what OData 4.0 clients (Excel, Power BI) parse
    for kind, params in ranges:
        if kind in ("application/json", "application/*", "*/*"):
            metadata = params.get("odata.metadata", "minimal")
            if metadata not in ("minimal", "none", "full"):
                raise bad_request(f"odata.metadata={metadata[:20]} is not a metadata level", "$format")
            ieee = params.get("ieee754compatible", "false").lower() == "true"
            return Format("json", "none" if metadata == "none" else "minimal", ieee)
    what = f"$format={format_option[:40]}" if explicit and format_option else "the Accept header"
    offered = "application/xml or application/json" if metadata_document else "application/json"
    raise ODataError(406, "NotAcceptable", f"{what} asks for a format this service does not produce ({offered})")


# -- responses ------------------------------------------------------------------------------------


def _json(body: dict[str, Any], fmt: Format, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode(),
        status_code=status,
        media_type=fmt.media_type,
        headers={**ODATA_HEADERS, **(headers or {})},
    )


def error_response(exc: ODataError, headers: dict[str, str] | None = None) -> Response:
    """The OData JSON error document."""
    return JSONResponse(exc.body(), status_code=exc.status, headers={**ODATA_HEADERS, **(headers or {})})


# -- service roots --------------------------------------------------------------------------------


@dataclass
class Root:
    """One service root as the caller sees it."""

    reader: Reader
    url: str
    """Absolute URL of the service root, ending with ``/``."""
    pinned: tuple[DatasetSpec, int] | None = None
    """The dataset and release of a ``/odata/releases/<id>/<N>/`` root."""

    def entity_sets(self) -> list[tuple[DatasetSpec, Release]]:
        """Every entity set of this root: (spec, release served)."""
        if self.pinned is not None:
            spec, version = self.pinned
            return [(spec, self.release(spec, version))]
        out = []
        for dataset_id, spec in sorted(self.reader.visible_specs().items()):
            versions = self.reader.versions(dataset_id)
            if versions:
                out.append((spec, self.reader.catalog.release(dataset_id, versions[-1])))
        return out

    def entity_set(self, name: str) -> tuple[DatasetSpec, Release]:
        """The entity set named ``name`` at the release this root serves; 404 if not readable."""
        if self.pinned is not None:
            spec, version = self.pinned
            if name != spec.id:
                raise not_found()
            return spec, self.release(spec, version)
        spec = self._spec(name)
        versions = self.reader.versions(spec.id)
        if not versions:
            raise not_found()
        return spec, self.reader.catalog.release(spec.id, versions[-1])

    def _spec(self, name: str) -> DatasetSpec:
        try:
            return self.reader.spec(name)
        except CatalogError:
            raise not_found() from None

    def release(self, spec: DatasetSpec, version: int) -> Release:
        """A visible (committed, not withdrawn) release of a readable dataset; 404 otherwise."""
        if version not in self.reader.versions(spec.id):
            raise not_found()
        return self.reader.catalog.release(spec.id, version)


def _root(request: Request, reader: Reader, segments: list[str]) -> tuple[Root, list[str]]:
    base = str(request.base_url).rstrip("/") + PREFIX + "/"
    if len(segments) >= 3 and segments[0] == "releases" and re.fullmatch(r"[1-9]\d{0,8}", segments[2]):
        dataset_id, version = segments[1], int(segments[2])
        try:
            spec = reader.spec(dataset_id)
        except CatalogError:
            raise not_found() from None
        root = Root(reader, f"{base}releases/{dataset_id}/{version}/", (spec, version))
        root.release(spec, version)
        return root, segments[3:]
    return Root(reader, base), segments


# -- the endpoint ---------------------------------------------------------------------------------


@router.api_route(PREFIX, methods=METHODS)
@router.api_route(PREFIX + "/{path:path}", methods=METHODS)
def odata(request: Request, path: str = "") -> Response:
    """Every OData request: errors become OData error documents, never HTML."""
    try:
        if request.method not in ("GET", "HEAD"):
            raise ODataError(405, "MethodNotAllowed", f"{request.method}: this OData service is read-only")
        max_version = request.headers.get("odata-maxversion")
        if max_version and not re.fullmatch(r"4\.\d+", max_version.strip()):
            raise bad_request(f"OData-MaxVersion {max_version[:10]}: this service speaks OData 4.0")
        catalog: Catalog = request.app.state.catalog
        caller = caller_of(request, catalog)
        reader = catalog.reader(caller.recipient, base_path(request))
        segments = [s for s in path.split("/")]
        if segments and segments[-1] == "":
            segments.pop()
        root, rest = _root(request, reader, segments)
        return _dispatch(request, root, rest, caller)
    except ODataError as exc:
        log.warning("OData %s %r refused with %s: %s", request.method, request.url.path, exc.status, exc.message)
        return error_response(exc)
    except Unauthorized:
        log.warning("OData %s %r refused with 401: invalid token", request.method, request.url.path)
        challenge = 'Bearer error="invalid_token", Basic realm="datashare", charset="UTF-8"'
        return error_response(
            ODataError(401, "Unauthorized", Unauthorized().detail), headers={"WWW-Authenticate": challenge}
        )
    except NotFound:
        return error_response(not_found())
    except CatalogError as exc:
        return error_response(ODataError(exc.status, "BadRequest", exc.detail))
    except (CacheError, ModelError) as exc:
        log.error("OData %s %r failed: %s", request.method, request.url.path, exc)
        return error_response(ODataError(500, "InternalError", "The release could not be read; the error is logged."))
    except Exception as exc:
        return error_response(query_failure(request, exc))


def query_failure(request: Request, exc: Exception) -> ODataError:
    """An unexpected failure as an OData error: the caller's values (400), the load (503), else a logged 500."""
    import duckdb

    if not isinstance(exc, duckdb.Error):
        log.exception("OData %s %r failed", request.method, request.url.path)
        return ODataError(500, "InternalError", "The request failed on the server; the error is logged.")
    log.warning("OData %s %r: the query failed: %s", request.method, request.url.path, str(exc)[:500])
    if isinstance(exc, duckdb.InvalidInputException | duckdb.ConversionException | duckdb.OutOfRangeException):
        return bad_request(
            "the query cannot be evaluated on this data: a value is out of range or a pattern is not a valid "
            "regular expression"
        )
    if isinstance(exc, duckdb.OutOfMemoryException):
        return ODataError(503, "ServiceUnavailable", "The service is busy; try again in a moment.")
    return ODataError(500, "InternalError", "The query failed on the server; the error is logged.")


def _dispatch(request: Request, root: Root, rest: list[str], caller: Caller) -> Response:
    raw = canonical_options(request.query_params.multi_items())
    if not rest:
        _only(raw, ("format",), "the service document")
        fmt = negotiate(request, raw.get("format"))
        sets = root.entity_sets()
        body = {
            "@odata.context": f"{root.url}$metadata",
            "value": [
                {
                    "name": spec.id,
                    "kind": "EntitySet",
                    "url": spec.id,
                    "title": _title(spec, release),
                }
                for spec, release in sets
            ],
        }
        return _json(body, fmt)
    head = rest[0]
    if head == "$metadata" and len(rest) == 1:
        _only(raw, ("format",), "$metadata")
        fmt = negotiate(request, raw.get("format"), metadata_document=True)
        models = [entity_model(spec, release) for spec, release in root.entity_sets()]
        if fmt.kind == "xml":
            return Response(csdl_xml(models), media_type="application/xml", headers=ODATA_HEADERS)
        return _json(csdl_json(models), Format("json"))
    if head.startswith("$"):
        raise not_implemented(f"{head[:40]} is not supported")
    name, key = _split_key(head)
    spec, release = root.entity_set(name)
    model = entity_model(spec, release)
    if key is not None:
        if len(rest) > 1:
            raise not_implemented("addressing a property of an entity is not supported; use $select")
        return _entity(request, root, spec, release, model, key, raw, caller)
    if len(rest) == 2 and rest[1] == "$count":
        options = parse_options({k: v for k, v in raw.items() if k != "format"}, model)
        service = service_of(request)
        path = service.cache.ensure(root.reader, release, model)
        return Response(str(service.engine.count(path, options)), media_type="text/plain", headers=ODATA_HEADERS)
    if len(rest) > 1:
        raise not_found()
    return _collection(request, root, spec, release, model, raw, caller)


def _title(spec: DatasetSpec, release: Release) -> str:
    """The dataset's title as the release recorded it (Vietnamese), for the service document."""
    title = release.manifest["datashare"].get("title") or {}
    return str(title.get("vi") or spec.title.vi)


def _only(raw: dict[str, str], allowed: tuple[str, ...], what: str) -> None:
    for name in raw:
        if name not in allowed:
            raise bad_request(f"${name} does not apply to {what}", f"${name}")


def _split_key(segment: str) -> tuple[str, str | None]:
    match = re.fullmatch(r"([A-Za-z_]\w*)(?:\((.*)\))?", segment, re.DOTALL)
    if match is None:
        raise not_found()
    return match.group(1), match.group(2)


def _page_size(request: Request) -> tuple[int, dict[str, str]]:
    """The page size: ours, or the client's ``Prefer: odata.maxpagesize`` when smaller."""
    prefer = request.headers.get("prefer", "")
    match = re.search(r"(?:^|[,;\s])odata\.maxpagesize\s*=\s*(\d{1,9})", prefer, re.IGNORECASE)
    size = min(PAGE_SIZE, MAX_PAGE_SIZE)
    if match and int(match.group(1)) > 0:
        size = min(size, int(match.group(1)))
        return size, {"Preference-Applied": f"odata.maxpagesize={size}"}
    return size, {}


def _collection(
    request: Request,
    root: Root,
    spec: DatasetSpec,
    release: Release,
    model: EntityModel,
    raw: dict[str, str],
    caller: Caller,
) -> Response:
    fmt = negotiate(request, raw.get("format"))
    options = parse_options(raw, model)
    token = options.skiptoken
    if token is not None and token.version != release.version:
        if root.pinned is not None:
            raise bad_request("$skiptoken belongs to another release", "$skiptoken")
        release = root.release(spec, token.version)  # keep paging the release the first page came from
        model = entity_model(spec, release)
        options = parse_options(raw, model)
    service = service_of(request)
    path = service.cache.ensure(root.reader, release, model)
    page_size, headers = _page_size(request)
    served = token.served if token else 0
    limit = page_size if options.top is None else max(0, min(page_size, options.top - served))
    count = service.engine.count(path, options) if options.count else None
    stream = PageStream(service.engine, path, model, options, limit, ieee754=fmt.ieee754)
    context = f"{root.url}$metadata#{spec.id}"
    if options.select is not None:
        context += "(" + ",".join(options.select) + ")"
    head: dict[str, Any] = {}
    if fmt.metadata != "none":
        head["@odata.context"] = context
    if count is not None:
        head["@odata.count"] = count
    prefix = json.dumps(head, ensure_ascii=False, separators=(",", ":"))[:-1]
    prefix += ("," if head else "") + '"value":['

    def body() -> Iterator[bytes]:
        yield prefix.encode()
        yield from stream.rows()
        end = stream.end
        tail = "]"
        if end is not None and end.more and (options.top is None or served + end.rows < options.top):
            next_token = SkipToken(
                version=release.version,
                digest=options.digest(),
                last=end.last,
                last_row=end.last_row,
                served=served + end.rows,
            )
            tail += ',"@odata.nextLink":' + json.dumps(_next_link(request, root, spec.id, next_token))
        yield (tail + "}").encode()
        log.info("OData served %s rows of %s v%s to %s", end.rows if end else 0, spec.id, release.version, caller.code)

    return StreamingResponse(body(), media_type=fmt.media_type, headers={**ODATA_HEADERS, **headers})


def _next_link(request: Request, root: Root, name: str, token: SkipToken) -> str:
    """The request's own URL with its query options exactly as sent, less ``$skip``, plus the skip token."""
    kept = []
    for part in request.url.query.split("&"):
        option = unquote(part.partition("=")[0]).lower().removeprefix("$")
        if part and option not in ("skip", "skiptoken"):
            kept.append(part)
    kept.append(f"$skiptoken={encode_skiptoken(token)}")
    return f"{root.url}{name}?" + "&".join(kept)


def _entity(
    request: Request,
    root: Root,
    spec: DatasetSpec,
    release: Release,
    model: EntityModel,
    key_text: str,
    raw: dict[str, str],
    caller: Caller,
) -> Response:
    _only(raw, ("select", "format"), "a single entity")
    fmt = negotiate(request, raw.get("format"))
    options = parse_options(raw, model)
    options.filter = key_filter(key_text, model)
    service = service_of(request)
    path = service.cache.ensure(root.reader, release, model)
    stream = PageStream(service.engine, path, model, options, 1, ieee754=fmt.ieee754)
    text = b"".join(stream.rows())
    if not text:
        raise not_found()
    entity = json.loads(text)
    if fmt.metadata != "none":
        context = f"{root.url}$metadata#{spec.id}"
        if options.select is not None:
            context += "(" + ",".join(options.select) + ")"
        entity = {"@odata.context": context + "/$entity", **entity}
    log.info("OData served one entity of %s v%s to %s", spec.id, release.version, caller.code)
    return _json(entity, fmt)


def key_filter(text: str, model: EntityModel) -> Node:
    """``Set(value)`` or ``Set(k1=v1,k2=v2)`` as an equality filter on the key properties."""
    from datashare.catalog.odata.expr import BOOL, NUMERIC, tokenize

    tokens = tokenize(text, "key")
    parts: list[list[Any]] = [[]]
    for token in tokens:
        if token.kind == ",":
            parts.append([])
        else:
            parts[-1].append(token)
    values: dict[str, Literal] = {}
    if len(parts) == 1 and len(parts[0]) == 1 and len(model.key) == 1:
        values[model.key[0]] = parse_literal(parts[0][0].text, "key")
    else:
        for part in parts:
            if len(part) != 3 or part[0].kind != "word" or part[1].kind != "=":
                raise bad_request(f"key: expected name=value pairs for {', '.join(model.key)}", "key")
            values[part[0].text] = parse_literal(part[2].text, "key")
    if set(values) != set(model.key):
        raise bad_request(f"key: give exactly the key properties {', '.join(model.key)}", "key")
    node: Node | None = None
    for name in model.key:
        prop = model.find(name)
        assert prop is not None
        literal = values[name]
        if literal.type != prop.type and not (literal.type in NUMERIC and prop.type in NUMERIC):
            raise bad_request(f"key: {name} is {prop.type}, got {literal.type}", "key")
        test = Compare(BOOL, "eq", Prop(prop.type, prop.name, prop.nullable), literal)
        node = test if node is None else Logical(BOOL, "and", node, test)
    assert node is not None
    return node
