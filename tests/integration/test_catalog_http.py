"""The catalog over HTTP: who sees what, downloads and their access log, hostile input, DCAT, OpenAPI, languages.

One store is built per module by the real pipeline on a small SQLite unit: the repository's open
``air_quality_hourly`` (v1, v2, and a v3 that is then withdrawn) plus two copies of it classified
``shared`` and ``restricted`` (granted to ``agency_a`` only), in a temporary DATASHARE_HOME.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from datashare.access import Tokens, load_registry
from datashare.access import log as accesslog
from datashare.catalog.app import create_app
from datashare.pipeline.stages import run_dataset
from datashare.settings import Settings
from datashare.source.connections import connection_env_value
from datashare.store import ReleaseStore
from datashare.store.ledger import Ledger
from datashare.store.withdrawals import withdraw
from units import monitoring

REPO = Path(__file__).resolve().parents[2]
OPEN, SHARED, RESTRICTED = "air_quality_hourly", "air_quality_shared", "air_quality_restricted"
HOSTILE_TITLE = "Shared air <script>alert('x')</script>"
RECIPIENTS = """
recipients:
  - code: agency_a
    name: {vi: Sở A, en: Department A}
    contact: {name: Desk A, email: a@example.gov.vn}
  - code: agency_b
    name: {vi: Sở B, en: Department B}
    contact: {name: Desk B, email: b@example.gov.vn}
  - code: other_c
    name: {vi: Viện C, en: Institute C}
    kind: other
    contact: {name: Desk C, email: c@example.org}
  - code: retired_d
    name: {vi: Sở D, en: Department D}
    active: false
    contact: {name: Desk D, email: d@example.gov.vn}
"""


@dataclass
class Env:
    """The module's deployment: settings, store, tokens by caller name."""

    settings: Settings
    store: ReleaseStore
    tokens: dict[str, str | None]


def _write_specs(home: Path) -> None:
    """The open spec as is, plus shared and restricted copies reading the same unit with the same suite."""
    datasets = home / "dags" / "datasets"
    datasets.mkdir(parents=True)
    shutil.copy(REPO / "dags" / "datasets" / f"{OPEN}.yaml", datasets)
    shutil.copytree(REPO / "expectations", home / "expectations")
    (home / "config").mkdir()
    (home / "config" / "recipients.yaml").write_text(RECIPIENTS, encoding="utf-8")
    base = yaml.safe_load((datasets / f"{OPEN}.yaml").read_text(encoding="utf-8"))
    for dataset_id, sharing, importance in ((SHARED, "shared", "important"), (RESTRICTED, "restricted", "core")):
        spec = json.loads(json.dumps(base))
        spec.update(id=dataset_id, suite=OPEN, classification={"sharing": sharing, "importance": importance})
        spec["title"] = {"vi": f"Không khí ({sharing})", "en": HOSTILE_TITLE if sharing == "shared" else "Air (r)"}
        spec["sector"] = "air_restricted_sector" if sharing == "restricted" else spec["sector"]
        if sharing == "restricted":
            spec["recipients"] = ["agency_a"]
            for column in spec["columns"]:
                if column["name"] == "station_name":
                    column["personal_data"] = "keep"
        (datasets / f"{dataset_id}.yaml").write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("catalog")
    home = tmp / "home"
    _write_specs(home)
    unit = f"sqlite:///{tmp / 'unit.sqlite'}"
    monitoring.generate(unit, stations=2, days=1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DATASHARE_HOME", str(home))
        mp.setenv("DATASHARE_RELEASE_ROOT", str(tmp / "releases"))
        mp.setenv("AIRFLOW_CONN_DATASHARE_SHARE", connection_env_value(f"sqlite:///{tmp / 'share.sqlite'}"))
        mp.setenv("AIRFLOW_CONN_MONRE_MONITORING", connection_env_value(unit))
        for dataset_id in (OPEN, SHARED, RESTRICTED):
            assert run_dataset(dataset_id)["version"] == 1
        monitoring.append_day(unit)
        assert run_dataset(OPEN)["version"] == 2
        monitoring.append_day(unit)
        assert run_dataset(OPEN)["version"] == 3
        settings = Settings.from_env()
        store = ReleaseStore.open(settings.release_uri)
        withdraw(store, OPEN, 3, "Trạm đo lỗi / faulty sensor")
        registry = load_registry(settings.recipients_file)
        tokens = Tokens(store.backend)
        issued = {code: tokens.issue(registry.get(code)) for code in ("agency_a", "agency_b", "other_c", "retired_d")}
        revoked = tokens.issue(registry.get("agency_a"))
        assert tokens.revoke("agency_a", hashlib.sha256(revoked.encode()).hexdigest()[:12]) == 1
        yield Env(
            settings=settings,
            store=store,
            tokens={
                "anonymous": None,
                "gov_a": issued["agency_a"],
                "gov_b": issued["agency_b"],
                "other_c": issued["other_c"],
                "retired_d": issued["retired_d"],
                "forged": "dsh_agency_a_" + "A" * 43,
                "revoked": revoked,
            },
        )


@pytest.fixture
def client(env: Env) -> TestClient:
    return TestClient(create_app(env.settings))


def _auth(env: Env, who: str) -> dict[str, str]:
    token = env.tokens[who]
    return {"Authorization": f"Bearer {token}"} if token else {}


def _downloads(env: Env, client: TestClient, backend: object = None) -> list[dict]:
    """The access log's download entries, after the client's catalog flushed what it buffered."""
    client.app.state.catalog.access_log.flush()
    today = datetime.now(UTC).date()
    return list(accesslog.read(backend or env.store.backend, today - timedelta(days=1), today))


# -- the access matrix --------------------------------------------------------------------------------

READERS = {  # which callers read which classification; 401 for a presented token that is not valid
    OPEN: {"anonymous", "gov_a", "gov_b", "other_c", "retired_d"},
    SHARED: {"gov_a", "gov_b"},
    RESTRICTED: {"gov_a"},
}
CALLERS = ["anonymous", "gov_a", "gov_b", "other_c", "retired_d", "forged", "revoked"]


@pytest.mark.parametrize("who", CALLERS)
@pytest.mark.parametrize("dataset_id", [OPEN, SHARED, RESTRICTED])
def test_access_matrix(env: Env, client: TestClient, dataset_id: str, who: str) -> None:
    headers = _auth(env, who)
    invalid = who in ("forged", "revoked")
    allowed = who in READERS[dataset_id]
    expected = 401 if invalid else 200 if allowed else 404
    version = 2 if dataset_id == OPEN else 1
    release = env.store.release(dataset_id, version)
    part = release.files[0]
    before = len(_downloads(env, client))

    listing = client.get("/", headers=headers)
    api_list = client.get("/api/v1/datasets", headers=headers)
    assert listing.status_code == api_list.status_code == (401 if invalid else 200)
    if not invalid:
        assert (f'data-dataset="{dataset_id}"' in listing.text) is allowed
        assert (dataset_id in [d["id"] for d in api_list.json()["items"]]) is allowed
    page = client.get(f"/datasets/{dataset_id}", headers=headers)
    api = client.get(f"/api/v1/datasets/{dataset_id}", headers=headers)
    api_release = client.get(f"/api/v1/datasets/{dataset_id}/v/{version}", headers=headers)
    release_page = client.get(f"/datasets/{dataset_id}/v/{version}", headers=headers)
    download = client.get(f"/datasets/{dataset_id}/v/{version}/files/{part['path']}", headers=headers)
    for response in (page, api, api_release, release_page, download):
        assert response.status_code == expected, (response.request.url, response.text[:300])
    if invalid:
        assert page.headers["www-authenticate"] == 'Bearer error="invalid_token"'
        assert api.json() == {"detail": "The access token is invalid or has been revoked."}
    if expected == 200:
        assert hashlib.sha256(download.content).hexdigest() == part["sha256"]
        assert api.json()["releases"][0]["files"][0]["sha256"] == part["sha256"]
        entry = _downloads(env, client)[-1]
        assert len(_downloads(env, client)) == before + 1
        assert entry["dataset_id"] == dataset_id and entry["version"] == version
        assert entry["file"] == part["path"]
        assert entry["recipient"] == {"anonymous": "anonymous", "gov_a": "agency_a", "gov_b": "agency_b"}.get(
            who, {"other_c": "other_c", "retired_d": "retired_d"}.get(who)
        )
    else:
        assert len(_downloads(env, client)) == before  # refused downloads leave no entry
        for response in (page, api, download):
            assert release.manifest["datashare"]["title"]["vi"] not in response.text
    if expected == 404:  # not yours answers exactly like an id that does not exist (the page echoes its own URL)
        unknown = client.get("/datasets/no_such_dataset", headers=headers)
        assert page.text == unknown.text.replace("no_such_dataset", dataset_id)
        assert api.json() == client.get("/api/v1/datasets/no_such_dataset", headers=headers).json()
        unknown_file = client.get(f"/datasets/no_such_dataset/v/{version}/files/{part['path']}", headers=headers)
        assert download.text == unknown_file.text.replace("no_such_dataset", dataset_id)


def test_downloads_stay_out_of_the_ledger_and_no_token_is_kept(env: Env, client: TestClient) -> None:
    ledger = Ledger(env.store.backend)
    before = [e.body for e in ledger.entries()]
    for who in ("gov_a", "anonymous", "other_c"):
        assert client.get(f"/datasets/{OPEN}/v/2/files/datapackage.json", headers=_auth(env, who)).status_code == 200
    report = client.get(f"/datasets/{OPEN}/v/2/files/validation/report.html", headers=_auth(env, "gov_a"))
    assert report.status_code == 200 and "Validation report" in report.text
    assert "sandbox" in report.headers["content-security-policy"]
    assert (
        client.get(f"/datasets/{RESTRICTED}/v/1/files/datapackage.json", headers=_auth(env, "gov_a")).status_code == 200
    )
    assert [e.body for e in ledger.entries()] == before  # the audit chain did not grow
    assert not any(e["event"] == "download_served" for e in before)
    assert ledger.verify() == []

    entries = _downloads(env, client)
    assert {e["file"] for e in entries} >= {"datapackage.json", "validation/report.html"}
    mine = entries[-5:]
    assert [e["recipient"] for e in mine] == ["agency_a", "anonymous", "other_c", "agency_a", "agency_a"]
    assert [e["via"] for e in mine] == ["header", "anonymous", "header", "header", "header"]
    assert all(e["address"] == "testclient" for e in mine if e["recipient"] != "anonymous")
    assert "address" not in mine[1]  # an anonymous reader's address is not kept
    stored = b"".join(env.store.backend.get_bytes(k) for k in env.store.backend.list(accesslog.PREFIX))
    stored += json.dumps(before).encode()
    for token in env.tokens.values():
        if token:
            assert token.encode() not in stored
    assert b"dsh_" not in stored


def test_cookie_login_and_logout(env: Env, client: TestClient) -> None:
    bad = client.post("/login", data={"token": "dsh_nobody_" + "x" * 40})
    assert bad.status_code == 401 and "không hợp lệ" in bad.text
    response = client.post("/login", data={"token": env.tokens["gov_a"]}, follow_redirects=False)
    assert response.status_code == 303 and "ds_token" in response.headers["set-cookie"]
    assert "httponly" in response.headers["set-cookie"].lower()
    home = client.get("/")
    assert f'data-dataset="{RESTRICTED}"' in home.text and "Sở A" in home.text
    assert client.get(f"/datasets/{RESTRICTED}").status_code == 200
    client.post("/logout")
    assert f'data-dataset="{RESTRICTED}"' not in client.get("/").text


def test_revoked_cookie_is_refused_and_cleared(env: Env, client: TestClient) -> None:
    tokens = Tokens(env.store.backend)
    token = tokens.issue(load_registry(env.settings.recipients_file).get("agency_b"))
    assert client.post("/login", data={"token": token}).status_code == 200  # redirected to the list
    assert f'data-dataset="{SHARED}"' in client.get("/").text
    tokens.revoke("agency_b", hashlib.sha256(token.encode()).hexdigest()[:12])
    refused = client.get("/")
    assert refused.status_code == 401 and "ds_token=" in refused.headers["set-cookie"]
    assert "đã bị thu hồi" in refused.text
    after = client.get("/")  # the cleared cookie makes the next visit anonymous
    assert after.status_code == 200 and f'data-dataset="{SHARED}"' not in after.text


# -- pages ------------------------------------------------------------------------------------------


def test_dataset_page_shows_schema_releases_and_sql_view(env: Env, client: TestClient) -> None:
    page = client.get(f"/datasets/{RESTRICTED}", headers=_auth(env, "gov_a")).text
    assert f'<code id="sql-view">{RESTRICTED}</code>' in page  # the embedded SQLite share has no schemas
    assert "Giữ nguyên (chỉ dữ liệu dùng riêng)" in page  # station_name keeps personal data: restricted only
    assert "Thời điểm quan trắc" in page
    open_page = client.get(f"/datasets/{OPEN}").text
    v2 = env.store.release(OPEN, 2)
    for f in v2.files:
        assert f["sha256"] in open_page
    assert f"/datasets/{OPEN}/v/1" in open_page and f"/datasets/{OPEN}/v/2/files/validation/report.html" in open_page


def test_hostile_text_is_escaped(env: Env, client: TestClient) -> None:
    page = client.get(f"/datasets/{SHARED}?lang=en", headers=_auth(env, "gov_b")).text
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "<script" not in client.get("/?lang=en", headers=_auth(env, "gov_b")).text


def test_withdrawn_release_is_hidden(env: Env, client: TestClient) -> None:
    assert env.store.versions(OPEN) == [1, 2, 3]
    listed = client.get("/api/v1/datasets", params={"q": OPEN}).json()["items"][0]
    assert listed["latest_version"] == 2 and listed["verdict"] == "passed" and listed["fresh"] is True
    assert [r["version"] for r in client.get(f"/api/v1/datasets/{OPEN}").json()["releases"]] == [2, 1]
    v3 = env.store.release(OPEN, 3)
    assert client.get(f"/datasets/{OPEN}/v/3").status_code == 404
    assert client.get(f"/datasets/{OPEN}/v/3/files/{v3.files[0]['path']}").status_code == 404
    assert client.get(f"/api/v1/datasets/{OPEN}/v/3").status_code == 404


@pytest.mark.parametrize(
    ("query", "found"),
    [
        ({"q": unicodedata.normalize("NFD", "KHÔNG KHÍ")}, {OPEN, SHARED, RESTRICTED}),
        ({"q": "CHAT LUONG khong khi tu dong"}, {OPEN, SHARED, RESTRICTED}),  # accents and case do not matter
        ({"q": "hourly automatic"}, {OPEN, SHARED, RESTRICTED}),  # the copies share the description
        ({"q": "khong khi restricted"}, {RESTRICTED}),
        ({"q": "zzz"}, set()),
        ({"classification": "restricted"}, {RESTRICTED}),
        ({"sector": "environment_monitoring"}, {OPEN, SHARED}),
        ({"sector": "environment_monitoring", "classification": "shared"}, {SHARED}),
    ],
)
def test_search_and_filters(env: Env, client: TestClient, query: dict, found: set) -> None:
    items = client.get("/api/v1/datasets", params=query, headers=_auth(env, "gov_a")).json()["items"]
    assert {i["id"] for i in items} == found
    if query.get("q") and len(found) > 1:
        assert items[0]["id"] == OPEN  # the whole phrase is in its title: ranked first
    page = client.get("/", params=query, headers=_auth(env, "gov_a")).text
    assert {d for d in (OPEN, SHARED, RESTRICTED) if f'data-dataset="{d}"' in page} == found


def test_filters_offer_only_visible_sectors(env: Env, client: TestClient) -> None:
    assert client.get("/api/v1/datasets").json()["sectors"] == ["environment_monitoring"]
    assert "air_restricted_sector" not in client.get("/", headers=_auth(env, "gov_b")).text
    assert "air_restricted_sector" in client.get("/", headers=_auth(env, "gov_a")).text


def test_language_switch_is_kept_in_a_cookie(client: TestClient) -> None:
    assert "<h1>Danh mục dữ liệu</h1>" in client.get("/").text
    english = client.get("/?lang=en")
    assert "<h1>Data catalog</h1>" in english.text and '<html lang="en">' in english.text
    assert "ds_lang=en" in english.headers["set-cookie"]
    assert "<h1>Data catalog</h1>" in client.get("/").text
    assert "Schema" in client.get(f"/datasets/{OPEN}").text
    assert "<h1>Danh mục dữ liệu</h1>" in client.get("/?lang=vi").text
    assert client.get("/?lang=fr").status_code == 422


# -- hostile input --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/datasets/..%2F..%2Fconfig", 404),
        ("/datasets/%2e%2e", 400),
        ("/datasets/x%27%20OR%201%3D1--", 400),
        ("/datasets/air_quality_hourly;DROP%20TABLE%20x", 400),
        ("/api/v1/datasets/air_quality_hourly%22%3B--", 400),
        ("/datasets/air_quality_hourly%00", 400),
        ("/datasets/AIR_QUALITY_HOURLY", 400),
        ("/datasets/" + "a" * 201, 400),
        (f"/datasets/{OPEN}/v/abc", 422),
        (f"/datasets/{OPEN}/v/0", 422),
        (f"/api/v1/datasets/{OPEN}/v/1.5", 422),
        (f"/datasets/{OPEN}/v/2/files/%2e%2e/%2e%2e/%2e%2e/config/recipients.yaml", 404),
        (f"/datasets/{OPEN}/v/2/files/..%2F..%2F_access%2Ftokens", 404),
        (f"/datasets/{OPEN}/v/2/files//etc/passwd", 404),
        (f"/datasets/{OPEN}/v/2/files/data%5Cpart-00000.parquet", 404),
        (f"/datasets/{OPEN}/v/2/files/data/part-00000.parquet%00", 404),
        (f"/datasets/{OPEN}/v/2/files/_claim.json", 404),
        (f"/datasets/{OPEN}/v/2/files/../../v3/data/part-00000.parquet", 404),
        ("/?page=0", 422),
        ("/api/v1/datasets?page=abc", 422),
        ("/?sector=..%2Fx", 422),
        ("/api/v1/datasets?classification=secret", 422),
        ("/?q=" + "q" * 201, 400),
        ("/api/v1/datasets?q=" + "q" * 201, 400),
    ],
)
def test_hostile_requests_fail_cleanly(
    env: Env, client: TestClient, caplog: pytest.LogCaptureFixture, path: str, status: int
) -> None:
    before = len(_downloads(env, client))
    with caplog.at_level(logging.WARNING, logger="datashare.catalog"):
        response = client.get(path)
    assert response.status_code == status, response.text[:300]
    assert any("refused with" in r.getMessage() for r in caplog.records)
    assert len(_downloads(env, client)) == before
    assert "agency_" not in response.text and "Traceback" not in response.text


def test_malformed_authorization_header_is_refused(client: TestClient) -> None:
    assert client.get("/api/v1/datasets", headers={"Authorization": "Basic YWJjOmRlZg=="}).status_code == 401
    assert client.get("/api/v1/datasets", headers={"Authorization": "Bearer "}).status_code == 401
    assert client.get("/api/v1/datasets", headers={"Authorization": "Bearer dsh_" + "x" * 300}).status_code == 401


# -- machine-readable metadata --------------------------------------------------------------------------


def test_dcat_lists_open_datasets_only(env: Env, client: TestClient) -> None:
    response = client.get("/dcat.jsonld", headers=_auth(env, "gov_a"))  # a token changes nothing here
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/ld+json")
    doc = response.json()
    assert doc["@type"] == "dcat:Catalog"
    assert [d["dct:identifier"] for d in doc["dcat:dataset"]] == [OPEN]
    assert SHARED not in response.text and RESTRICTED not in response.text
    (dataset,) = doc["dcat:dataset"]
    assert {t["@language"] for t in dataset["dct:title"]} == {"vi", "en"}
    assert dataset["dct:license"]["@id"] == "https://creativecommons.org/licenses/by/4.0/"
    assert dataset["dcat:version"] == "2"  # v3 is withdrawn
    v2 = env.store.release(OPEN, 2)
    assert dataset["dct:modified"]["@value"] == v2.record["committed_at"]
    dists = dataset["dcat:distribution"]
    assert [d["spdx:checksum"]["spdx:checksumValue"]["@value"] for d in dists] == [f["sha256"] for f in v2.files]
    assert [int(d["dcat:byteSize"]["@value"]) for d in dists] == [f["bytes"] for f in v2.files]
    first = dists[0]
    assert first["spdx:checksum"]["spdx:algorithm"]["@id"] == "spdx:checksumAlgorithm_sha256"
    assert first["dcat:mediaType"]["@id"].endswith("application/vnd.apache.parquet")
    url = first["dcat:downloadURL"]["@id"]
    assert url.startswith("http://testserver/datasets/air_quality_hourly/v/2/files/data/")
    fetched = client.get(url.removeprefix("http://testserver"))
    assert hashlib.sha256(fetched.content).hexdigest() == v2.files[0]["sha256"]


def test_openapi_documents_the_api(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    for path in ("/api/v1/datasets", "/api/v1/datasets/{dataset_id}", "/api/v1/datasets/{dataset_id}/v/{version}"):
        assert path in schema["paths"], path
        assert {"200", "401", "404"} <= set(schema["paths"][path]["get"]["responses"])
    assert {"DatasetPage", "DatasetDetail", "ReleaseDetail", "FileInfo"} <= set(schema["components"]["schemas"])
    assert "/" not in schema["paths"] and "/login" not in schema["paths"]  # pages stay out of the API schema


def test_pages_are_self_contained(client: TestClient) -> None:
    response = client.get(f"/datasets/{OPEN}")
    html = response.text
    assert "<script" not in html and " src=" not in html and "url(" not in html
    # The only links in the head are feed auto-discovery, to the catalog's own relative paths: nothing is loaded.
    links = re.findall(r"<link [^>]*>", html)
    assert links and all('rel="alternate"' in link and 'href="/' in link for link in links), links
    # The only absolute URL is the dataset's own, in the citation people copy.
    assert set(re.findall(r"https?://[^\s<\"}]+", html)) == {"http://testserver/datasets/air_quality_hourly/v/2"}
    assert "default-src 'none'" in response.headers["content-security-policy"]


def test_pages_inline_the_one_stylesheet(client: TestClient) -> None:
    """Every catalog page inlines the stylesheet the audit reports inline too (datashare.display), once."""
    from datashare.display import stylesheet

    for path in ("/", f"/datasets/{OPEN}", "/login"):
        html = client.get(path).text
        assert f"<style>{stylesheet()}</style>" in html and html.count("<style") == 1, path
        assert '<body class="catalog">' in html and " style=" not in html, path


# -- other ways to send a file ----------------------------------------------------------------------------


class _NoLocalPath:
    """The local backend as a remote one that cannot presign: no local path, so the catalog streams a copy."""

    def __init__(self, inner: object) -> None:
        self._inner = inner

    def local_path(self, key: str) -> None:
        return None

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)


def test_backend_without_local_path_streams_a_copy(env: Env) -> None:
    app = create_app(env.settings)
    app.state.catalog.store = ReleaseStore(_NoLocalPath(env.store.backend))  # type: ignore[arg-type]
    client = TestClient(app)
    part = env.store.release(RESTRICTED, 1).files[0]
    url = f"/datasets/{RESTRICTED}/v/1/files/{part['path']}"
    assert client.get(url, headers=_auth(env, "gov_b")).status_code == 404
    response = client.get(url, headers=_auth(env, "gov_a"))
    assert response.status_code == 200 and hashlib.sha256(response.content).hexdigest() == part["sha256"]
    assert _downloads(env, client)[-1]["recipient"] == "agency_a"


def test_s3_store_redirects_to_a_presigned_url_after_the_check(env: Env, s3_server, s3_bucket: str) -> None:
    import urllib.request

    from datashare.store.s3 import S3Backend

    s3 = S3Backend(s3_bucket, "releases", endpoint_url=s3_server.endpoint_url)
    local = env.store.backend
    for key in local.list(""):  # the whole store, tokens and ledger included
        s3.put_file(key, local.local_path(key))
    app = create_app(env.settings)
    app.state.catalog.store = ReleaseStore(s3)
    client = TestClient(app)
    part = env.store.release(RESTRICTED, 1).files[0]
    url = f"/datasets/{RESTRICTED}/v/1/files/{part['path']}"
    for who in ("anonymous", "gov_b", "other_c"):
        refused = client.get(url, headers=_auth(env, who), follow_redirects=False)
        assert refused.status_code == 404 and "location" not in refused.headers
    response = client.get(url, headers=_auth(env, "gov_a"), follow_redirects=False)
    assert response.status_code == 307
    location = response.headers["location"]
    assert location.startswith(s3_server.endpoint_url) and "Expires=" in location
    with urllib.request.urlopen(location, timeout=10) as fetched:
        assert hashlib.sha256(fetched.read()).hexdigest() == part["sha256"]
    assert not [e for e in Ledger(s3).entries() if e.body["event"] == "download_served"]
    # A recipient's download is written to the store before the redirect is answered: no flush needed.
    today = datetime.now(UTC).date()
    served = list(accesslog.read(s3, today - timedelta(days=1), today))
    assert served[-1]["recipient"] == "agency_a" and served[-1]["file"] == part["path"]
    assert all(k.startswith(f"{accesslog.PREFIX}/") for k in s3.list("_access/downloads"))
    assert client.get(f"/api/v1/datasets/{RESTRICTED}", headers=_auth(env, "gov_a")).status_code == 200


def test_airflow_mounts_the_catalog(env: Env) -> None:
    from airflow.api_fastapi.app import init_plugins
    from airflow.plugins_manager import get_plugin_info
    from fastapi import FastAPI

    plugin = next(p for p in get_plugin_info() if p["name"] == "datashare_catalog")
    assert plugin["external_views"] == [
        {"name": "Catalog / Danh mục", "href": "/datashare/datasets/{DAG_ID}", "destination": "dag"}
    ]
    parent = FastAPI()
    init_plugins(parent)
    client = TestClient(parent)
    home = client.get("/datashare/?lang=en")
    assert home.status_code == 200 and "<h1>Data catalog</h1>" in home.text
    assert 'href="/datashare/login"' in home.text  # links stay under the mount prefix
    assert "/api/v1/datasets" in client.get("/datashare/openapi.json").json()["paths"]
