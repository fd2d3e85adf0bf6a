"""Webhook subscriptions end to end: a real local receiver, the real pipeline's record stage, the API.

A module-level deployment is built once by the pipeline (the open ``air_quality_hourly`` and a
``restricted`` copy granted to ``agency_a``, v1 each, nobody subscribed); each test works on its own
copy of it, so subscriptions and deliveries of one test never reach another. Receivers are the
``webhook`` fixture of ``tests/conftest.py`` on loopback, allowed by
``DATASHARE_WEBHOOK_ALLOWED_NETWORKS=127.0.0.0/8``, as a deployment would allow an agency network.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from datashare.access import Tokens, load_registry
from datashare.catalog.app import create_app
from datashare.notify.webhooks import Webhooks, deliver_pending, notify_release, verify_signature
from datashare.pipeline.stages import run_dataset
from datashare.settings import Settings
from datashare.source.connections import connection_env_value
from datashare.spec import load_spec
from datashare.store import ReleaseStore
from units import monitoring

REPO = Path(__file__).resolve().parents[2]
OPEN, RESTRICTED = "air_quality_hourly", "air_quality_restricted"
KEY = "k" * 64
RECIPIENTS = """
recipients:
  - code: agency_a
    name: {vi: Sở A, en: Department A}
    contact: {name: Desk A, email: a@example.gov.vn}
  - code: agency_b
    name: {vi: Sở B, en: Department B}
    contact: {name: Desk B, email: b@example.gov.vn}
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A deployment folder (home, unit, releases, share) with v1 of both datasets."""
    base = tmp_path_factory.mktemp("webhooks-base")
    home = base / "home"
    datasets = home / "dags" / "datasets"
    datasets.mkdir(parents=True)
    (datasets / f"{OPEN}.yaml").write_bytes((REPO / "dags" / "datasets" / f"{OPEN}.yaml").read_bytes())
    spec = yaml.safe_load((datasets / f"{OPEN}.yaml").read_text(encoding="utf-8"))
    spec.update(
        id=RESTRICTED,
        suite=OPEN,
        title={"vi": "Không khí (dùng riêng)", "en": "Air (restricted)"},
        classification={"sharing": "restricted", "importance": "core"},
        recipients=["agency_a"],
    )
    (datasets / f"{RESTRICTED}.yaml").write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    (home / "expectations").mkdir()
    (home / "expectations" / f"{OPEN}.json").write_bytes((REPO / "expectations" / f"{OPEN}.json").read_bytes())
    (home / "config").mkdir()
    (home / "config" / "recipients.yaml").write_text(RECIPIENTS, encoding="utf-8")
    monitoring.generate(f"sqlite:///{base / 'unit.sqlite'}", stations=2, days=1)
    with pytest.MonkeyPatch.context() as mp:
        _point_at(mp, base)
        assert run_dataset(OPEN)["version"] == 1
        assert run_dataset(RESTRICTED)["version"] == 1
    return base


def _point_at(mp: pytest.MonkeyPatch, folder: Path) -> None:
    mp.setenv("DATASHARE_HOME", str(folder / "home"))
    mp.setenv("DATASHARE_RELEASE_ROOT", str(folder / "releases"))
    mp.setenv("AIRFLOW_CONN_DATASHARE_SHARE", connection_env_value(f"sqlite:///{folder / 'share.sqlite'}"))
    mp.setenv("AIRFLOW_CONN_MONRE_MONITORING", connection_env_value(f"sqlite:///{folder / 'unit.sqlite'}"))


@dataclass
class Env:
    folder: Path
    settings: Settings
    store: ReleaseStore
    client: TestClient
    tokens: dict[str, str]
    port: int
    received: list[dict]

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def subscribe(self, who: str, path: str, datasets: list[str] | None = None) -> dict:
        answer = self.client.post(
            "/api/v1/subscriptions",
            json={"url": f"http://127.0.0.1:{self.port}{path}", "datasets": datasets},
            headers=self.auth(who),
        )
        assert answer.status_code == 201, answer.text
        return answer.json()

    def at(self, path: str) -> list[dict]:
        return [r for r in self.received if r["path"] == path]


@pytest.fixture
def env(built: Path, tmp_path: Path, webhook: tuple[int, list[dict]], monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    folder = tmp_path / "deployment"
    shutil.copytree(built, folder)
    _point_at(monkeypatch, folder)
    monkeypatch.setenv("DATASHARE_WEBHOOK_KEY", KEY)
    monkeypatch.setenv("DATASHARE_WEBHOOK_ALLOWED_NETWORKS", "127.0.0.0/8")
    monkeypatch.setenv("DATASHARE_WEBHOOK_RETRY_BASE_S", "0")  # retries are due at once
    monkeypatch.setenv("DATASHARE_WEBHOOK_MAX_ATTEMPTS", "3")
    settings = Settings.from_env()
    store = ReleaseStore.open(settings.release_uri)
    registry = load_registry(settings.recipients_file)
    tokens = Tokens(store.backend)
    issued = {code: tokens.issue(registry.get(code)) for code in ("agency_a", "agency_b")}
    port, received = webhook
    yield Env(folder, settings, store, TestClient(create_app(settings)), issued, port, received)


def _spec(env: Env, dataset_id: str):
    return load_spec(env.settings.datasets_dir / f"{dataset_id}.yaml")


def test_a_new_release_reaches_granted_subscribers_signed_and_retried(env: Env) -> None:
    a_all = env.subscribe("agency_a", "/a", [OPEN, RESTRICTED])
    a_flaky = env.subscribe("agency_a", "/flaky-a", [OPEN])
    b_all = env.subscribe("agency_b", "/b")  # every dataset agency_b may read
    b_broken = env.subscribe("agency_b", "/broken", [OPEN])
    assert a_all["secret"].startswith("whsec_") and a_all["secret"] != a_flaky["secret"]

    monitoring.append_day(f"sqlite:///{env.folder / 'unit.sqlite'}")
    summary = run_dataset(OPEN)  # the real record stage calls notify_release
    assert summary["version"] == 2
    assert summary["webhooks"] == {"delivered": 2, "pending": 2}
    monitoring.append_day(f"sqlite:///{env.folder / 'unit.sqlite'}")
    assert run_dataset(RESTRICTED)["webhooks"] == {"delivered": 1}  # agency_a's only; agency_b may not read it

    (open_a, restricted_a) = env.at("/a")
    assert [r["path"] for r in env.received].count("/b") == 1
    body = json.loads(env.at("/b")[0]["body"])
    assert body["event"] == "release.published" and body["dataset"]["id"] == OPEN
    assert body["release"]["version"] == 2 and body["subscription"] == b_all["id"]
    release = env.store.release(OPEN, 2)
    assert body["release"]["manifest_sha256"] == release.record["manifest_sha256"]
    assert body["release"]["files"] == release.files
    assert body["release"]["links"]["csv"] == f"/datasets/{OPEN}/v/2/exports/{OPEN}-v2.csv"
    assert json.loads(restricted_a["body"])["dataset"]["id"] == RESTRICTED
    assert not any(RESTRICTED in r["body"].decode() for r in env.received if r["path"] != "/a")

    for received, secret in ((open_a, a_all["secret"]), (env.at("/b")[0], b_all["secret"])):
        headers = received["headers"]
        stamp, signed = headers["X-Datashare-Timestamp"], headers["X-Datashare-Signature"]
        assert received["type"] == "application/json; charset=utf-8"
        assert headers["X-Datashare-Event"] == "release.published"
        assert headers["X-Datashare-Delivery"] == json.loads(received["body"])["delivery"]
        assert verify_signature(secret, received["body"], stamp, signed)
        assert not verify_signature(a_flaky["secret"], received["body"], stamp, signed)  # another subscription's
        assert not verify_signature(secret, received["body"].replace(b'"rows"', b'"Rows"'), stamp, signed)

    # The flaky receiver answered 500 once; the broken one always does. Retries run with backoff base 0.
    assert deliver_pending() == {"delivered": 1, "pending": 1}
    assert deliver_pending() == {"failed": 1}  # the third and last attempt
    assert deliver_pending() == {}
    flaky = env.at("/flaky-a")
    assert len(flaky) == 2
    assert flaky[0]["headers"]["X-Datashare-Delivery"] == flaky[1]["headers"]["X-Datashare-Delivery"]
    for attempt in flaky:  # each attempt is signed anew, with its own timestamp
        headers = attempt["headers"]
        assert verify_signature(
            a_flaky["secret"], attempt["body"], headers["X-Datashare-Timestamp"], headers["X-Datashare-Signature"]
        )
    assert len(env.at("/broken")) == 3

    log = env.client.get(f"/api/v1/subscriptions/{a_flaky['id']}/deliveries", headers=env.auth("agency_a")).json()
    assert [(d["dataset_id"], d["version"], d["state"]) for d in log] == [(OPEN, 2, "delivered")]
    assert [a["status"] for a in log[0]["attempts"]] == [500, 204] and log[0]["next_attempt_at"] is None
    assert all(a["at"].endswith("Z") and a["ms"] >= 0 for a in log[0]["attempts"])
    log = env.client.get(f"/api/v1/subscriptions/{b_broken['id']}/deliveries", headers=env.auth("agency_b")).json()
    assert log[0]["state"] == "failed" and [a["status"] for a in log[0]["attempts"]] == [500, 500, 500]

    # A retried record stage queues nothing twice.
    before = len(env.received)
    assert notify_release(env.store, _spec(env, OPEN), release) == {}
    assert deliver_pending() == {} and len(env.received) == before


def test_subscription_api_refuses_what_it_must(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    client = env.client
    url = f"http://127.0.0.1:{env.port}/a"
    assert client.post("/api/v1/subscriptions", json={"url": url}).status_code == 401
    assert client.get("/api/v1/subscriptions").status_code == 401
    client.post("/login", data={"token": env.tokens["agency_a"]})  # a cookie is not enough to change state
    assert client.post("/api/v1/subscriptions", json={"url": url}).status_code == 401
    client.post("/logout")
    forged = {"Authorization": "Bearer dsh_agency_a_" + "A" * 43}
    assert client.post("/api/v1/subscriptions", json={"url": url}, headers=forged).status_code == 401

    a = env.auth("agency_a")
    b = env.auth("agency_b")
    restricted = client.post("/api/v1/subscriptions", json={"url": url, "datasets": [RESTRICTED]}, headers=b)
    unknown = client.post("/api/v1/subscriptions", json={"url": url, "datasets": ["no_such_dataset"]}, headers=b)
    assert restricted.status_code == unknown.status_code == 404 and restricted.json() == unknown.json()
    assert client.post("/api/v1/subscriptions", json={"url": url, "extra": 1}, headers=a).status_code == 422
    assert client.post("/api/v1/subscriptions", json={"url": url, "datasets": ["../x"]}, headers=a).status_code == 400

    monkeypatch.delenv("DATASHARE_WEBHOOK_ALLOWED_NETWORKS")
    for target, status in (
        (url, 403),  # well formed, but where webhooks may not go: refused
        (f"http://localhost:{env.port}/a", 403),
        ("http://169.254.169.254/latest/meta-data/", 403),
        ("http://[::1]/a", 403),
        ("http://10.1.2.3/a", 403),
        ("http://[::ffff:127.0.0.1]/a", 403),
        ("ftp://example.org/a", 400),  # malformed
        ("http://user:pw@example.org/a", 400),
    ):
        refused = client.post("/api/v1/subscriptions", json={"url": target}, headers=a)
        assert refused.status_code == status, (target, refused.text)
        assert ("refused target" if status == 403 else "URL") in refused.json()["detail"]
    assert env.received == []
    monkeypatch.setenv("DATASHARE_WEBHOOK_ALLOWED_NETWORKS", "127.0.0.0/8")

    created = env.subscribe("agency_a", "/a", [OPEN])
    assert client.get(f"/api/v1/subscriptions/{created['id']}", headers=env.auth("agency_b")).status_code == 404
    assert client.delete(f"/api/v1/subscriptions/{created['id']}", headers=env.auth("agency_b")).status_code == 404
    listed = client.get("/api/v1/subscriptions", headers=a).json()
    assert [s["id"] for s in listed] == [created["id"]] and "secret" not in listed[0]
    assert client.get("/api/v1/subscriptions", headers=env.auth("agency_b")).json() == []
    stored = b"".join(env.store.backend.get_bytes(k) for k in env.store.backend.list("_webhooks"))
    assert created["secret"].encode() not in stored and created["secret"][6:].encode() not in stored

    for n in range(19):
        env.subscribe("agency_a", f"/many-{n}")
    too_many = client.post("/api/v1/subscriptions", json={"url": url}, headers=a)
    assert too_many.status_code == 409 and "at most 20" in too_many.json()["detail"]

    monkeypatch.delenv("DATASHARE_WEBHOOK_KEY")
    assert client.delete(f"/api/v1/subscriptions/{created['id']}", headers=a).status_code == 204
    no_key = client.post("/api/v1/subscriptions", json={"url": url}, headers=a)
    assert no_key.status_code == 503 and "DATASHARE_WEBHOOK_KEY" in no_key.json()["detail"]
    gone = client.get(f"/api/v1/subscriptions/{created['id']}", headers=a).json()
    assert gone["deleted_at"] is not None


def test_nothing_reaches_an_agency_that_lost_access_or_a_target_that_turned_private(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept = env.subscribe("agency_a", "/kept", [OPEN])
    revoked = env.subscribe("agency_b", "/revoked", [OPEN])
    deleted = env.subscribe("agency_a", "/deleted", [OPEN])
    rebound = env.subscribe("agency_a", "/rebound", [OPEN])
    release = env.store.release(OPEN, 1)
    hooks = Webhooks(env.store, env.settings)
    assert len(hooks.enqueue(_spec(env, OPEN), release)) == 4  # queued, not yet sent

    Tokens(env.store.backend).revoke("agency_b")  # the agency's credentials are withdrawn
    assert env.client.delete(f"/api/v1/subscriptions/{deleted['id']}", headers=env.auth("agency_a")).status_code == 204
    # The allowed network goes; the rebound subscription's address is now a private one, refused at delivery.
    monkeypatch.setenv("DATASHARE_WEBHOOK_ALLOWED_NETWORKS", "127.0.0.1/32")
    sub = hooks.get(rebound["id"])
    hooks.backend.put_bytes(
        f"_webhooks/subscriptions/{sub.id}.json",
        json.dumps({**sub.to_json(), "url": f"http://127.0.0.2:{env.port}/rebound"}).encode(),
    )
    assert deliver_pending() == {"delivered": 1, "cancelled": 2, "pending": 1}
    assert [r["path"] for r in env.received] == ["/kept"]
    log = hooks.log_of(hooks.get(rebound["id"]))
    assert log[0]["attempts"][0]["status"] is None and "refused target" in log[0]["attempts"][0]["error"]
    states = {d["id"]: d["state"] for s in (revoked, deleted) for d in hooks.log_of(hooks.get(s["id"]))}
    assert set(states.values()) == {"cancelled"}
    assert notify_release(env.store, _spec(env, RESTRICTED), env.store.release(RESTRICTED, 1)) == {}  # not wanted
    assert [d["state"] for d in hooks.log_of(hooks.get(kept["id"]))] == ["delivered"]
