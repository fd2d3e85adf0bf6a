"""Who is calling: a token from ``Authorization: Bearer`` or the ``ds_token`` cookie, or nobody.

No token means an anonymous caller, who sees open data. A token that is presented but not valid
(forged, revoked, of a recipient no longer registered) is refused with 401 rather than quietly
downgraded, so a consumer whose credentials stopped working learns it at once. The token itself is
never logged nor written to the ledger: only the recipient code is.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from fastapi import Request

from datashare.access import Recipient
from datashare.catalog.service import Catalog, Unauthorized

log = logging.getLogger(__name__)

TOKEN_COOKIE = "ds_token"
MAX_TOKEN_CHARS = 200


@dataclass(frozen=True)
class Caller:
    """The caller of one request."""

    recipient: Recipient | None
    """None for an anonymous caller."""
    via: str
    """How the caller was identified: ``header``, ``cookie`` or ``anonymous``."""

    @property
    def code(self) -> str:
        """The recipient code, or ``anonymous``: what the ledger records."""
        return self.recipient.code if self.recipient else "anonymous"


def presented_token(request: Request) -> tuple[str | None, str]:
    """The token a request carries and where it came from; a malformed header counts as a bad token."""
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            return "", "header"
        return value.strip(), "header"
    cookie = request.cookies.get(TOKEN_COOKIE)
    if cookie:
        return cookie, "cookie"
    return None, "anonymous"


def check_token(catalog: Catalog, token: str) -> Recipient:
    """The recipient of a token; :class:`Unauthorized` if it is malformed, unknown, revoked or orphaned."""
    if not token or len(token) > MAX_TOKEN_CHARS or not token.isascii() or not token.isprintable():
        raise Unauthorized()
    return catalog.recipient_of(token)


def identify(request: Request, catalog: Catalog) -> Caller:
    """The caller of a request; raises :class:`Unauthorized` for a presented token that is not valid."""
    token, via = presented_token(request)
    if token is None:
        return Caller(recipient=None, via="anonymous")
    try:
        recipient = check_token(catalog, token)
    except Unauthorized:
        log.warning("Refused an invalid %s token on %s %s", via, request.method, request.url.path)
        raise
    return Caller(recipient=recipient, via=via)
