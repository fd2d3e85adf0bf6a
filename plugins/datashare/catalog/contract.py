"""The OpenAPI contract: what generated clients need besides the routes FastAPI documents by itself.

- **Security schemes**: ``bearer`` (``Authorization: Bearer <token>``, what programs send) and
  ``cookie`` (``ds_token``, set by the sign-in form). Both are optional: without a token, open data is
  visible, so every operation lists the empty requirement too.
- **HEAD** answers wherever GET does (see :mod:`datashare.catalog.head`); other methods answer 405
  with an ``Allow`` header. Both are said in the description rather than as operations, so the
  document stays one operation per resource.
- Routes added by other modules (changes, feeds...) document themselves through FastAPI; this
  module adds nothing per route.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

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
    app.openapi_schema = schema
    return schema
