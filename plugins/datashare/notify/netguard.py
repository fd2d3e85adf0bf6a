"""Outbound HTTP to addresses given by other agencies, without letting them aim us at our own network.

A webhook URL is chosen by the subscriber, so it is input from outside: pointed at ``127.0.0.1``,
the cloud metadata address ``169.254.169.254`` or a private database host, our POST would reach
what the subscriber cannot (server-side request forgery). So:

- only ``http`` and ``https``, no user-info (``user:pass@``), no fragment, at most 2,048 characters;
- the host's every address is checked, at subscription and again at each delivery (a name may be
  re-pointed after it was accepted): it must be global unicast; loopback, private, link-local,
  shared (CGNAT), reserved, documentation and multicast addresses are refused, including IPv4
  addresses carried in IPv6 (``::ffff:10.0.0.1``, 6to4, Teredo, NAT64);
- networks named in ``DATASHARE_WEBHOOK_ALLOWED_NETWORKS`` (comma-separated CIDRs, e.g. an
  agency network reached over the government WAN, or ``127.0.0.0/8`` in tests) are allowed although
  not global; the unspecified address and multicast never are;
- the connection goes to the address that was checked (the name is not resolved twice), with the
  host name kept for ``Host``, TLS SNI and certificate checks; redirects are not followed; no proxy
  from the environment is used; the whole exchange has one deadline (a receiver sending its answer a
  byte at a time is cut off), and the answer's body is not read.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import os
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from datashare.exceptions import TargetRefused, WebhookError

ALLOWED_ENV = "DATASHARE_WEBHOOK_ALLOWED_NETWORKS"
MAX_URL_CHARS = 2048
URL_PATTERN = (
    r"^[Hh][Tt][Tt][Pp][Ss]?://"
    r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?"  # a host name or an IPv4 address
    r"(?::(?:[0-9]{1,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?"
    r'(?:[/?][!"$-~]*)?$'  # a path and query of printable ASCII, without spaces or a #fragment
)
"""The form :func:`parse_url` accepts, as a JSON Schema pattern for clients (it also takes IPv6 literals,
international names and non-ASCII paths). Where the host points is checked apart (:func:`resolve`): no
pattern can say that."""
NAT64 = ipaddress.ip_network("64:ff9b::/96")
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Target:
    """A checked webhook URL, split for the connection."""

    scheme: str
    host: str
    port: int
    path: str

    @property
    def url(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        netloc = host if self.port == default else f"{host}:{self.port}"
        return f"{self.scheme}://{netloc}{self.path}"


@dataclass(frozen=True)
class Answer:
    """What a POST got: the status, or the error that prevented one."""

    status: int | None
    error: str | None
    seconds: float


def allowed_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Networks allowed although not global (``DATASHARE_WEBHOOK_ALLOWED_NETWORKS``)."""
    out = []
    for part in os.environ.get(ALLOWED_ENV, "").split(","):
        if part.strip():
            try:
                out.append(ipaddress.ip_network(part.strip(), strict=False))
            except ValueError:
                raise WebhookError(f"{ALLOWED_ENV}: {part.strip()!r} is not a network (CIDR)") from None
    return out


def parse_url(url: str) -> Target:
    """Check a webhook URL's form; :class:`WebhookError` saying what is wrong."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL_CHARS:
        raise WebhookError(f"the URL must be 1..{MAX_URL_CHARS} characters")
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise WebhookError("the URL contains spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise WebhookError(f"the URL is malformed: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise WebhookError("the URL must start with https:// or http://")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise WebhookError("the URL must not carry a user name or password")
    if parts.fragment:
        raise WebhookError("the URL must not have a #fragment")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise WebhookError("the URL has no host")
    try:
        host = host.encode("idna").decode("ascii") if not host.isascii() else host
    except UnicodeError:
        raise WebhookError("the URL's host name is not a valid domain name") from None
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return Target(scheme=scheme, host=host, port=port or (443 if scheme == "https" else 80), path=path)


def _embedded(address: Address) -> list[Address]:
    """The address and any IPv4 address it carries."""
    out: list[Address] = [address]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped:
            out.append(address.ipv4_mapped)
        if address.sixtofour:
            out.append(address.sixtofour)
        if address.teredo:
            out.extend(address.teredo)
        if address in NAT64:
            out.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return out


def forbidden(address: Address) -> str | None:
    """Why an address may not be a webhook target, or None when it may."""
    allowed = allowed_networks()
    for a in _embedded(address):
        if a.is_unspecified or a.is_multicast:
            return f"{address} is {'unspecified' if a.is_unspecified else 'multicast'}"
        if any(a.version == n.version and a in n for n in allowed):
            continue
        if not a.is_global or a.is_reserved or a.is_link_local or a.is_loopback or a.is_private:
            return f"{address} is not a public address (loopback, private, link-local or reserved)"
    return None


def resolve(target: Target) -> list[Address]:
    """Every address of the host, each one allowed; :class:`TargetRefused` naming the one refused."""
    try:
        literal = ipaddress.ip_address(target.host)
        addresses: list[Address] = [literal]
    except ValueError:
        try:
            infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise TargetRefused(f"cannot resolve {target.host}: {exc}") from None
        addresses = sorted({ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos}, key=str)
    if not addresses:
        raise TargetRefused(f"{target.host} has no address")
    for address in addresses:
        why = forbidden(address)
        if why:
            raise TargetRefused(f"refused target {target.host}: {why}; set {ALLOWED_ENV} to allow a network on purpose")
    return addresses


def check_url(url: str) -> Target:
    """A webhook URL checked in form and in where it points now."""
    target = parse_url(url)
    resolve(target)
    return target


class _PinnedHTTP(http.client.HTTPConnection):
    """HTTP to a checked address, with the URL's host name in ``Host``."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    """HTTPS to a checked address; SNI and the certificate check use the URL's host name."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


def post(url: str, body: bytes, headers: dict[str, str], *, timeout_s: float = 10.0) -> Answer:
    """POST ``body`` to a webhook URL after checking where it points; never raises for network trouble."""
    started = time.monotonic()
    try:
        target = parse_url(url)
        address = str(resolve(target)[0])
    except WebhookError as exc:
        return Answer(status=None, error=str(exc), seconds=time.monotonic() - started)
    kind = _PinnedHTTPS if target.scheme == "https" else _PinnedHTTP
    connection = kind(target.host, target.port, address, timeout_s)

    def expire() -> None:  # a receiver trickling bytes would reset a per-read timeout for ever
        sock = connection.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    deadline = threading.Timer(timeout_s, expire)
    deadline.daemon = True
    deadline.start()
    try:
        connection.request("POST", target.path, body=body, headers={**headers, "Content-Length": str(len(body))})
        response = connection.getresponse()  # the status is what the log keeps; the body is not read
        return Answer(status=response.status, error=None, seconds=time.monotonic() - started)
    except (OSError, http.client.HTTPException) as exc:
        return Answer(status=None, error=f"{type(exc).__name__}: {exc}"[:300], seconds=time.monotonic() - started)
    finally:
        deadline.cancel()
        connection.close()
