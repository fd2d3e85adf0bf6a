"""Who is calling: a token from ``Authorization: Bearer`` or the ``ds_token`` cookie, or nobody.

No token means an anonymous caller, who sees open data. A token that is presented but not valid
(forged, revoked, of a recipient no longer registered) is refused with 401 rather than quietly
downgraded, so a consumer whose credentials stopped working learns it at once. Each refusal spends one
of the client address's failed tokens; past the limit every token from that address is refused with
429 unchecked (:mod:`datashare.catalog.limits`). The token itself is never logged nor written
anywhere: only the recipient code is.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from fastapi import Request

from datashare.access import Recipient
from datashare.catalog.limits import address_key
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
    address: str = "unknown"
    """The client's network address (a trusted proxy's ``X-Forwarded-For`` taken into account)."""

    @property
    def code(self) -> str:
        """The recipient code, or ``anonymous``: what the access log records."""
        return self.recipient.code if self.recipient else "anonymous"

    @property
    def key(self) -> str:
        """Who the caller is for rate limits: its recipient, else its address."""
        return f"recipient:{self.recipient.code}" if self.recipient else address_key(self.address)


def client_address(request: Request, catalog: Catalog) -> str:
    """The caller's network address, as the catalog's limits see it."""
    return catalog.limits.client_address(request.scope, request.headers.items())


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


def check_token(catalog: Catalog, token: str, *, address: str) -> Recipient:
    """The recipient of a token; :class:`Unauthorized` if it is malformed, unknown, revoked or orphaned.

    ``address`` is the client's: past its failed-token limit this raises
    :class:`~datashare.catalog.limits.RateLimited` without looking at the token.
    """
    failures = catalog.limits.token_failures
    failures.check(address_key(address))
    try:
        if not token or len(token) > MAX_TOKEN_CHARS or not token.isascii() or not token.isprintable():
            raise Unauthorized()
        return catalog.recipient_of(token)
    except Unauthorized:
        failures.spend(address_key(address))
        raise


def identify(request: Request, catalog: Catalog) -> Caller:
    """The caller of a request; raises :class:`Unauthorized` for a presented token that is not valid."""
    token, via = presented_token(request)
    address = client_address(request, catalog)
    if token is None:
        return Caller(recipient=None, via="anonymous", address=address)
    try:
        recipient = check_token(catalog, token, address=address)
    except Unauthorized:
        log.warning("Refused an invalid %s token on %s %s from %s", via, request.method, request.url.path, address)
        raise
    return Caller(recipient=recipient, via=via, address=address)
