"""The catalog application: routers, shared dependencies, error answers and security headers.

``create_app`` does no I/O: the release store, specs and registry are read on the first request, so
the Airflow plugin that mounts the app imports fast and a missing store does not break Airflow.
Every refusal (400, 401, 404, 422, 429) is logged and answered in the caller's language, as HTML for
pages and as JSON under ``/api`` and for ``/dcat.jsonld`` (under ``/delta-sharing``, the protocol's own
``errorCode``/``message`` object); the answer never names a dataset the caller may not read.
Oversized header fields (431) and URLs (414) are refused by an ASGI middleware before anything parses
them, and rate limits answer 429 with ``Retry-After`` (:mod:`datashare.catalog.limits`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from datashare.catalog import i18n
from datashare.catalog.auth import TOKEN_COOKIE, Caller, identify
from datashare.catalog.limits import Limits, LimitSettings, RequestSizeLimit, answers_json
from datashare.catalog.service import MAX_PARAM, BadRequest, Catalog, CatalogError, NotFound, Reader
from datashare.catalog.sharing_protocol import error_body
from datashare.settings import Settings

log = logging.getLogger(__name__)

PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; "
        "base-uri 'none'; frame-ancestors 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


# -- dependencies shared by the routers -----------------------------------------------------------


def base_path(request: Request) -> str:
    """The prefix the app is mounted under (``/datashare`` in Airflow, empty standalone)."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def get_catalog(request: Request) -> Catalog:
    """The deployment's catalog, built once per app."""
    return request.app.state.catalog


def get_caller(request: Request, catalog: Annotated[Catalog, Depends(get_catalog)]) -> Caller:
    """The caller; a presented token that is not valid ends the request with 401."""
    return identify(request, catalog)


def get_reader(
    request: Request,
    catalog: Annotated[Catalog, Depends(get_catalog)],
    caller: Annotated[Caller, Depends(get_caller)],
) -> Reader:
    """The catalog as this caller sees it."""
    return catalog.reader(caller.recipient, base_path(request), origin_of(request))


def origin_of(request: Request) -> str:
    """scheme://host of the request, for links that travel outside the site (citations, DCAT)."""
    return f"{request.url.scheme}://{request.url.netloc}"


def lang_of(request: Request) -> i18n.Lang:
    """The page language: ``?lang=``, else the ``ds_lang`` cookie, else Vietnamese."""
    for candidate in (request.query_params.get("lang"), request.cookies.get(i18n.LANG_COOKIE)):
        if candidate in i18n.LANGS:
            return candidate
    return i18n.DEFAULT_LANG


def get_lang(
    request: Request,
    lang: Annotated[i18n.Lang | None, Query(description="Page language: vi (default) or en; kept in a cookie.")] = None,
) -> i18n.Lang:
    """The page language, with ``?lang=`` validated (anything but vi/en is a 422)."""
    return lang or lang_of(request)


# -- errors ---------------------------------------------------------------------------------------


def _wants_json(request: Request) -> bool:
    """JSON for the API, Delta Sharing, DCAT and OpenAPI; for files, JSON unless a browser asks for HTML."""
    return answers_json(request.url.path.removeprefix(base_path(request)), request.headers.get("accept", ""))


def _error(
    request: Request,
    status: int,
    key: str,
    detail: str,
    extra: Mapping[str, str] | None = None,
    retry_after: int | None = None,
) -> Response:
    """An error answer as JSON or as a page; a refused cookie token is cleared so the next visit is anonymous."""
    headers: dict[str, str] = dict(extra or {})
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
    if _wants_json(request):
        sharing = request.url.path.removeprefix(base_path(request)).startswith("/delta-sharing/")
        problem = error_body(status, detail) if sharing else {"detail": detail}  # the protocol's own error object
        response: Response = JSONResponse(problem, status_code=status, headers=headers)
    else:
        from datashare.catalog.pages import render_error

        response = render_error(request, status, key, lang_of(request), headers, detail)
    if status == 401 and request.cookies.get(TOKEN_COOKIE):
        response.delete_cookie(TOKEN_COOKIE, path=(base_path(request) or "") + "/")
    return response


async def _on_catalog_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CatalogError)
    log.warning("%s %r refused with %s: %s", request.method, request.url.path, exc.status, exc.detail)
    return _error(request, exc.status, exc.key, exc.detail, retry_after=getattr(exc, "retry_after", None))


async def _on_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}" for e in exc.errors())
    log.warning("%s %r refused with 422: %s", request.method, request.url.path, problems[:500])
    return _error(request, 422, "bad_request", f"Invalid request: {problems[:500]}")


def _allowed(request: Request, first: str) -> str:
    """Every method some route answers on this path (Starlette names only the first route's); HEAD with GET."""
    from starlette.routing import Match

    methods = {m.strip() for m in first.split(",") if m.strip()}
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match != Match.NONE:
            methods.update(getattr(route, "methods", None) or ())
    if "GET" in methods:
        methods.add("HEAD")  # see head.py
    return ", ".join(sorted(methods))


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        log.warning("%s %r refused with 404: no such route", request.method, request.url.path)
        return _error(request, 404, "not_found", NotFound().detail)
    log.warning("%s %r refused with %s: %s", request.method, request.url.path, exc.status_code, exc.detail)
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = _allowed(request, headers.get("Allow", ""))
    return _error(
        request,
        exc.status_code,
        "method_not_allowed" if exc.status_code == 405 else "bad_request",
        str(exc.detail),
        headers,
    )


# -- middleware -----------------------------------------------------------------------------------


async def _guard(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """Refuse oversized query parameters; add security headers; keep a ``?lang=`` choice in a cookie.

    The OData service takes longer ``$filter`` texts and bounds them itself (``odata.expr``).
    """
    odata = request.url.path.removeprefix(base_path(request)).startswith("/odata")
    for name, value in [] if odata else request.query_params.multi_items():
        if len(value) > MAX_PARAM or len(name) > MAX_PARAM:
            exc = BadRequest(f"query parameter {name[:40]!r} is longer than {MAX_PARAM} characters")
            return await _on_catalog_error(request, exc)
    response = await call_next(request)
    for header, value in PAGE_HEADERS.items():
        response.headers.setdefault(header, value)
    chosen = request.query_params.get("lang")
    if chosen in i18n.LANGS and response.status_code < 400:
        response.set_cookie(
            i18n.LANG_COOKIE,
            chosen,
            max_age=365 * 24 * 3600,
            path=(base_path(request) or "") + "/",
            samesite="lax",
            httponly=True,
        )
    return response


def create_app(settings: Settings | None = None, limits: LimitSettings | None = None) -> FastAPI:
    """The catalog app; ``settings`` and ``limits`` default to the environment's (read now).

    A malformed ``DATASHARE_CATALOG_*`` variable is a :class:`~datashare.exceptions.ConfigError` here,
    never a silent default.
    """
    from datashare.catalog import (
        api,
        contract,
        dcat,
        feeds,
        formats,
        head,
        pages,
        release_changes,
        sharing,
        signed,
        subscriptions,
    )
    from datashare.catalog.odata import router as odata

    app = FastAPI(
        title="Datashare catalog",
        version="1",
        description=(
            "Danh mục dữ liệu của Bộ Nông nghiệp và Môi trường / Data catalog of the Ministry of Agriculture "
            "and Environment. Send `Authorization: Bearer <token>` to see shared and restricted data; "
            "without a token only open data is visible. Datasets you may not read answer 404 like unknown ones."
        ),
        docs_url=None,  # Swagger UI loads scripts from a CDN: the catalog serves no external URL
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    limit_settings = limits or LimitSettings.from_env()
    app.state.catalog = Catalog(settings or Settings.from_env(), Limits(limit_settings))
    app.add_exception_handler(CatalogError, _on_catalog_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.middleware("http")(_guard)
    app.add_middleware(head.AnswerHead)
    app.add_middleware(RequestSizeLimit, limits=limit_settings)  # added last: runs first, before any parsing
    for router in (  # in this order: a request goes to the first route that matches it
        api.router,
        subscriptions.router,
        release_changes.api_router,
        dcat.router,
        odata.router,
        sharing.router,
        signed.router,
        release_changes.router,
        api.files_router,
        pages.router,
        formats.router,
        feeds.router,
    ):
        app.include_router(router)
    app.openapi = lambda: contract.openapi(app)  # type: ignore[method-assign]
    return app
