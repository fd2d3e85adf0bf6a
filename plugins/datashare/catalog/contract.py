"""The OpenAPI contract: what generated clients need besides the routes FastAPI documents by itself.

- **Security schemes**: ``bearer`` (``Authorization: Bearer <token>``, what programs send) and
  ``cookie`` (``ds_token``, set by the sign-in form). Both are optional: without a token, open data is
  visible, so every operation lists the empty requirement too.
- **HEAD** answers wherever GET does (see :mod:`datashare.catalog.head`); other methods answer 405
  with an ``Allow`` header. Both are said in the description rather than as operations, so the
  document stays one operation per resource.
- **Refusals every route can give**, which no route declares itself because they happen around it:
  413, 414 and 431 from the size limits (before the app parses anything), 400 for a query parameter
  past 200 characters, and 429 with ``Retry-After`` wherever the route reads a token (past the
  failed-token limit of the client's address) or serves a download (past the caller's download
  limit), see :mod:`datashare.catalog.limits`. They are added here, in the shape of the route's own
  refusals: the API's ``Problem``, the Delta Sharing protocol's error object, JSON or a page for files.
- Otherwise routes document themselves through FastAPI: their own statuses, parameters and bodies.
"""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from datashare.catalog.auth import TOKEN_COOKIE

SECURITY_SCHEMES: dict[str, Any] = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "Access token issued by `datashare grant` to a recipient agency.",
    },
    "cookie": {
        "type": "apiKey",
        "in": "cookie",
        "name": TOKEN_COOKIE,
        "description": "The same token, kept in an HttpOnly cookie by the sign-in form (/login).",
    },
}
SECURITY: list[dict[str, list[str]]] = [{}, {"bearer": []}, {"cookie": []}]
"""Anonymous (open data only), or a token in the header, or in the cookie."""

METHODS_NOTE = (
    "\n\nEvery GET route also answers HEAD (same status and headers, no body); other methods answer 405 "
    "with an `Allow` header."
)


PROBLEM_JSON: dict[str, Any] = {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
LONG_PARAMETER = "A query parameter (name or value) longer than 200 characters."
LIMITS: dict[str, str] = {
    "413": "Request body too large (DATASHARE_CATALOG_MAX_BODY_BYTES, _MAX_API_BODY_BYTES under /api).",
    "414": "Request URL too long (DATASHARE_CATALOG_MAX_URL_BYTES).",
    "431": "Request header fields too large (DATASHARE_CATALOG_MAX_HEADER_BYTES).",
}
RATE_LIMITED: dict[str, Any] = {
    "description": "Too many requests: past the caller's download limit (DATASHARE_CATALOG_DOWNLOADS), or "
    "past the failed-token limit of the client's address (DATASHARE_CATALOG_TOKEN_FAILURES).",
    "headers": {
        "Retry-After": {
            "description": "Seconds until the next request is allowed.",
            "schema": {"type": "integer", "minimum": 1},
        }
    },
}


def _calls(dependant: Dependant) -> set[Any]:
    """Every function a route's dependencies call, however deep."""
    out, stack = set(), [dependant]
    while stack:
        current = stack.pop()
        out.add(current.call)
        stack.extend(current.dependencies)
    return out


def _reads_token(route: APIRoute) -> bool:
    """Whether the route identifies its caller, so a client past its failed-token limit gets 429 there."""
    from datashare.catalog.app import get_caller
    from datashare.catalog.sharing import get_recipient

    return bool(_calls(route.dependant) & {get_caller, get_recipient})


def add_limit_responses(schema: dict[str, Any], routes: list[Any]) -> None:
    """Document, on every operation, the refusals that happen around its route (see the module's note)."""
    for route in routes:
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        operations = schema["paths"].get(route.path_format, {})
        for method in sorted(route.methods or ()):
            operation = operations.get(method.lower())
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            responses.setdefault("400", {"description": LONG_PARAMETER, "content": copy.deepcopy(PROBLEM_JSON)})
            refusal = responses["400"].get("content") or PROBLEM_JSON  # the shape of the route's own refusals
            json_only = {k: v for k, v in refusal.items() if k == "application/json"}
            plain = {"text/plain": {"schema": {"type": "string"}}} if "text/html" in refusal else {}
            for status, description in LIMITS.items():  # answered by the middleware: JSON, or text for browsers
                responses.setdefault(status, {"description": description, "content": {**json_only, **plain}})
            if _reads_token(route):
                responses.setdefault("429", {**copy.deepcopy(RATE_LIMITED), "content": copy.deepcopy(refusal)})


def openapi(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document with security schemes (built once, then kept)."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=(app.description or "") + METHODS_NOTE,
        routes=app.routes,
    )
    schema.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
    schema["security"] = SECURITY
    add_limit_responses(schema, app.routes)
    app.openapi_schema = schema
    return schema
