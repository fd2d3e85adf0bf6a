"""Where webhooks may not go: loopback, private, link-local and reserved targets, however they are written."""

from __future__ import annotations

import ipaddress

import pytest

from datashare.exceptions import WebhookError
from datashare.notify.netguard import check_url, forbidden, parse_url
from datashare.notify.webhooks import signature, verify_signature


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",  # IPv4-mapped
        "http://[::ffff:a9fe:a9fe]/latest/meta-data",  # 169.254.169.254, mapped
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata
        "http://10.0.0.5/hook",
        "http://172.16.3.4/hook",
        "http://192.168.1.1/hook",
        "http://100.64.0.1/hook",  # shared address space (CGNAT)
        "http://0.0.0.0/hook",
        "http://[2002:7f00:1::]/hook",  # 6to4 carrying 127.0.0.1
        "http://[64:ff9b::a00:1]/hook",  # NAT64 carrying 10.0.0.1
        "http://224.0.0.1/hook",
        "http://2130706433/hook",  # 127.0.0.1 as one integer
    ],
)
def test_private_targets_are_refused(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATASHARE_WEBHOOK_ALLOWED_NETWORKS", raising=False)
    with pytest.raises(WebhookError, match=r"refused target|cannot resolve"):
        check_url(url)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://example.org/hook", "https://"),
        ("file:///etc/passwd", "https://"),
        ("gopher://127.0.0.1:6379/_INFO", "https://"),
        ("http://user:secret@example.org/hook", "user name"),
        ("http://example.org/hook#x", "fragment"),
        ("http:///hook", "no host"),
        ("http://example.org:99999/", "malformed"),
        ("http://exa mple.org/", "spaces"),
        ("http://example.org/\r\nX-Injected: 1", "control"),
        ("https://" + "a" * 2050, "characters"),
        ("", "characters"),
    ],
)
def test_malformed_urls_are_refused_with_the_reason(url: str, why: str) -> None:
    with pytest.raises(WebhookError, match=why):
        parse_url(url)


def test_an_allowed_network_is_allowed_and_nothing_else(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATASHARE_WEBHOOK_ALLOWED_NETWORKS", "127.0.0.0/8, 10.20.0.0/16")
    assert check_url("http://127.0.0.1:9/hook").url == "http://127.0.0.1:9/hook"
    assert forbidden(ipaddress.ip_address("10.20.1.2")) is None
    assert forbidden(ipaddress.ip_address("10.21.1.2")) is not None
    assert forbidden(ipaddress.ip_address("169.254.169.254")) is not None
    assert forbidden(ipaddress.ip_address("0.0.0.0")) is not None  # never, whatever the setting
    assert forbidden(ipaddress.ip_address("93.184.215.14")) is None  # a public address
    monkeypatch.setenv("DATASHARE_WEBHOOK_ALLOWED_NETWORKS", "not-a-network")
    with pytest.raises(WebhookError, match="DATASHARE_WEBHOOK_ALLOWED_NETWORKS"):
        forbidden(ipaddress.ip_address("10.0.0.1"))


def test_signature_covers_timestamp_and_body() -> None:
    body = b'{"event":"release.published"}'
    signed = signature("whsec_x", 1_800_000_000, body)
    assert verify_signature("whsec_x", body, "1800000000", signed, now=1_800_000_100)
    assert not verify_signature("whsec_y", body, "1800000000", signed, now=1_800_000_100)  # other secret
    assert not verify_signature("whsec_x", body + b" ", "1800000000", signed, now=1_800_000_100)  # other body
    assert not verify_signature("whsec_x", body, "1800000001", signed, now=1_800_000_100)  # other timestamp
    assert not verify_signature("whsec_x", body, "1800000000", signed, now=1_800_000_400)  # replayed too late
    assert not verify_signature("whsec_x", body, "18e8", signed, now=1_800_000_100)


def test_a_receiver_answering_byte_by_byte_is_cut_off(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket
    import threading
    import time

    from datashare.notify.netguard import post

    monkeypatch.setenv("DATASHARE_WEBHOOK_ALLOWED_NETWORKS", "127.0.0.0/8")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    stop = threading.Event()

    def trickle() -> None:
        conn, _ = server.accept()
        conn.recv(65536)
        for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 1000:
            if stop.is_set():
                break
            try:
                conn.sendall(bytes([byte]))
            except OSError:
                break
            time.sleep(0.2)  # each byte well inside a per-read timeout
        conn.close()

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    started = time.monotonic()
    answer = post(f"http://127.0.0.1:{server.getsockname()[1]}/hook", b"{}", {}, timeout_s=1.0)
    elapsed = time.monotonic() - started
    stop.set()
    server.close()
    assert answer.status is None and answer.error
    assert elapsed < 5
