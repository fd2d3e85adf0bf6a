"""The OData v4 service against releases made by the real pipeline, on a local store and in S3 (loopback).

A third-party OData v4 client (``python-odata``, which reads ``$metadata`` and builds its entity
classes from it, and follows ``@odata.nextLink``) and plain HTTP requests query a real uvicorn server.
Every expected result is computed here, independently of the service: the release's Parquet files
are read with pyarrow (downloaded with boto3 for S3) and filtered, ordered and cut in Python by
OData's rules (null semantics included), then compared with what the service answered.

The store: the open ``air_quality_hourly`` (v1, v2, and a v3 that is withdrawn) and a restricted
copy granted to ``agency_a`` only.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
import math
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import requests
import yaml

from datashare.access import Tokens, load_registry
from datashare.catalog.app import create_app
from datashare.pipeline.stages import run_dataset
from datashare.settings import Settings
from datashare.source.connections import connection_env_value
from datashare.store import ReleaseStore
from datashare.tools import cli
from units import monitoring

REPO = Path(__file__).resolve().parents[2]
OPEN, RESTRICTED = "air_quality_hourly", "air_quality_restricted"
VN = dt.timezone(dt.timedelta(hours=7))
RECIPIENTS = """
recipients:
  - code: agency_a
    name: {vi: Sở A, en: Department A}
    contact: {name: Desk A, email: a@example.gov.vn}
  - code: agency_b
    name: {vi: Sở B, en: Department B}
    contact: {name: Desk B, email: b@example.gov.vn}
"""


@dataclass
class Env:
    """One deployment: the server's OData root, the store, tokens, and each release's rows read independently."""

    kind: str
    url: str
    store: ReleaseStore
    tokens: dict[str, str]
    read: Callable[[str, int], list[dict[str, Any]]]
    unit: str


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _write_specs(home: Path) -> None:
    datasets = home / "dags" / "datasets"
    datasets.mkdir(parents=True)
    shutil.copy(REPO / "dags" / "datasets" / f"{OPEN}.yaml", datasets)
    shutil.copytree(REPO / "expectations", home / "expectations")
    (home / "config").mkdir()
    (home / "config" / "recipients.yaml").write_text(RECIPIENTS, encoding="utf-8")
    spec = yaml.safe_load((datasets / f"{OPEN}.yaml").read_text(encoding="utf-8"))
    spec.update(id=RESTRICTED, suite=OPEN, classification={"sharing": "restricted", "importance": "core"})
    spec["title"] = {"vi": "Không khí (hạn chế)", "en": "Air (restricted)"}
    spec["recipients"] = ["agency_a"]
    (datasets / f"{RESTRICTED}.yaml").write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")


@pytest.fixture(scope="module", params=["local", "s3"])
def env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    import uvicorn

    tmp = tmp_path_factory.mktemp(f"odata-{request.param}")
    home = tmp / "home"
    _write_specs(home)
    unit = f"sqlite:///{tmp / 'unit.sqlite'}"
    monitoring.generate(unit, stations=3, days=1)
    with pytest.MonkeyPatch.context() as mp:
        if request.param == "s3":
            s3 = request.getfixturevalue("s3_server")
            bucket = f"datashare-odata-{uuid.uuid4().hex[:10]}"
            s3.client.create_bucket(Bucket=bucket)
            mp.setenv("DATASHARE_RELEASE_ROOT", f"s3://{bucket}/releases")
            mp.setenv("DATASHARE_S3_ENDPOINT_URL", s3.endpoint_url)
            mp.setenv("DATASHARE_STAGING_DIR", str(tmp / "staging"))

            def fetch(key: str) -> bytes:
                return s3.client.get_object(Bucket=bucket, Key=f"releases/{key}")["Body"].read()
        else:
            mp.setenv("DATASHARE_RELEASE_ROOT", str(tmp / "releases"))

            def fetch(key: str) -> bytes:
                return (tmp / "releases" / key).read_bytes()

        mp.setenv("DATASHARE_HOME", str(home))
        mp.setenv("DATASHARE_ODATA_CACHE_DIR", str(tmp / "odata-cache"))
        mp.setenv("AIRFLOW_CONN_DATASHARE_SHARE", connection_env_value(f"sqlite:///{tmp / 'share.sqlite'}"))
        mp.setenv("AIRFLOW_CONN_MONRE_MONITORING", connection_env_value(unit))
        assert run_dataset(OPEN)["version"] == 1
        assert run_dataset(RESTRICTED)["version"] == 1
        monitoring.append_day(unit)
        assert run_dataset(OPEN)["version"] == 2
        monitoring.append_day(unit)
        assert run_dataset(OPEN)["version"] == 3
        settings = Settings.from_env()
        store = ReleaseStore.open(settings.release_uri)
        # through the command, as an operator withdraws (the same call whichever module holds withdraw())
        assert cli.main(["withdraw", OPEN, "--version", "3", "--reason", "Trạm đo lỗi / faulty sensor"]) == 0
        registry = load_registry(settings.recipients_file)
        tokens = Tokens(store.backend)
        issued = {code: tokens.issue(registry.get(code)) for code in ("agency_a", "agency_b")}
        revoked = tokens.issue(registry.get("agency_a"))
        assert tokens.revoke("agency_a", hashlib.sha256(revoked.encode()).hexdigest()[:12]) == 1

        def read(dataset_id: str, version: int) -> list[dict[str, Any]]:
            """A release's rows, from its files as the manifest lists them (not through the service)."""
            release = store.release(dataset_id, version)
            tables = [pq.read_table(io.BytesIO(fetch(f"{release.prefix}/{f['path']}"))) for f in release.files]
            return pa.concat_tables(tables).to_pylist()

        port = _free_port()
        server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        try:
            yield Env(
                kind=request.param,
                url=f"http://127.0.0.1:{port}/odata/",
                store=store,
                tokens={**issued, "revoked": revoked},
                read=read,
                unit=unit,
            )
        finally:
            server.should_exit = True
            thread.join(timeout=10)


def _bearer(env: Env, who: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {env.tokens[who]}"} if who else {}


def get(env: Env, path: str, who: str | None = None, **headers: str) -> requests.Response:
    return requests.get(env.url + path, headers={**_bearer(env, who), **headers}, timeout=60)


def follow(env: Env, path: str, who: str | None = None, page: int = 7) -> tuple[list[dict[str, Any]], int]:
    """Every entity of a collection request, following next links; returns (rows, pages)."""
    url: str | None = env.url + path
    rows: list[dict[str, Any]] = []
    pages = 0
    while url:
        response = requests.get(url, headers={**_bearer(env, who), "Prefer": f"odata.maxpagesize={page}"}, timeout=60)
        assert response.status_code == 200, (url, response.text[:500])
        assert response.headers["OData-Version"] == "4.0"
        assert "odata.metadata=minimal" in response.headers["Content-Type"]
        body = response.json()
        assert len(body["value"]) <= page
        rows.extend(body["value"])
        pages += 1
        url = body.get("@odata.nextLink")
    return rows, pages


# -- the independent oracle -----------------------------------------------------------------------


def served(row: dict[str, Any]) -> dict[str, Any]:
    """A row as served, with timestamps back to naive Vietnam time (how the files hold them)."""
    out = dict(row)
    if isinstance(out.get("observed_at"), str):
        parsed = dt.datetime.fromisoformat(out["observed_at"])
        assert parsed.utcoffset() == dt.timedelta(hours=7)
        out["observed_at"] = parsed.replace(tzinfo=None)
    return out


def ordered(rows: list[dict[str, Any]], items: list[tuple[str, bool]]) -> list[dict[str, Any]]:
    """OData order: each item ascending with nulls first (descending: nulls last), then by key."""
    out = sorted(rows, key=lambda r: (r["station_code"], r["observed_at"]))
    for name, descending in reversed(items):
        # sorted() is stable, also with reverse=True: ties keep the order of the later keys
        present = sorted((r for r in out if r[name] is not None), key=lambda r: r[name], reverse=descending)
        missing = [r for r in out if r[name] is None]
        out = present + missing if descending else missing + present
    return out


def gt(a: Any, b: Any) -> bool:
    """OData gt: false when either side is null."""
    return a is not None and b is not None and a > b


EXAMPLES: list[tuple[str, str, Callable[[dict[str, Any]], bool]]] = [
    # (name, $filter, the same predicate by OData's rules). Shapes follow the URL Conventions' examples.
    ("lt decimal", "pm25 lt 40.00", lambda r: r["pm25"] is not None and r["pm25"] < 40),
    (
        "eq and lt",
        "province_code eq '01' and pm25 lt 50.5",
        lambda r: r["province_code"] == "01" and gt(50.5, r["pm25"]),
    ),
    (
        "or with parentheses",
        "(pm25 gt 100 or pm10 gt 150) and aqi ge 100",
        lambda r: (gt(r["pm25"], 100) or gt(r["pm10"], 150)) and gt(r["aqi"], 99),
    ),
    ("not keeps nulls", "not (pm25 gt 50)", lambda r: not gt(r["pm25"], 50)),
    ("ne keeps nulls", "pm25 ne 64.1", lambda r: r["pm25"] != 64.1),
    ("eq null", "pm25 eq null", lambda r: r["pm25"] is None),
    ("ne null", "pm25 ne null", lambda r: r["pm25"] is not None),
    ("contains", "contains(station_name,'Hà')", lambda r: r["station_name"] is not None and "Hà" in r["station_name"]),
    ("startswith", "startswith(station_code,'AQ01')", lambda r: r["station_code"].startswith("AQ01")),
    ("endswith", "endswith(station_name,'Cừ')", lambda r: (r["station_name"] or "").endswith("Cừ")),
    (
        "not contains",
        "not contains(station_name,'Hà')",
        lambda r: r["station_name"] is not None and "Hà" not in r["station_name"],
    ),
    (
        "in",
        "station_code in ('AQ01001','AQ79001','NOPE')",
        lambda r: r["station_code"] in ("AQ01001", "AQ79001", "NOPE"),
    ),
    (
        "year month day",
        "year(observed_at) eq 2026 and month(observed_at) eq 11 and day(observed_at) eq 2",
        lambda r: r["observed_at"].date() == dt.date(2026, 11, 2),
    ),
    ("hour", "hour(observed_at) ge 8 and hour(observed_at) lt 10", lambda r: 8 <= r["observed_at"].hour < 10),
    ("date()", "date(observed_at) eq 2026-11-01", lambda r: r["observed_at"].date() == dt.date(2026, 11, 1)),
    (
        "datetime Z converted to +07:00",
        "observed_at ge 2026-11-01T17:00:00Z and observed_at lt 2026-11-02T01:00:00Z",
        lambda r: dt.datetime(2026, 11, 2, 0) <= r["observed_at"] < dt.datetime(2026, 11, 2, 8),
    ),
    (
        "datetime +07:00",
        "observed_at eq 2026-11-02T05:00:00%2B07:00",
        lambda r: r["observed_at"] == dt.datetime(2026, 11, 2, 5),
    ),
    (
        "string functions",
        "tolower(station_code) eq 'aq01001' and length(station_code) eq 7 and indexof(station_code,'01') eq 2",
        lambda r: r["station_code"] == "AQ01001",
    ),
    ("substring", "substring(station_code,2,2) eq '01'", lambda r: r["station_code"][2:4] == "01"),
    ("integer vs decimal", "aqi gt 99.5", lambda r: gt(r["aqi"], 99.5)),
    ("boolean literal", "true and pm25 gt 150", lambda r: gt(r["pm25"], 150)),
    (
        "matchesPattern",
        "matchesPattern(station_code,'^AQ0[0-9]')",
        lambda r: r["station_code"][:3] == "AQ0" and r["station_code"][3].isdigit(),
    ),
]


@pytest.mark.parametrize("name,text,predicate", EXAMPLES, ids=[e[0] for e in EXAMPLES])
def test_filter_examples_equal_the_release_files(env: Env, name: str, text: str, predicate: Callable) -> None:
    expected = [r for r in ordered(env.read(OPEN, 2), []) if predicate(r)]
    rows, _ = follow(env, f"{OPEN}?$filter={text}", page=10)
    assert [served(r) for r in rows] == expected
    count = get(env, f"{OPEN}/$count?$filter={text}")
    assert count.status_code == 200 and count.headers["Content-Type"].startswith("text/plain")
    assert int(count.text) == len(expected)


ORDERINGS = [
    ("pm25 desc", [("pm25", True)]),
    ("province_code asc,pm25 desc", [("province_code", False), ("pm25", True)]),
    ("aqi,observed_at desc", [("aqi", False), ("observed_at", True)]),
    ("station_name desc,co", [("station_name", True), ("co", False)]),
]


@pytest.mark.parametrize("text,items", ORDERINGS, ids=[o[0] for o in ORDERINGS])
def test_orderby_pages_equal_the_release_files(env: Env, text: str, items: list[tuple[str, bool]]) -> None:
    expected = ordered(env.read(OPEN, 2), items)
    rows, pages = follow(env, f"{OPEN}?$orderby={text}", page=13)
    assert pages == math.ceil(len(expected) / 13)
    assert [served(r) for r in rows] == expected


def test_select_top_skip_count(env: Env) -> None:
    everything = ordered(env.read(OPEN, 2), [])
    body = get(env, f"{OPEN}?$select=pm25,observed_at&$top=5&$skip=5&$count=true").json()
    assert body["@odata.context"] == f"{env.url}$metadata#{OPEN}(pm25,observed_at)"
    assert body["@odata.count"] == len(everything)
    assert [served(r) for r in body["value"]] == [
        {"pm25": r["pm25"], "observed_at": r["observed_at"]} for r in everything[5:10]
    ]
    assert "@odata.nextLink" not in body  # $top=5 is served whole
    # $top larger than a page: next links stop exactly at $top
    rows, pages = follow(env, f"{OPEN}?$top=30&$skip=3&$orderby=pm25 desc", page=8)
    assert [served(r) for r in rows] == ordered(everything, [("pm25", True)])[3:33] and pages == 4
    assert get(env, f"{OPEN}/$count").text == str(len(everything))
    assert get(env, f"{OPEN}?$top=0&$count=true").json() == {
        "@odata.context": f"{env.url}$metadata#{OPEN}",
        "@odata.count": len(everything),
        "value": [],
    }


def test_third_party_client_reads_metadata_and_pages(env: Env) -> None:
    from odata import ODataService

    session = requests.Session()
    session.headers["Prefer"] = "odata.maxpagesize=25"
    service = ODataService(env.url, reflect_entities=True, session=session, quiet_progress=True)
    assert set(service.entities) == {OPEN}  # anonymous: the restricted dataset is not even named
    air = service.entities[OPEN]
    everything = ordered(env.read(OPEN, 2), [])
    rows = service.query(air).all()
    assert len(rows) == len(everything)
    got = [(r.station_code, r.observed_at, r.pm25, r.aqi) for r in rows]
    assert got == [(r["station_code"], r["observed_at"].replace(tzinfo=VN), r["pm25"], r["aqi"]) for r in everything]
    since = dt.datetime(2026, 11, 2, 6, tzinfo=VN)
    query = service.query(air).filter(air.station_code == "AQ01001").filter(air.observed_at >= since)
    query = query.order_by(air.observed_at.desc())
    expected = [
        r for r in everything if r["station_code"] == "AQ01001" and r["observed_at"] >= since.replace(tzinfo=None)
    ]
    assert [r.observed_at for r in query.all()] == [r["observed_at"].replace(tzinfo=VN) for r in reversed(expected)]
    assert service.query(air).filter(air.station_name.contains("Hà Nội")).count() == sum(
        1 for r in everything if r["station_name"] and "Hà Nội" in r["station_name"]
    )


def test_metadata_describes_types_keys_and_both_languages(env: Env) -> None:
    from xml.etree import ElementTree as ET

    response = get(env, "$metadata")
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("application/xml")
    ns = {"edmx": "http://docs.oasis-open.org/odata/ns/edmx", "edm": "http://docs.oasis-open.org/odata/ns/edm"}
    root = ET.fromstring(response.content)
    entity = root.find(".//edm:EntityType[@Name='air_quality_hourly']", ns)
    assert [p.get("Name") for p in entity.findall("edm:Key/edm:PropertyRef", ns)] == ["station_code", "observed_at"]
    types = {p.get("Name"): (p.get("Type"), p.get("Nullable")) for p in entity.findall("edm:Property", ns)}
    assert types["station_code"] == ("Edm.String", "false")
    assert types["observed_at"] == ("Edm.DateTimeOffset", "false")
    assert types["pm25"] == ("Edm.Double", "true") and types["aqi"] == ("Edm.Int64", "true")
    pm25 = entity.find("edm:Property[@Name='pm25']", ns)
    notes = {(a.get("Term"), a.get("Qualifier")): a.get("String") for a in pm25.findall("edm:Annotation", ns)}
    assert notes[("Core.Description", None)] == "Bụi PM2.5 trung bình 1 giờ"
    assert notes[("Core.Description", "en")] == "PM2.5 one-hour mean"
    assert notes[("Measures.Unit", None)] == "µg/Nm³"
    assert RESTRICTED not in response.text
    both = get(env, "$metadata", Accept="application/json;q=1.0, application/xml;q=0.9")
    assert both.headers["Content-Type"].startswith("application/xml")  # XML whenever acceptable
    assert get(env, "$metadata", Accept="application/json").json()["$EntityContainer"] == "Datashare.Container"
    assert get(env, "$metadata", Accept="text/html").status_code == 406
    as_json = get(env, "$metadata?$format=json").json()
    assert as_json["Datashare"][OPEN]["$Key"] == ["station_code", "observed_at"]
    assert as_json["Datashare"][OPEN]["pm25"]["@Core.Description#en"] == "PM2.5 one-hour mean"
    granted = get(env, "$metadata", "agency_a")
    assert f'EntityType Name="{RESTRICTED}"' in granted.text


def test_access_follows_the_catalog(env: Env) -> None:
    unknown = get(env, "no_such_dataset")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "NotFound"
    for who in (None, "agency_b"):
        listing = get(env, "", who).json()
        assert [s["name"] for s in listing["value"]] == [OPEN]
        for path in (
            RESTRICTED,
            f"{RESTRICTED}/$count",
            f"releases/{RESTRICTED}/1/",
            f"{RESTRICTED}?$filter=nope eq 1",
        ):
            refused = get(env, path, who)
            assert refused.status_code == 404 and refused.json() == unknown.json(), path
    assert [s["name"] for s in get(env, "", "agency_a").json()["value"]] == [OPEN, RESTRICTED]
    rows, _ = follow(env, RESTRICTED, "agency_a", page=50)
    assert len(rows) == len(env.read(RESTRICTED, 1))
    basic = base64.b64encode(f"token:{env.tokens['agency_a']}".encode()).decode()
    assert get(env, f"{RESTRICTED}/$count", Authorization=f"Basic {basic}").text == str(len(rows))
    refused = get(env, RESTRICTED, "revoked")
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "Unauthorized"
    assert "Bearer" in refused.headers["WWW-Authenticate"]
    forged = base64.b64encode(b"token:dsh_agency_a_forged").decode()
    assert get(env, OPEN, Authorization=f"Basic {forged}").status_code == 401


def test_version_selector_and_withdrawn_release(env: Env) -> None:
    v1 = ordered(env.read(OPEN, 1), [])
    root = get(env, f"releases/{OPEN}/1/").json()
    assert root["@odata.context"] == f"{env.url}releases/{OPEN}/1/$metadata"
    assert root["value"] == [{"name": OPEN, "kind": "EntitySet", "url": OPEN, "title": root["value"][0]["title"]}]
    rows, _ = follow(env, f"releases/{OPEN}/1/{OPEN}?$orderby=pm25 desc", page=20)
    assert [served(r) for r in rows] == ordered(v1, [("pm25", True)])
    assert get(env, f"releases/{OPEN}/1/{OPEN}/$count").text == str(len(v1))
    assert get(env, f"{OPEN}/$count").text == str(len(env.read(OPEN, 2)))  # latest visible: v2 (v3 withdrawn)
    unknown = get(env, "no_such_dataset").json()
    for path in (f"releases/{OPEN}/3/", f"releases/{OPEN}/3/{OPEN}", f"releases/{OPEN}/99/$metadata"):
        refused = get(env, path)
        assert refused.status_code == 404 and refused.json() == unknown, path


HOSTILE = [
    ("station_code eq 'x'' or 1 eq 1 --'", 200),  # a quote inside a string literal stays in the literal
    ("station_code eq 'a''); DROP TABLE t; --'", 200),
    ("station_code eq read_parquet('/etc/passwd')", 400),
    ("1 eq 1) or (1 eq 1", 400),
    ("(" * 300 + "true" + ")" * 300, 400),
    ("not " * 300 + "true", 400),
    (" or ".join(["pm25 gt 1"] * 1200), 400),
    ("station_code eq '" + "x" * 9000 + "'", 400),
    ("pm25 gt 1e999", 400),
    ("observed_at gt 2026-13-45T00:00:00Z", 400),
    ("observed_at gt 2026-11-01T00:00:00", 400),
    ("observed_at gt 2026-11-01", 400),
    ("aqi gt 99999999999999999999", 400),
    ("nope eq 1", 400),
    ("pm25 eq 'x'", 400),
    ("contains(pm25,'x')", 400),
    ("substringof('a',station_name)", 400),
    ("station_code", 400),
    ("", 400),
    ("station_code eq 'unterminated", 400),
    ("pm25 gt 1;", 400),
    ('station_code eq "x"', 400),
    ("matchesPattern(station_code,'(')", 400),
    ("pm25 add 1 gt 2", 501),
    ("geo.distance(station_code,'x') lt 1", 501),
    ("station_code eq @p", 501),
    ("readings/any(r:r gt 1)", 501),
    ("station_code eq duration'P1D'", 501),
    ("cast(aqi,Edm.String) eq '1'", 501),
]


@pytest.mark.parametrize("text,status", HOSTILE, ids=[f"{i}" for i in range(len(HOSTILE))])
def test_hostile_filters_are_odata_errors(env: Env, text: str, status: int) -> None:
    response = requests.get(env.url + OPEN, params={"$filter": text}, timeout=60)
    assert response.status_code == status, response.text[:300]
    if status == 200:
        assert response.json()["value"] == []
        return
    error = response.json()["error"]
    assert error["code"] in ("BadRequest", "NotImplemented") and error["message"]
    assert "SELECT" not in error["message"] and "parquet" not in error["message"].lower().replace("read_parquet", "")
    assert get(env, f"{OPEN}/$count").status_code == 200  # the service is unharmed


@pytest.mark.parametrize(
    "query,status",
    [
        ("$expand=x", 501),
        ("$search=air", 501),
        ("$apply=groupby((province_code))", 501),
        ("$top=-1", 400),
        ("$top=abc", 400),
        ("$skip=1.5", 400),
        ("$count=yes", 400),
        ("$top=1&$top=2", 400),
        ("foo=1", 400),
        ("$frobnicate=1", 400),
        ("$select=nope", 400),
        ("$select=pm25/x", 501),
        ("$orderby=pm25 sideways", 400),
        ("$orderby=year(observed_at)", 501),
        ("$format=xml", 406),
        ("$skiptoken=garbage", 400),
        ("$skiptoken=eyJ2IjoxfQ", 400),
    ],
)
def test_unsupported_or_malformed_options_are_errors(env: Env, query: str, status: int) -> None:
    response = get(env, f"{OPEN}?{query}")
    assert response.status_code == status, response.text[:300]
    assert response.headers["OData-Version"] == "4.0"
    assert set(response.json()["error"]) >= {"code", "message"}


def test_read_only_and_key_lookup(env: Env) -> None:
    assert requests.post(env.url + OPEN, json={}, timeout=30).status_code == 405
    row = ordered(env.read(OPEN, 2), [])[3]
    when = row["observed_at"].replace(tzinfo=VN).isoformat().replace("+", "%2B")
    one = get(env, f"{OPEN}(station_code='{row['station_code']}',observed_at={when})")
    assert one.status_code == 200
    body = one.json()
    assert body.pop("@odata.context") == f"{env.url}$metadata#{OPEN}/$entity"
    assert served(body) == row
    missing = get(env, f"{OPEN}(station_code='NOPE',observed_at={when})")
    assert missing.status_code == 404
    assert get(env, f"{OPEN}('AQ01001')").status_code == 400  # a two-part key needs both parts


def test_a_token_from_another_query_is_refused(env: Env) -> None:
    first = get(env, f"{OPEN}?$orderby=pm25", Prefer="odata.maxpagesize=5").json()
    token = first["@odata.nextLink"].split("$skiptoken=")[1]
    assert get(env, f"{OPEN}?$orderby=pm25&$skiptoken={token}").status_code == 200
    assert get(env, f"{OPEN}?$orderby=aqi&$skiptoken={token}").status_code == 400
    assert get(env, f"{OPEN}?$orderby=pm25&$skip=3&$skiptoken={token}").status_code == 400
    body = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    body["o"] = [{"s": "not a number"}]
    forged = base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")
    assert get(env, f"{OPEN}?$orderby=pm25&$skiptoken={forged}").status_code == 400


def test_paging_keeps_the_release_it_started_on(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs last in the module: it publishes a new release."""
    before = ordered(env.read(OPEN, 2), [])
    first = get(env, OPEN, Prefer="odata.maxpagesize=40").json()
    monkeypatch.setenv("AIRFLOW_CONN_MONRE_MONITORING", connection_env_value(env.unit))
    monitoring.append_day(env.unit)
    assert run_dataset(OPEN)["version"] == 4
    rows = first["value"]
    url = first["@odata.nextLink"]
    while url:
        page = requests.get(url, headers={"Prefer": "odata.maxpagesize=40"}, timeout=60).json()
        rows.extend(page["value"])
        url = page.get("@odata.nextLink")
    assert [served(r) for r in rows] == before
    assert get(env, f"{OPEN}/$count").text == str(len(env.read(OPEN, 4)))


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_a_file_changed_in_the_store_is_never_served(
    kind: str,
    request: pytest.FixtureRequest,
    project: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Bytes of a release file changed after the release: the service refuses to read it (500), serves no row."""
    from fastapi.testclient import TestClient

    if kind == "s3":
        s3 = request.getfixturevalue("s3_server")
        bucket = request.getfixturevalue("s3_bucket")
        monkeypatch.setenv("DATASHARE_RELEASE_ROOT", f"s3://{bucket}/releases")
        monkeypatch.setenv("DATASHARE_S3_ENDPOINT_URL", s3.endpoint_url)
        monkeypatch.setenv("DATASHARE_STAGING_DIR", str(tmp_path / "staging"))
    monkeypatch.setenv("DATASHARE_ODATA_CACHE_DIR", str(tmp_path / "odata-cache"))
    unit = f"sqlite:///{tmp_path / 'unit.sqlite'}"
    monitoring.generate(unit, stations=2, days=1)
    project("monre_monitoring", unit)
    release = run_dataset(OPEN)
    key = f"{OPEN}/v1/data/part-00000.parquet"
    table = pq.read_table(io.BytesIO(_read_object(kind, key, tmp_path, request)))
    changed = table.set_column(table.schema.get_field_index("pm25"), "pm25", pa.array([999.0] * table.num_rows))
    sink = io.BytesIO()
    pq.write_table(changed, sink)
    _write_object(kind, key, sink.getvalue(), tmp_path, request)
    client = TestClient(create_app(Settings.from_env()))
    response = client.get(f"/odata/{OPEN}?$filter=pm25 eq 999")
    assert response.status_code == 500 and response.json()["error"]["code"] == "InternalError"
    assert "999" not in response.text and release["rows"] > 0
    assert not list((tmp_path / "odata-cache").glob("*/*.parquet"))  # no copy was kept


def _read_object(kind: str, key: str, tmp_path: Path, request: pytest.FixtureRequest) -> bytes:
    if kind == "local":
        return (tmp_path / "releases" / key).read_bytes()
    s3, bucket = request.getfixturevalue("s3_server"), request.getfixturevalue("s3_bucket")
    return s3.client.get_object(Bucket=bucket, Key=f"releases/{key}")["Body"].read()


def _write_object(kind: str, key: str, data: bytes, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    if kind == "local":
        (tmp_path / "releases" / key).write_bytes(data)
        return
    s3, bucket = request.getfixturevalue("s3_server"), request.getfixturevalue("s3_bucket")
    s3.client.put_object(Bucket=bucket, Key=f"releases/{key}", Body=data)
