"""The catalog as harvesters, generated clients and people use it: search, metadata, DCAT-AP, the OpenAPI contract.

One deployment per module, released by the real pipeline from a small SQLite monitoring unit: the
repository's open ``air_quality_hourly`` (14 stations: Hà Nội, Hồ Chí Minh City, Hải Phòng, and
provinces merged in 2025 such as Bình Dương and Hải Dương) and a ``shared`` copy. The DCAT export is
checked with pyshacl against the official DCAT-AP 3.0.1 shapes in ``../shared/dcat-ap-3.0.1``; the
OpenAPI document is fuzzed by schemathesis against the catalog served by uvicorn on loopback.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import yaml
from fastapi.testclient import TestClient

from datashare.access import Tokens, load_registry
from datashare.catalog.app import create_app
from datashare.catalog.limits import LimitSettings, Rate
from datashare.pipeline.stages import run_dataset
from datashare.settings import Settings
from datashare.source.connections import connection_env_value
from datashare.store import Ledger, ReleaseStore
from units import monitoring

REPO = Path(__file__).resolve().parents[2]
OPEN, SHARED = "air_quality_hourly", "air_quality_shared"
SHAPES_CANDIDATES = (REPO.parent / "shared" / "dcat-ap-3.0.1", REPO.parents[1] / "shared" / "dcat-ap-3.0.1")
FUZZ_EXAMPLES, FUZZ_SEED, FUZZ_SECONDS = 25, 20261206, 60
FUZZ_LIMITS = LimitSettings(downloads=Rate(1_000_000, 1), token_failures=Rate(1_000_000, 1))
"""The fuzzer checks the contract, not the rate limits (test_catalog_defences does): a limit reached
mid-run would answer 429 from then on and hide the routes' own logic. 429 stays documented (checked below)."""


@dataclass
class Env:
    settings: Settings
    store: ReleaseStore
    share: Path
    token: str


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("catalog-contract")
    home = tmp / "home"
    datasets = home / "dags" / "datasets"
    datasets.mkdir(parents=True)
    shutil.copy(REPO / "dags" / "datasets" / f"{OPEN}.yaml", datasets)
    shutil.copytree(REPO / "expectations", home / "expectations")
    shutil.copytree(REPO / "config", home / "config")
    spec = yaml.safe_load((datasets / f"{OPEN}.yaml").read_text(encoding="utf-8"))
    spec.update(
        id=SHARED,
        suite=OPEN,
        title={"vi": "Không khí (dùng chung)", "en": "Air (shared)"},
        classification={"sharing": "shared", "importance": "other"},
    )
    (datasets / f"{SHARED}.yaml").write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    unit = f"sqlite:///{tmp / 'unit.sqlite'}"
    monitoring.generate(unit, stations=14, days=1)
    share = tmp / "share.sqlite"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DATASHARE_HOME", str(home))
        mp.setenv("DATASHARE_RELEASE_ROOT", str(tmp / "releases"))
        mp.setenv("AIRFLOW_CONN_DATASHARE_SHARE", connection_env_value(f"sqlite:///{share}"))
        mp.setenv("AIRFLOW_CONN_MONRE_MONITORING", connection_env_value(unit))
        for dataset_id in (OPEN, SHARED):
            assert run_dataset(dataset_id)["version"] == 1
        settings = Settings.from_env()
        store = ReleaseStore.open(settings.release_uri)
        registry = load_registry(settings.recipients_file)
        token = Tokens(store.backend).issue(registry.get("sonnmt_hanoi"))
        yield Env(settings=settings, store=store, share=share, token=token)


@pytest.fixture
def client(env: Env) -> Iterator[TestClient]:
    with pytest.MonkeyPatch.context() as mp:  # the catalog reads the share's connection to name the view
        mp.setenv("AIRFLOW_CONN_DATASHARE_SHARE", connection_env_value(f"sqlite:///{env.share}"))
        yield TestClient(create_app(env.settings))


def _found(client: TestClient, headers: dict[str, str] | None = None, **params: Any) -> list[str]:
    response = client.get("/api/v1/datasets", params=params, headers=headers or {})
    assert response.status_code == 200, response.text
    ids = [i["id"] for i in response.json()["items"]]
    page = client.get("/", params=params, headers=headers or {}).text
    assert [d for d in re.findall(r'data-dataset="([a-z_]+)"', page)] == ids  # the page lists the same
    return ids


def _published(env: Env) -> Any:
    release = env.store.release(OPEN, 1)
    return pq.read_table(env.store.backend.local_path(f"{release.prefix}/{release.files[0]['path']}"))


# -- search -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("q", "found"),
    [
        ("PM2.5 Hà Nội", [OPEN]),
        ("Hà Nội", [OPEN]),
        ("Hanoi", [OPEN]),
        ("ha noi", [OPEN]),
        (unicodedata.normalize("NFD", "HÀ NỘI"), [OPEN]),
        ("air quality", [OPEN]),
        ("bụi mịn", [OPEN]),
        ("bui min", [OPEN]),
        ("BỤI MỊN", [OPEN]),
        ("Bình Dương", [OPEN]),  # a station of old Bình Dương (74) ...
        ("Thành phố Hồ Chí Minh", [OPEN]),  # ... is in Hồ Chí Minh City from 1 July 2025
        ("Hải Dương", [OPEN]),
        ("nồng độ NO2", []),  # every word must match: "nồng độ" is nowhere
        ("2026 Đà Nẵng station", [OPEN]),
        ("Hà Nội 1999", []),
        ("Lào Cai", []),  # no station there
        ("zzz", []),
    ],
)
def test_search_finds_words_places_and_years(client: TestClient, q: str, found: list[str]) -> None:
    assert _found(client, q=q) == found


def test_search_shows_only_what_the_caller_may_read(env: Env, client: TestClient) -> None:
    assert _found(client, q="Hà Nội") == [OPEN]
    both = _found(client, {"Authorization": f"Bearer {env.token}"}, q="Hà Nội")
    assert sorted(both) == sorted([OPEN, SHARED])
    assert _found(client, {"Authorization": f"Bearer {env.token}"}, q="Hà Nội dùng chung") == [SHARED]


def test_facets_and_filters_come_from_the_data(env: Env, client: TestClient) -> None:
    table = _published(env)
    old_codes = set(pc.unique(table["province_code"]).to_pylist())
    page = client.get("/api/v1/datasets").json()
    facets = page["facets"]
    provinces = {f["value"]: f for f in facets["province"]}
    assert "79" in provinces and provinces["79"]["name"]["vi"] == "Thành phố Hồ Chí Minh"
    assert "74" in old_codes and "74" not in provinces  # Bình Dương's data counts under its 2025 province
    assert [f["value"] for f in facets["year"]] == ["2026"]
    assert {f["value"]: f["count"] for f in facets["sector"]} == {"environment_monitoring": 1}
    assert facets["sector"][0]["name"] == {"vi": "Quan trắc môi trường", "en": "Environmental monitoring"}
    assert _found(client, province="79") == [OPEN]
    assert _found(client, province="15") == []
    assert _found(client, year="2026", q="Hà Nội") == [OPEN] and _found(client, year="2020") == []
    signed = client.get("/api/v1/datasets", headers={"Authorization": f"Bearer {env.token}"}).json()
    assert {f["value"]: f["count"] for f in signed["facets"]["classification"]} == {"open": 1, "shared": 1}
    assert client.get("/api/v1/datasets", params={"province": "7"}).status_code == 422
    assert client.get("/?year=abcd").status_code == 422


# -- metadata -------------------------------------------------------------------------------------------


def test_dataset_metadata_people_need(env: Env, client: TestClient) -> None:
    ds = client.get(f"/api/v1/datasets/{OPEN}").json()
    table = _published(env)
    assert ds["sector_name"]["vi"] == "Quan trắc môi trường" and ds["owner_unit_name"]["en"]
    assert ds["contact"]["email"] and "@" in ds["contact"]["email"]
    assert ds["licence_info"]["url"] == "https://creativecommons.org/licenses/by/4.0/"
    assert ds["licence_info"]["terms_url"] == "/licences/CC-BY-4.0"
    assert [t["iri"] for t in ds["themes"]] == ["http://publications.europa.eu/resource/authority/data-theme/ENVI"]
    assert ds["frequency"]["iri"].endswith("/frequency/DAILY")
    coverage = ds["coverage"]
    low, high = pc.min_max(table["observed_at"]).as_py().values()
    assert (coverage["start"], coverage["end"]) == (low.isoformat(), high.isoformat())  # the data's time, not the run's
    assert {p["code"] for p in coverage["places"]} == set(pc.unique(table["province_code"]).to_pylist())
    binh_duong = next(p for p in coverage["places"] if p["code"] == "74")
    assert binh_duong["table"] == "pre_2025" and binh_duong["related"][0]["code"] == "79"
    release = env.store.release(OPEN, 1)
    assert (
        "phiên bản 1" in ds["citation"]["text"]["vi"] and "http://testserver/datasets/" in ds["citation"]["text"]["en"]
    )
    assert (
        ds["citation"]["bibtex"].startswith(f"@misc{{{OPEN}_v1,")
        and release.record["committed_at"][:4] in (ds["citation"]["bibtex"])
    )
    bib = ds["citation"]["bibtex"]
    assert bib.count("{") == bib.count("}")
    notes = ds["releases"][0]["notes"]
    assert f"{table.num_rows}" in notes["en"].replace(",", "") and coverage["start"] in notes["vi"]


def test_pages_show_names_not_codes(env: Env, client: TestClient) -> None:
    vi = client.get(f"/datasets/{OPEN}?lang=vi").text
    assert '<dd id="sector">Quan trắc môi trường</dd>' in vi
    assert '<dd id="owner-unit">Đơn vị quan trắc môi trường</dd>' in vi
    assert ">environment_monitoring<" not in vi and ">monitoring<" not in vi
    assert 'href="/licences/CC-BY-4.0" rel="license"' in vi and "Hằng ngày" in vi and "Môi trường" in vi
    assert "Trích dẫn bộ dữ liệu" in vi and "@misc{" in vi and "Thành phố Hồ Chí Minh" in vi
    en = client.get(f"/datasets/{OPEN}?lang=en").text
    assert "Environmental monitoring" in en and "Cite this dataset" in en and "Places covered" in en
    index = client.get("/?lang=vi").text
    options = re.findall(r'<option value="environment_monitoring"[^>]*>([^<]+)</option>', index)
    assert options == ["Quan trắc môi trường"]  # the Vietnamese filter lists names
    assert "mức độ quan trọng" not in index.lower()  # not repeated on every row
    release = client.get(f"/datasets/{OPEN}/v/1?lang=vi").text
    assert ">cursor<" not in release and "Con trỏ nguồn" in release and "Ghi chú phiên bản" in release
    assert "Source cursor" in client.get(f"/datasets/{OPEN}/v/1?lang=en").text
    terms = client.get("/licences/CC-BY-4.0?lang=en")
    assert terms.status_code == 200 and "https://creativecommons.org/licenses/by/4.0/" in terms.text
    restricted = client.get("/licences/LicenseRef-restricted-government-use?lang=vi")  # terms are public
    assert restricted.status_code == 200 and "Luật Dữ liệu 2024" in restricted.text and "Law on Data" in restricted.text
    assert client.get("/licences/LicenseRef-nothing").status_code == 404
    assert client.get("/licences/..%2Fx").status_code in (404, 422)


def test_sql_view_named_as_the_share_in_use_knows_it(env: Env, client: TestClient) -> None:
    view = client.get(f"/api/v1/datasets/{OPEN}").json()["sql_view"]
    assert view == OPEN  # the embedded SQLite share has no schemas
    assert f'<code id="sql-view">{OPEN}</code>' in client.get(f"/datasets/{OPEN}").text
    with sqlite3.connect(env.share) as conn:
        assert conn.execute(f"SELECT count(*) FROM {view}").fetchone()[0] == _published(env).num_rows
        with pytest.raises(sqlite3.OperationalError):
            conn.execute(f"SELECT count(*) FROM datashare.{OPEN}")


# -- DCAT-AP 3.0.1 ----------------------------------------------------------------------------------------


def _shapes_dir() -> Path:
    for candidate in SHAPES_CANDIDATES:
        if (candidate / "shapes.ttl").is_file():
            return candidate
    message = (
        f"the DCAT-AP 3.0.1 shapes are not beside the repository (looked in {[str(c) for c in SHAPES_CANDIDATES]})"
    )
    if os.environ.get("DATASHARE_REQUIRE_SERVICES") == "1":
        pytest.fail(message + " (DATASHARE_REQUIRE_SERVICES=1)")
    pytest.skip(message)


def _results(data: Any, shapes: Path) -> list[dict[str, str]]:
    """Every top-level validation result of one shapes file: severity, focus, path, value, message."""
    import pyshacl
    import rdflib

    graph = rdflib.Graph().parse(shapes)
    _, report, _ = pyshacl.validate(data, shacl_graph=graph, inference="none", allow_warnings=True)
    sh = rdflib.Namespace("http://www.w3.org/ns/shacl#")
    out = []
    for result in report.subjects(rdflib.RDF.type, sh.ValidationResult):
        if (None, sh.detail, result) in report:
            continue  # nested detail of another result
        out.append(
            {
                "severity": str(report.value(result, sh.resultSeverity)).rsplit("#", 1)[-1],
                "focus": str(report.value(result, sh.focusNode)),
                "path": str(report.value(result, sh.resultPath)),
                "value": str(report.value(result, sh.value)),
                "shape": str(report.value(result, sh.sourceShape)),
                "message": str(report.value(result, sh.resultMessage)),
            }
        )
    return out


def test_dcat_passes_the_official_dcat_ap_shapes(client: TestClient) -> None:
    import rdflib

    shapes = _shapes_dir()
    doc = client.get("/dcat.jsonld").json()
    assert isinstance(doc["@context"], dict)  # inline: nothing is fetched to read it
    data = rdflib.Graph().parse(data=json.dumps(doc), format="json-ld")
    (dataset,) = doc["dcat:dataset"]
    assert {k["@language"] for k in dataset["dcat:keyword"]} == {"vi", "en"}
    assert dataset["dcat:distribution"][0]["dct:format"]["@id"].endswith("/file-type/PARQUET")

    mandatory = _results(data, shapes / "shapes.ttl")
    assert mandatory == [], mandatory
    recommended = _results(data, shapes / "shapes_recommended.ttl")
    # The only recommended properties left: a bounding box / centroid of each province, which nothing
    # in the data holds (the stations' coordinates are not published).
    unanswerable = [
        r for r in recommended if r["path"].endswith(("#bbox", "#centroid")) and "/provinces/" in r["focus"]
    ]
    assert recommended == unanswerable, [r for r in recommended if r not in unanswerable]
    vocabularies = _results(data, shapes / "mdr-vocabularies.shape.ttl")
    violations = [r for r in vocabularies if r["severity"] == "Violation"]
    # mdr-vocabularies.shape.ttl wants the algorithm IRI to start with https://spdx.org/rdf/terms while
    # requiring the class http://spdx.org/rdf/terms#ChecksumAlgorithm; DCAT-AP's own value,
    # spdx:checksumAlgorithm_sha256, is in the http namespace. We keep the standard IRI.
    assert all(r["path"] == "http://spdx.org/rdf/terms#algorithm" for r in violations), violations
    warnings = [r for r in vocabularies if r["severity"] == "Warning"]
    # Advice to use EU-managed concepts where we name our own: the ministry (not an EU corporate body),
    # the provinces (no EU or GeoNames IRI at hand offline) and our sector beside the EU data theme.
    advised = {
        "http://purl.org/dc/terms/publisher",
        "http://purl.org/dc/terms/spatial",
        "http://www.w3.org/ns/dcat#theme",
    }
    assert {r["path"] for r in warnings} <= advised, warnings
    assert all("/sectors/" in r["value"] for r in warnings if r["path"].endswith("#theme")), warnings
    ranges = _results(data, shapes / "range.ttl")
    # range.ttl needs the EU vocabularies' class declarations; only Viet Nam's country concept lacks one here.
    assert all(r["value"].endswith("/country/VNM") for r in ranges), ranges


# -- the OpenAPI contract ----------------------------------------------------------------------------------


def test_openapi_declares_security_routes_and_patterns(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schema["components"]["securitySchemes"]["bearer"]["description"],
    }
    assert schema["components"]["securitySchemes"]["cookie"]["in"] == "cookie"
    assert {} in schema["security"] and {"bearer": []} in schema["security"]
    paths = schema["paths"]
    for path in (
        "/datasets/{dataset_id}/v/{version}/files/datapackage.json",
        "/datasets/{dataset_id}/v/{version}/files/validation/report.html",
        "/datasets/{dataset_id}/v/{version}/files/data/{file}",
        "/dcat.jsonld",
    ):
        assert "get" in paths[path], path
    for path, operations in paths.items():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter["name"] == "dataset_id":
                    assert parameter["schema"]["pattern"] == "^[a-z][a-z0-9_]{0,47}$", path


MADE_UP_SUBSCRIPTION = "sub_0000000000000000"
"""Well-formed (the documented pattern) but nobody's: 404, as an unknown id must be."""


def test_openapi_documents_the_refusals_around_every_route(client: TestClient) -> None:
    """Size limits (413, 414, 431) anywhere; 429 with Retry-After wherever a token is read or a file sent."""
    paths = client.get("/openapi.json").json()["paths"]
    for path, operations in paths.items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert {"400", "413", "414", "431"} <= set(responses), (method, path)
            if path == "/dcat.jsonld":  # open data for anyone: no token is looked at, nothing is counted
                continue
            assert "Retry-After" in responses["429"]["headers"], (method, path)
            shape = responses["400"]["content"]["application/json"]  # the route's own refusal...
            assert responses["429"]["content"]["application/json"] == shape, (method, path)  # ...also for 429
            if "/files/" in path:
                for status in ("206", "304", "416", "503"):
                    assert status in responses, (method, path, status)
    sharing = paths["/delta-sharing/shares"]["get"]["responses"]["429"]["content"]["application/json"]
    assert sharing["schema"]["$ref"].endswith("/ProtocolError")


def _concrete(path: str) -> str:
    for name, value in (
        ("{dataset_id}", OPEN),
        ("{version}", "1"),
        ("{file}", "part-00000.parquet"),
        ("{subscription_id}", MADE_UP_SUBSCRIPTION),
    ):
        path = path.replace(name, value)
    return path


def test_head_answers_wherever_get_does_and_other_methods_get_405_with_allow(env: Env, client: TestClient) -> None:
    signed = {"Authorization": f"Bearer {env.token}"}  # some routes (subscriptions) answer a recipient only
    spec_paths = client.get("/openapi.json").json()["paths"]
    paths = [(p, set(ops)) for p, ops in spec_paths.items() if "get" in ops]
    paths += [
        (p, {"get"}) for p in ("/", f"/datasets/{OPEN}", f"/datasets/{OPEN}/v/1", "/login", "/licences/CC-BY-4.0")
    ]
    for template, ops in paths:
        path = _concrete(template)
        get, head = client.get(path, headers=signed), client.head(path, headers=signed)
        assert head.status_code == get.status_code, (path, head.status_code, get.status_code)
        assert get.status_code in (200, 404), (path, get.status_code)  # 404: a made-up subscription id
        assert head.content == b"" and head.headers["content-type"] == get.headers["content-type"], path
        assert int(head.headers["content-length"]) == len(get.content), path
        for method in ("TRACE", "DELETE", "PUT", "PATCH"):
            if method.lower() in ops:
                continue
            refused = client.request(method, path, headers=signed)
            assert refused.status_code == 405, (method, path)
            assert {"GET", "HEAD"} <= {m.strip() for m in refused.headers["allow"].split(",")}, (method, path)
    part = env.store.release(OPEN, 1).files[0]
    downloads = len(_access_log(env, client))
    probe = client.head(f"/datasets/{OPEN}/v/1/files/{part['path']}")
    assert (
        probe.headers["repr-digest"].startswith("sha-256=:") and int(probe.headers["content-length"]) == part["bytes"]
    )
    assert client.head(f"/datasets/{SHARED}/v/1/files/{part['path']}").status_code == 404  # same access rule
    assert len(_access_log(env, client)) == downloads  # a probe is not a download: nothing read, nothing recorded
    assert Ledger(env.store.backend).verify() == []


def _access_log(env: Env, client: TestClient) -> list[dict]:
    import datetime as dt

    from datashare.access import log as accesslog

    client.app.state.catalog.access_log.flush()
    today = dt.datetime.now(dt.UTC).date()
    return list(accesslog.read(env.store.backend, today - dt.timedelta(days=1), today))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served(env: Env) -> Iterator[str]:
    """The catalog under uvicorn on a free loopback port, stopped at the end."""
    import uvicorn

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW_CONN_DATASHARE_SHARE", connection_env_value(f"sqlite:///{env.share}"))
        mp.setenv("DATASHARE_WEBHOOK_KEY", "contract-fuzz-" + "k" * 32)  # webhooks on: subscribing does its checks
        port = _free_port()
        server = uvicorn.Server(
            uvicorn.Config(create_app(env.settings, FUZZ_LIMITS), host="127.0.0.1", port=port, log_level="error")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start within 30 s"
            time.sleep(0.05)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            thread.join(timeout=15)


def test_schema_driven_fuzzer_finds_no_failure(served: str, env: Env, tmp_path: Path) -> None:
    served_token = env.token
    import urllib.request

    for warm in ("/api/v1/datasets", f"/api/v1/datasets/{OPEN}", "/dcat.jsonld"):  # first calls read the store
        with urllib.request.urlopen(served + warm, timeout=60) as response:
            assert response.status == 200
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "run",
        f"{served}/openapi.json",
        "--checks", "all",
        "--max-examples", str(FUZZ_EXAMPLES),
        "--seed", str(FUZZ_SEED),
        "--max-time", str(FUZZ_SECONDS),
        "--request-timeout", "30",
        "--workers", "1",
        "--no-color",
        "--report", "junit",
        "--report-dir", str(tmp_path),
        "--generation-database", "none",
        "--header", f"Authorization: Bearer {served_token}",  # every route, those for recipients too
    ]  # fmt: skip
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=FUZZ_SECONDS * 4, check=False, cwd=tmp_path
    )  # its caches stay in tmp_path
    summary = done.stdout[-3000:]
    print(summary)
    assert done.returncode == 0, summary + done.stderr[-2000:]
    assert re.search(r"\d+ generated, \d+ passed", summary), summary
