"""The catalog's own defences: request size limits, who the caller is on the network, per-caller rate limits.

They live in the app, not in the server, because the catalog also runs mounted inside Airflow's
api-server, whose server settings are not ours (and uvicorn with httptools accepts a 200 KB header).

| variable | default | what |
|---|---|---|
| ``DATASHARE_CATALOG_MAX_HEADER_BYTES`` | ``16384`` | all request header lines together (431) |
| ``DATASHARE_CATALOG_MAX_URL_BYTES`` | ``4096`` | path and query string as sent (414) |
| ``DATASHARE_CATALOG_MAX_ODATA_URL_BYTES`` | ``32768`` | the same under ``/odata`` (Power BI sends long filters) |
| ``DATASHARE_CATALOG_MAX_SHARING_BODY_BYTES`` | ``2097152`` | body under ``/delta-sharing`` (query hints) |
| ``DATASHARE_CATALOG_MAX_API_BODY_BYTES`` | ``65536`` | body under ``/api`` (a subscription, however escaped) |
| ``DATASHARE_CATALOG_MAX_BODY_BYTES`` | ``16384`` | any other request body: the sign-in form (413) |
| ``DATASHARE_CATALOG_TOKEN_FAILURES`` | ``10/600`` | failed tokens per client address: 10, then 1 per 60 s (429) |
| ``DATASHARE_CATALOG_DOWNLOADS`` | ``120/60`` | downloads per caller: 120, then 2 per second (429) |
| ``DATASHARE_CATALOG_TRUSTED_PROXIES`` | (none) | proxies (``10.0.0.0/8,::1``) whose ``X-Forwarded-For`` is read |

A rate ``N/S`` is a token bucket: it holds N, refills N per S seconds. A refused request gets 429 with
``Retry-After`` (seconds until the next one is allowed). The caller of a download is its token's
recipient; an anonymous caller, or anyone presenting a token, is its client address (an IPv6 client by
its /64, which one host usually holds whole). While an address is past its failed-token limit, every
token it presents is refused unchecked, valid or not: otherwise guessing would go on, just slower to
read. Other addresses and valid tokens elsewhere are unaffected.

The client address is the connection's peer. ``X-Forwarded-For`` is anyone's to write, so it is read
only when the peer is a trusted proxy, from the right (the hop our proxy appended) leftwards, skipping
trusted proxies: the first address that is not one is the client. Let either the server
(uvicorn ``--proxy-headers``) or this setting interpret it, not both.

Buckets are in memory, per process (each api-server worker counts on its own: the effective limit is
per worker). Full buckets are forgotten first when more than ``MAX_KEYS`` callers are tracked.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from datashare.catalog.service import CatalogError
from datashare.exceptions import ConfigError

log = logging.getLogger(__name__)

MAX_KEYS = 100_000
"""Callers tracked per limit; beyond it, full buckets are dropped first, then the least recently used."""

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def answers_json(path: str, accept: str) -> bool:
    """Whether a refusal of ``path`` (inside the app's mount point) is JSON rather than a page.

    JSON for the API, Delta Sharing, DCAT and the OpenAPI document; for files, JSON unless a browser
    asks for HTML. One rule for the app's answers and for the limits refused before the app runs.
    """
    if path.startswith(("/api/", "/delta-sharing/")) or path.endswith(".jsonld") or path == "/openapi.json":
        return True
    return "/files/" in path and "text/html" not in accept


class RateLimited(CatalogError):
    """Too many requests of one kind from one caller: 429 with ``Retry-After``."""

    status = 429
    key = "too_many_requests"

    def __init__(self, what: str, retry_after: int) -> None:
        super().__init__(f"Too many {what}: try again in {retry_after} s.")
        self.retry_after = retry_after


@dataclass(frozen=True)
class Rate:
    """``capacity`` requests at once, refilled at ``capacity`` per ``per_s`` seconds."""

    capacity: int
    per_s: float

    @classmethod
    def parse(cls, text: str, variable: str) -> Rate:
        """``"N/S"``: N requests, refilled over S seconds; anything else names the variable at fault."""
        count, _, seconds = text.strip().partition("/")
        try:
            rate = cls(int(count), float(seconds))
        except ValueError:
            rate = None
        if rate is None or rate.capacity < 1 or not 0 < rate.per_s < 10**7:
            raise ConfigError(f"{variable}={text!r}: expected N/S (N requests per S seconds, both positive)")
        return rate


@dataclass(frozen=True)
class LimitSettings:
    """The catalog's limits, from the environment (see the module's table)."""

    max_header_bytes: int = 16_384
    max_url_bytes: int = 4_096
    max_odata_url_bytes: int = 32_768
    max_sharing_body_bytes: int = 2 * 1024 * 1024
    """Delta Sharing queries carry predicate hints in their body; the protocol's own parser refuses past 1 MiB."""
    """OData clients (Power BI's query folding) send long ``$filter`` URLs; the OData parser bounds their depth."""
    max_api_body_bytes: int = 65_536
    """A subscription's JSON (a 2,048-character URL, 100 dataset ids) fits even with every character escaped."""
    max_body_bytes: int = 16_384
    token_failures: Rate = Rate(10, 600)
    downloads: Rate = Rate(120, 60)
    trusted_proxies: tuple[Network, ...] = ()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> LimitSettings:
        """Read the ``DATASHARE_CATALOG_*`` variables; a malformed one is a :class:`ConfigError` naming it."""
        env = os.environ if environ is None else environ
        defaults = cls()

        def size(variable: str, default: int) -> int:
            text = env.get(variable, "").strip()
            if not text:
                return default
            if not text.isdigit() or not 256 <= int(text) <= 10**7:
                raise ConfigError(f"{variable}={text!r}: expected a number of bytes from 256 to 10000000")
            return int(text)

        def rate(variable: str, default: Rate) -> Rate:
            text = env.get(variable, "").strip()
            return Rate.parse(text, variable) if text else default

        proxies = []
        for item in env.get("DATASHARE_CATALOG_TRUSTED_PROXIES", "").split(","):
            if item.strip():
                try:
                    proxies.append(ipaddress.ip_network(item.strip(), strict=False))
                except ValueError:
                    raise ConfigError(
                        f"DATASHARE_CATALOG_TRUSTED_PROXIES: {item.strip()!r} is not an IP address or network"
                    ) from None
        return cls(
            max_header_bytes=size("DATASHARE_CATALOG_MAX_HEADER_BYTES", defaults.max_header_bytes),
            max_url_bytes=size("DATASHARE_CATALOG_MAX_URL_BYTES", defaults.max_url_bytes),
            max_odata_url_bytes=size("DATASHARE_CATALOG_MAX_ODATA_URL_BYTES", defaults.max_odata_url_bytes),
            max_sharing_body_bytes=size("DATASHARE_CATALOG_MAX_SHARING_BODY_BYTES", defaults.max_sharing_body_bytes),
            max_api_body_bytes=size("DATASHARE_CATALOG_MAX_API_BODY_BYTES", defaults.max_api_body_bytes),
            max_body_bytes=size("DATASHARE_CATALOG_MAX_BODY_BYTES", defaults.max_body_bytes),
            token_failures=rate("DATASHARE_CATALOG_TOKEN_FAILURES", defaults.token_failures),
            downloads=rate("DATASHARE_CATALOG_DOWNLOADS", defaults.downloads),
            trusted_proxies=tuple(proxies),
        )


@dataclass
class _Bucket:
    tokens: float
    stamp: float


@dataclass
class Buckets:
    """Token buckets by caller key, thread-safe (the catalog's routes run in a thread pool)."""

    rate: Rate
    what: str
    clock: Callable[[], float] = time.monotonic
    _buckets: OrderedDict[str, _Bucket] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _refilled(self, key: str, now: float) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = _Bucket(float(self.rate.capacity), now)
            self._buckets[key] = bucket
            self._evict(now)
        else:
            self._buckets.move_to_end(key)
            refill = (now - bucket.stamp) * self.rate.capacity / self.rate.per_s
            bucket.tokens = min(float(self.rate.capacity), bucket.tokens + refill)
            bucket.stamp = now
        return bucket

    def _evict(self, now: float) -> None:
        if len(self._buckets) <= MAX_KEYS:
            return
        per_s = self.rate.capacity / self.rate.per_s
        full = [k for k, b in self._buckets.items() if b.tokens + (now - b.stamp) * per_s >= self.rate.capacity]
        for key in full[: len(self._buckets) - MAX_KEYS]:
            del self._buckets[key]
        while len(self._buckets) > MAX_KEYS:
            self._buckets.popitem(last=False)

    def _retry_after(self, bucket: _Bucket) -> int:
        return max(1, math.ceil((1 - bucket.tokens) * self.rate.per_s / self.rate.capacity))

    def check(self, key: str) -> None:
        """Raise :class:`RateLimited` if ``key`` has nothing left, without spending anything."""
        with self._lock:
            bucket = self._refilled(key, self.clock())
            if bucket.tokens < 1:
                raise RateLimited(self.what, self._retry_after(bucket))

    def spend(self, key: str) -> None:
        """Spend one for ``key``; :class:`RateLimited` (and nothing spent) if it has nothing left."""
        with self._lock:
            bucket = self._refilled(key, self.clock())
            if bucket.tokens < 1:
                raise RateLimited(self.what, self._retry_after(bucket))
            bucket.tokens -= 1


class Limits:
    """The limits of one catalog app: settings and the buckets they fill."""

    def __init__(self, settings: LimitSettings | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings or LimitSettings.from_env()
        self.token_failures = Buckets(self.settings.token_failures, "failed tokens from this address", clock)
        self.downloads = Buckets(self.settings.downloads, "downloads", clock)

    def client_address(self, scope: Mapping[str, Any], headers: Iterable[tuple[str, str]]) -> str:
        """The caller's network address (see the module's note on ``X-Forwarded-For``)."""
        client = scope.get("client")
        peer = str(client[0]) if client else "unknown"
        if not self.settings.trusted_proxies or not self._trusted(peer):
            return peer
        hops = [h.strip() for name, value in headers if name.lower() == "x-forwarded-for" for h in value.split(",")]
        address = peer
        for hop in reversed([h for h in hops if h]):
            try:
                ipaddress.ip_address(hop)
            except ValueError:
                break  # not an address: whatever lies left of it is the client's own say
            address = hop
            if not self._trusted(hop):
                break
        return address

    def _trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.settings.trusted_proxies)


def address_key(address: str) -> str:
    """The key of an address in the buckets: an IPv6 address by its /64, anything else as it is."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return f"address:{address}"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return f"address:{ip.ipv4_mapped}"
        return f"address:{ipaddress.ip_network(f'{ip}/64', strict=False)}"
    return f"address:{ip}"


class RequestSizeLimit:
    """ASGI middleware: refuse oversized header fields (431), URLs (414) and bodies (413) before parsing.

    A body announced too large by ``Content-Length`` is refused at once; one sent in chunks is counted
    as the app reads it, and refused as soon as it passes the limit (nothing more is read).
    """

    def __init__(self, app: ASGIApp, *, limits: LimitSettings) -> None:
        self.app = app
        self.limits = limits

    @staticmethod
    def _inside(scope: Scope, prefix: str) -> bool:
        root = str(scope.get("root_path", "")).rstrip("/")
        path = str(scope.get("path", ""))
        inside = path.removeprefix(root) if root and path.startswith(root) else path
        return inside == prefix or inside.startswith(prefix + "/")

    def _url_limit(self, scope: Scope) -> int:
        return self.limits.max_odata_url_bytes if self._inside(scope, "/odata") else self.limits.max_url_bytes

    def _body_limit(self, scope: Scope) -> int:
        if self._inside(scope, "/delta-sharing"):
            return self.limits.max_sharing_body_bytes
        return self.limits.max_api_body_bytes if self._inside(scope, "/api") else self.limits.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limits = self.limits
        url_bytes = len(scope.get("raw_path") or scope["path"].encode("utf-8")) + len(scope.get("query_string", b""))
        header_bytes = sum(len(name) + len(value) + 4 for name, value in scope.get("headers", ()))
        declared = next((v for k, v in scope.get("headers", ()) if k.lower() == b"content-length"), b"0")
        if header_bytes > limits.max_header_bytes:
            await self._refuse(scope, send, 431, "header", header_bytes, limits.max_header_bytes)
        elif url_bytes > (url_limit := self._url_limit(scope)):
            await self._refuse(scope, send, 414, "url", url_bytes, url_limit)
        elif not declared.isdigit() or int(declared) > (body_limit := self._body_limit(scope)):
            await self._refuse(scope, send, 413, "body", int(declared) if declared.isdigit() else -1, body_limit)
        else:
            await self._within_body_limit(scope, receive, send)

    async def _within_body_limit(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, counting the body; past the limit the app sees the client leave and the
        caller gets 413 instead of whatever the app answers to that."""
        received = 0
        exceeded = False
        limit = self._body_limit(scope)

        async def counted() -> Message:
            nonlocal received, exceeded
            if exceeded:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    return {"type": "http.disconnect"}  # nothing more is read
            return message

        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            if not exceeded or started:  # an answer already begun is finished as the app sends it
                started = started or message["type"] == "http.response.start"
                await send(message)

        await self.app(scope, counted, tracked)
        if exceeded and not started:
            await self._refuse(scope, send, 413, "body", received, limit)

    @staticmethod
    async def _refuse(scope: Scope, send: Send, status: int, what: str, size: int, limit: int) -> None:
        vi, en = {
            "header": ("Tiêu đề yêu cầu quá lớn", "Request header fields too large"),
            "url": ("Địa chỉ yêu cầu quá dài", "Request URL too long"),
            "body": ("Nội dung yêu cầu quá lớn", "Request body too large"),
        }[what]
        amount = f"{size} bytes" if size >= 0 else "a malformed Content-Length"
        vi_amount = f"{size} byte" if size >= 0 else "Content-Length không hợp lệ"
        vi, en = f"{vi}: {vi_amount}, tối đa {limit}.", f"{en}: {amount}, at most {limit}."
        log.warning("%s %r refused with %s: %s", scope.get("method"), scope["path"][:200], status, en)
        path = str(scope["path"]).removeprefix(str(scope.get("root_path", "")))
        accept = next((v.decode("latin-1") for k, v in scope.get("headers", ()) if k.lower() == b"accept"), "")
        if answers_json(path, accept):
            from datashare.catalog.sharing_protocol import error_body

            problem = error_body(status, en) if path.startswith("/delta-sharing/") else {"detail": en}
            body, media = json.dumps(problem).encode(), b"application/json"
        else:
            body, media = f"{vi}\n{en}\n".encode(), b"text/plain; charset=utf-8"
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", media),
                    (b"content-length", str(len(body)).encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
