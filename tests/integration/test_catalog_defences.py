"""The catalog defends itself: size limits (431, 414), per-caller rate limits (429 + Retry-After), access log.

One store per module, made by the real pipeline on a small SQLite unit (the open ``air_quality_hourly``),
with tokens for two agencies. Each test builds its own app with the limits it tries, and callers on
different addresses are TestClients with their own client address (what a server puts in the ASGI
scope). One test runs the app under a real uvicorn server on loopback with a 200 KB header.
"""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from datashare.access import Tokens, load_registry
from datashare.access import log as accesslog
from datashare.catalog.app import create_app
from datashare.catalog.limits import Limits, LimitSettings, Rate, address_key
from datashare.exceptions import ConfigError
from datashare.pipeline.stages import run_dataset
from datashare.settings import Settings
from datashare.source.connections import connection_env_value
from datashare.store import Ledger, LocalBackend, ReleaseStore
from units import monitoring

REPO = Path(__file__).resolve().parents[2]
OPEN = "air_quality_hourly"
RECIPIENTS = """
recipients:
  - code: agency_a
    name: {vi: Sở A, en: Department A}
    contact: {name: Desk A, email: a@example.gov.vn}
  - code: agency_b
    name: {vi: Sở B, en: Department B}
    contact: {name: Desk B, email: b@example.gov.vn}
"""
X, Y = ("203.0.113.7", 40000), ("198.51.100.9", 40000)


@dataclass
class Env:
    settings: Settings
    store: ReleaseStore
    tokens: dict[str, str]
    part: str
    home: Path


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("defences")
    home = tmp / "home"
    (home / "dags" / "datasets").mkdir(parents=True)
    shutil.copy(REPO / "dags" / "datasets" / f"{OPEN}.yaml", home / "dags" / "datasets")
    shutil.copytree(REPO / "expectations", home / "expectations")
    (home / "config").mkdir()
    (home / "config" / "recipients.yaml").write_text(RECIPIENTS, encoding="utf-8")
    unit = f"sqlite:///{tmp / 'unit.sqlite'}"
    monitoring.generate(unit, stations=2, days=1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DATASHARE_HOME", str(home))
        mp.setenv("DATASHARE_RELEASE_ROOT", str(tmp / "releases"))
        mp.setenv("AIRFLOW_CONN_DATASHARE_SHARE", connection_env_value(f"sqlite:///{tmp / 'share.sqlite'}"))
        mp.setenv("AIRFLOW_CONN_MONRE_MONITORING", connection_env_value(unit))
        assert run_dataset(OPEN)["version"] == 1
        settings = Settings.from_env()
        store = ReleaseStore.open(settings.release_uri)
        registry = load_registry(settings.recipients_file)
        tokens = {code: Tokens(store.backend).issue(registry.get(code)) for code in ("agency_a", "agency_b")}
        part = store.release(OPEN, 1).files[0]["path"]
        yield Env(settings=settings, store=store, tokens=tokens, part=part, home=home)


def app_with(env: Env, **limits: object) -> object:
    return create_app(env.settings, LimitSettings(**limits))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def logged(env: Env, client: TestClient) -> list[dict]:
    client.app.state.catalog.access_log.flush()
    today = datetime.now(UTC).date()
    return list(accesslog.read(env.store.backend, today - timedelta(days=1), today))


# -- sizes -----------------------------------------------------------------------------------------------


def test_oversized_headers_are_refused_with_431(env: Env) -> None:
    client = TestClient(app_with(env))
    big = {"X-Filler": "a" * 200_000}
    page = client.get("/", headers=big)
    assert page.status_code == 431
    assert "Tiêu đề yêu cầu quá lớn: 2001" in page.text and "Request header fields too large: 2001" in page.text
    assert page.headers["content-type"].startswith("text/plain")
    api = client.get("/api/v1/datasets", headers=big)
    assert api.status_code == 431 and api.json()["detail"].startswith("Request header fields too large")
    cookie = client.get("/", headers={"Cookie": "ds_lang=vi; x=" + "c" * 17_000})
    assert cookie.status_code == 431  # one long cookie counts like any other header
    assert client.get("/", headers={"Cookie": "x=" + "c" * 8_000}).status_code == 200  # a large but sane one
    tight = TestClient(app_with(env, max_header_bytes=1024))
    assert tight.get("/", headers={"X-Filler": "a" * 1100}).status_code == 431
    assert tight.get("/").status_code == 200


def test_long_urls_are_refused_with_414(env: Env) -> None:
    client = TestClient(app_with(env))
    long_path = client.get("/datasets/" + "a" * 5000)
    assert long_path.status_code == 414 and "Request URL too long" in long_path.text
    long_query = client.get("/api/v1/datasets", params={"q": "x", "pad": "p" * 5000})
    assert long_query.status_code == 414 and "Request URL too long" in long_query.json()["detail"]
    assert client.get("/datasets/" + "a" * 300).status_code == 400  # under the limit: the usual id check
    encoded = client.get("/datasets/" + "%C3%A1" * 800)  # 4800 bytes as sent, 1600 characters decoded
    assert encoded.status_code == 414


def test_oversized_bodies_are_refused_with_413(env: Env) -> None:
    client = TestClient(app_with(env))
    declared = client.post("/login", data={"token": "x" * 1_000_000})
    assert declared.status_code == 413 and "Request body too large: 10000" in declared.text
    chunks_read = []

    def chunked() -> Iterator[bytes]:  # no Content-Length: counted as the app reads it
        yield b"token="
        for _ in range(100):
            chunks_read.append(1)
            yield b"y" * 4096

    streamed = client.post("/login", content=chunked(), headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert streamed.status_code == 413 and "Request body too large" in streamed.text
    ordinary = client.post("/login", data={"token": env.tokens["agency_a"]}, follow_redirects=False)
    assert ordinary.status_code == 303  # a real sign-in is far below the limit


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_real_server_answers_the_apps_431_and_the_catalog_still_serves(env: Env) -> None:
    import uvicorn

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app_with(env), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)

        def get(path: str, headers: dict[str, str]) -> tuple[int, str]:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
            try:
                conn.request("GET", path, headers=headers)
                response = conn.getresponse()
                return response.status, response.read().decode("utf-8", errors="replace")
            finally:
                conn.close()

        status, body = get("/", {"X-Filler": "a" * 200_000})
        assert status == 431 and "Request header fields too large" in body  # the app's answer, not the server's
        status, body = get("/datasets/" + "b" * 6000, {})
        assert status == 414 and "Request URL too long" in body
        assert get("/api/v1/datasets", {})[0] == 200
    finally:
        server.should_exit = True
        thread.join(timeout=20)
    assert not thread.is_alive()


# -- failed tokens ---------------------------------------------------------------------------------------------


def test_failed_tokens_are_limited_per_address_and_a_good_token_elsewhere_still_works(env: Env) -> None:
    app = app_with(env, token_failures=Rate(3, 600))
    attacker, agency = TestClient(app, client=X), TestClient(app, client=Y)
    guesses = [f"dsh_agency_a_{i:043d}" for i in range(5)]
    assert [attacker.get("/api/v1/datasets", headers=bearer(g)).status_code for g in guesses[:3]] == [401] * 3
    refused = attacker.get("/api/v1/datasets", headers=bearer(guesses[3]))
    assert refused.status_code == 429 and 190 <= int(refused.headers["retry-after"]) <= 200
    assert refused.json()["detail"].startswith("Too many failed tokens")
    # Past the limit even a valid token from that address is refused unchecked: guessing cannot go on.
    assert attacker.get("/api/v1/datasets", headers=bearer(env.tokens["agency_a"])).status_code == 429
    login = attacker.post("/login", data={"token": guesses[4]})
    assert login.status_code == 429 and "Quá nhiều yêu cầu" in login.text and login.headers["retry-after"]
    assert attacker.get("/api/v1/datasets").status_code == 200  # no token: nothing to guess, still served
    # Another address: a valid token works, a bad one is its own first failure.
    assert agency.get("/api/v1/datasets", headers=bearer(env.tokens["agency_a"])).status_code == 200
    assert agency.get("/api/v1/datasets", headers=bearer(guesses[0])).status_code == 401


def test_an_ipv6_client_is_one_caller_per_64(env: Env) -> None:
    app = app_with(env, token_failures=Rate(2, 600))
    first = TestClient(app, client=("2001:db8:1:2::1", 1))
    same_64 = TestClient(app, client=("2001:db8:1:2:ffff::9", 1))
    other_64 = TestClient(app, client=("2001:db8:1:3::1", 1))
    bad = bearer("dsh_nobody_" + "x" * 40)
    assert [first.get("/api/v1/datasets", headers=bad).status_code for _ in range(2)] == [401, 401]
    assert same_64.get("/api/v1/datasets", headers=bad).status_code == 429
    assert other_64.get("/api/v1/datasets", headers=bad).status_code == 401
    assert address_key("::ffff:192.0.2.1") == address_key("192.0.2.1") == "address:192.0.2.1"


def test_forwarded_for_is_read_only_from_trusted_proxies(env: Env) -> None:
    bad = bearer("dsh_nobody_" + "y" * 40)
    untrusted = app_with(env, token_failures=Rate(2, 600))
    spoofing = [TestClient(untrusted, client=("192.0.2.50", 1)) for _ in range(3)]
    codes = [c.get("/", headers=bad | {"X-Forwarded-For": f"10.9.9.{i}"}).status_code for i, c in enumerate(spoofing)]
    assert codes == [401, 401, 429]  # X-Forwarded-For from anyone is ignored: one caller, 192.0.2.50

    proxied = create_app(
        env.settings, LimitSettings(token_failures=Rate(2, 600), trusted_proxies=(_net("10.0.0.0/8"),))
    )
    proxy = TestClient(proxied, client=("10.0.0.2", 1))
    # The client writes whatever it likes on the left; the proxy appends the address it saw on the right.
    hops = ["6.6.6.6, 198.51.100.20", "7.7.7.7, 198.51.100.20", "1.1.1.1, 198.51.100.20, 10.0.0.3"]
    assert [proxy.get("/", headers=bad | {"X-Forwarded-For": h}).status_code for h in hops] == [401, 401, 429]
    assert proxy.get("/", headers=bad | {"X-Forwarded-For": "198.51.100.21"}).status_code == 401  # another client
    limits = Limits(LimitSettings(trusted_proxies=(_net("10.0.0.0/8"),)))
    peer = {"client": ("10.0.0.2", 1)}
    assert limits.client_address(peer, [("x-forwarded-for", "garbage, 198.51.100.5")]) == "198.51.100.5"
    assert limits.client_address(peer, [("x-forwarded-for", "198.51.100.5, not-an-ip")]) == "10.0.0.2"
    assert limits.client_address(peer, [("x-forwarded-for", "10.1.1.1, 10.2.2.2")]) == "10.1.1.1"
    assert limits.client_address({"client": ("192.0.2.9", 1)}, [("x-forwarded-for", "1.2.3.4")]) == "192.0.2.9"
    assert limits.client_address({"client": None}, []) == "unknown"


def _net(text: str) -> object:
    import ipaddress

    return ipaddress.ip_network(text)


# -- downloads -------------------------------------------------------------------------------------------------


def test_a_download_flood_gets_429_with_retry_after_then_recovers(env: Env) -> None:
    # 3 at once, then one per 4 s: slow enough that a loaded machine cannot refill the bucket between requests
    app = app_with(env, downloads=Rate(3, 12))
    flooder, neighbour = TestClient(app, client=X), TestClient(app, client=Y)
    url = f"/datasets/{OPEN}/v/1/files/{env.part}"
    before = len(logged(env, flooder))
    assert [flooder.get(url).status_code for _ in range(3)] == [200] * 3
    refused = flooder.get(url, headers={"Accept": "text/html"})  # a browser gets the bilingual page
    assert refused.status_code == 429 and 1 <= int(refused.headers["retry-after"]) <= 4
    assert "Quá nhiều yêu cầu" in refused.text and "Too many downloads" in refused.text
    assert refused.headers["content-type"].startswith("text/html") and b"PAR1" not in refused.content
    assert neighbour.get(url).status_code == 200  # another anonymous address is another caller
    assert flooder.get(url, headers=bearer(env.tokens["agency_b"])).status_code == 200  # a recipient is its own
    entries = logged(env, flooder)[before:]
    assert [e["recipient"] for e in entries] == ["anonymous"] * 4 + ["agency_b"]  # refused: not recorded
    time.sleep(int(refused.headers["retry-after"]))
    assert flooder.get(url).status_code == 200


def test_a_recipients_download_is_not_served_unrecorded(env: Env) -> None:
    class Refusing:
        """The store's backend, refusing writes under the access log (the store is otherwise fine)."""

        def __init__(self, inner: object) -> None:
            self._inner = inner
            self.refuse = True

        def put_bytes(self, key: str, data: bytes) -> None:
            if self.refuse and key.startswith(accesslog.PREFIX):
                raise OSError(28, "No space left on device")
            self._inner.put_bytes(key, data)

        def __getattr__(self, name: str) -> object:
            return getattr(self._inner, name)

    app = app_with(env)
    backend = Refusing(env.store.backend)
    app.state.catalog.store = ReleaseStore(backend)  # type: ignore[arg-type]
    client = TestClient(app)
    url = f"/datasets/{OPEN}/v/1/files/{env.part}"
    refused = client.get(url, headers={**bearer(env.tokens["agency_a"]), "Accept": "text/html"})
    assert refused.status_code == 503 and b"PAR1" not in refused.content
    assert "Không ghi nhận được lượt tải" in refused.text
    assert client.get(url).status_code == 200  # anonymous: batched, kept in memory until the store takes it
    backend.refuse = False
    today = datetime.now(UTC).date()
    before = len(list(accesslog.read(env.store.backend, today, today)))
    assert app.state.catalog.access_log.flush() == 2  # both kept, written once the store takes writes again
    entries = list(accesslog.read(env.store.backend, today, today))
    assert len(entries) == before + 2 and {e["recipient"] for e in entries[-2:]} == {"agency_a", "anonymous"}


# -- the access log itself --------------------------------------------------------------------------------------


def test_access_log_batches_rotates_by_day_and_flushes_on_a_timer(tmp_path: Path, monkeypatch) -> None:
    backend = LocalBackend(tmp_path / "store")
    log = accesslog.AccessLog(backend, batch=3, flush_s=0.3)
    stamps = iter(["2026-11-01T23:59:59.900Z", "2026-11-02T00:00:00.100Z", "2026-11-02T00:00:01.000Z"])
    monkeypatch.setattr(accesslog, "_now", lambda: next(stamps))
    for n in range(3):
        log.record(dataset_id=OPEN, version=1, file=f"f{n}", recipient="anonymous")
    keys = backend.list(accesslog.PREFIX)  # the third entry filled the batch: two objects, one per UTC day
    assert [k.split("/")[2] for k in keys] == ["2026-11-01", "2026-11-02"]
    assert [e["file"] for e in accesslog.read(backend, date(2026, 11, 1), date(2026, 11, 2))] == ["f0", "f1", "f2"]
    assert [e["file"] for e in accesslog.read(backend, date(2026, 11, 2), date(2026, 11, 2))] == ["f1", "f2"]

    monkeypatch.setattr(accesslog, "_now", lambda: "2026-11-03T08:00:00.000Z")
    log.record(dataset_id=OPEN, version=1, file="late", recipient="anonymous")
    deadline = time.monotonic() + 10
    while not backend.list(f"{accesslog.PREFIX}/2026-11-03"):  # written by the timer, no further call
        assert time.monotonic() < deadline, "the timer never flushed"
        time.sleep(0.1)
    log.close()
    assert len(backend.list(accesslog.PREFIX)) == 3  # objects are written once, never rewritten


def test_access_log_command_reads_a_date_range(env: Env, capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    from datashare.tools.cli import main

    app = app_with(env)
    client = TestClient(app, client=X)
    url = f"/datasets/{OPEN}/v/1/files/{env.part}"
    assert client.get(url, headers=bearer(env.tokens["agency_a"])).status_code == 200
    assert client.get(url).status_code == 200
    app.state.catalog.access_log.flush()
    monkeypatch.setenv("DATASHARE_HOME", str(env.home))
    monkeypatch.setenv("DATASHARE_RELEASE_ROOT", env.settings.release_uri)
    today = datetime.now(UTC).date().isoformat()
    assert main(["access-log", "--from", today, "--to", today, "--recipient", "agency_a"]) == 0
    out = capsys.readouterr().out
    assert f"agency_a             {OPEN} v1 {env.part}  from 203.0.113.7" in out
    assert "anonymous" not in out.split("download(s)")[0] and "by recipient: agency_a" in out
    assert main(["access-log", "--json"]) == 0  # today by default
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {e["recipient"] for e in lines} >= {"agency_a", "anonymous"}
    assert all("dsh_" not in json.dumps(e) for e in lines)
    assert main(["access-log", "--from", "2026-01-01", "--to", "2026-01-01"]) == 0
    assert "0 download(s) from 2026-01-01 to 2026-01-01" in capsys.readouterr().out
    assert main(["access-log", "--from", today, "--to", "2020-01-01"]) == 2
    assert "is before" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["access-log", "--from", "yesterday"])
    assert "expected a date YYYY-MM-DD" in capsys.readouterr().err
    ledger = [e.body["event"] for e in Ledger(env.store.backend).entries()]
    assert "download_served" not in ledger


# -- settings ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("DATASHARE_CATALOG_DOWNLOADS", "lots", "expected N/S"),
        ("DATASHARE_CATALOG_DOWNLOADS", "0/60", "expected N/S"),
        ("DATASHARE_CATALOG_TOKEN_FAILURES", "10/-1", "expected N/S"),
        ("DATASHARE_CATALOG_MAX_HEADER_BYTES", "16k", "expected a number of bytes"),
        ("DATASHARE_CATALOG_MAX_URL_BYTES", "10", "expected a number of bytes"),
        ("DATASHARE_CATALOG_MAX_BODY_BYTES", "-5", "expected a number of bytes"),
        ("DATASHARE_CATALOG_TRUSTED_PROXIES", "10.0.0.0/8, proxy.local", "'proxy.local' is not an IP"),
    ],
)
def test_malformed_limit_settings_name_the_variable(variable: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=variable) as caught:
        LimitSettings.from_env({variable: value})
    assert message in str(caught.value)


def test_limit_settings_from_the_environment() -> None:
    limits = LimitSettings.from_env(
        {
            "DATASHARE_CATALOG_DOWNLOADS": "30/60",
            "DATASHARE_CATALOG_MAX_URL_BYTES": "2048",
            "DATASHARE_CATALOG_TRUSTED_PROXIES": "10.0.0.0/8, ::1",
        }
    )
    assert limits.downloads == Rate(30, 60.0) and limits.max_url_bytes == 2048
    assert [str(n) for n in limits.trusted_proxies] == ["10.0.0.0/8", "::1/128"]
    assert LimitSettings.from_env({}) == LimitSettings()
