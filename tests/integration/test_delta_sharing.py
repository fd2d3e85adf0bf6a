"""Delta Sharing with the protocol's official Python client, against the catalog served on a loopback port.

Releases come from real pipeline runs on simulated SQLite units (repository specs and suites):

* ``land_parcels`` (restricted to ``sonnmt_hanoi``): v1, then v2 after the unit re-surveys 25 parcels
  and registers 3 new ones (incremental: most files carried over);
* ``water_extraction_licences`` (shared): v1; v2 with one licence revoked, one deleted and one new; v3
  with the new one deleted again and another flow amended; v2 is then withdrawn;
* ``air_quality_hourly`` (open): v1 and the next day's v2.

The same store is served once from a local folder (files signed by the catalog) and once from moto's
S3 server (presigned URLs): the S3 copy is the local store's objects uploaded as they are. The
expected changes are computed here with pandas on the releases' own Parquet files, not through
:mod:`datashare.releases.changes`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import shutil
import socket
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import delta_sharing
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from requests.exceptions import HTTPError

from datashare.access import Tokens, load_registry
from datashare.pipeline.stages import run_dataset
from datashare.settings import Settings
from datashare.source.connections import connection_env_value
from datashare.store import ReleaseStore
from datashare.store.s3 import S3Backend
from datashare.store.withdrawals import withdraw
from datashare.tools import cli
from units import land, monitoring, water_resources

if TYPE_CHECKING:
    import pandas as pd

REPO = Path(__file__).resolve().parents[2]
LAND, WATER, AIR = "land_parcels", "water_extraction_licences", "air_quality_hourly"
HANOI, HCMC, INSTITUTE = "sonnmt_hanoi", "sonnmt_hcmc", "vien_nghien_cuu"
KEYS = {LAND: ["parcel_id"], WATER: ["licence_no"], AIR: ["station_code", "observed_at"]}
SECTORS = {LAND: "land", WATER: "water_resources", AIR: "environment_monitoring"}
CDF_COLUMNS = ["_change_type", "_commit_version", "_commit_timestamp"]


@dataclass
class Built:
    """The releases made by the pipeline, in a local store, and the tokens of the test recipients."""

    tmp: Path
    root: Path
    tokens: dict[str, str]
    withdrawn: tuple[str, int]
    touched: tuple[int, ...]
    new_parcels: tuple[int, ...]
    licence_only_in_v2: str


def _execute(url: str, *statements: tuple[str, dict[str, Any]]) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            for sql, params in statements:
                conn.execute(sa.text(sql), params)
    finally:
        engine.dispose()


def _published(store: ReleaseStore, dataset_id: str, version: int) -> pd.DataFrame:
    """A release's rows read straight from its Parquet files, as the client converts them."""
    import pandas as pd

    release = store.release(dataset_id, version)
    tables = [pq.read_table(store.backend.local_path(f"{release.prefix}/{f['path']}")) for f in release.files]
    frames = [t.to_pandas(date_as_object=True, use_threads=False, split_blocks=False) for t in tables]
    return pd.concat(frames, ignore_index=True)


def _add_parcels(url: str, store: ReleaseStore, n: int) -> tuple[int, ...]:
    """Register ``n`` new parcels: copies of published ones under new ids, updated after everything else."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            top, newest = conn.execute(sa.text("SELECT max(parcel_id), max(updated_at) FROM parcels")).one()
            published = set(_published(store, LAND, 1)["parcel_id"])
            columns = list(conn.execute(sa.text("SELECT * FROM parcels LIMIT 1")).keys())
            donors = [
                dict(r._mapping)
                for r in conn.execute(sa.text("SELECT * FROM parcels ORDER BY parcel_id LIMIT 200"))
                if r.parcel_id in published
            ][:n]
    finally:
        engine.dispose()
    when = (newest if isinstance(newest, dt.datetime) else dt.datetime.fromisoformat(str(newest))) + dt.timedelta(
        hours=2
    )
    ids = tuple(int(top) + 1 + i for i in range(n))
    inserts = []
    for new_id, donor in zip(ids, donors, strict=True):
        row = {**donor, "parcel_id": new_id, "parcel_no": 90_000 + new_id % 1000, "updated_at": when}
        names = ", ".join(columns)
        inserts.append((f"INSERT INTO parcels ({names}) VALUES ({', '.join(':' + c for c in columns)})", row))
    _execute(url, *inserts)
    return ids


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    """Every release of the module, made once by real pipeline runs."""
    tmp = tmp_path_factory.mktemp("delta-sharing")
    root = tmp / "releases"
    units = {name: f"sqlite:///{tmp / f'{name}.sqlite'}" for name in ("land", "water", "air")}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DATASHARE_HOME", str(REPO))
        mp.setenv("DATASHARE_RELEASE_ROOT", str(root))
        mp.setenv("DATASHARE_PSEUDONYM_KEY", "test-pseudonym-key-0123456789")
        mp.setenv("AIRFLOW_CONN_DATASHARE_SHARE", connection_env_value(f"sqlite:///{tmp / 'share.sqlite'}"))
        mp.setenv("AIRFLOW_CONN_MONRE_LAND", connection_env_value(units["land"]))
        mp.setenv("AIRFLOW_CONN_MONRE_WATER_RESOURCES", connection_env_value(units["water"]))
        mp.setenv("AIRFLOW_CONN_MONRE_MONITORING", connection_env_value(units["air"]))
        store = ReleaseStore.local(root)

        land.generate(units["land"], scale=0.01)
        assert run_dataset(LAND)["version"] == 1
        touched = land.touch_parcels(units["land"], 25)
        new_parcels = _add_parcels(units["land"], store, 3)
        second = run_dataset(LAND)
        assert second["version"] == 2 and second["rows"] > 0

        water_resources.generate(units["water"], scale=0.25, days=2)
        assert run_dataset(WATER)["version"] == 1
        licences = _published(store, WATER, 1).sort_values("licence_no")
        active = licences[licences["status"] == "active"]["licence_no"].tolist()
        revoked, deleted, donor, amended = active[:4]
        new_no = "9001/GP-BTNMT"
        _execute(
            units["water"],
            ("UPDATE licences SET status = 'revoked' WHERE licence_no = :n", {"n": revoked}),
            ("DELETE FROM licences WHERE licence_no = :n", {"n": deleted}),
            (
                "INSERT INTO licences SELECT :new, holder, province_code, water_kind, max_flow, issued_on, "
                "expires_on, status, updated_at FROM licences WHERE licence_no = :n",
                {"new": new_no, "n": donor},
            ),
        )
        assert run_dataset(WATER)["version"] == 2
        _execute(
            units["water"],
            ("DELETE FROM licences WHERE licence_no = :n", {"n": new_no}),
            ("UPDATE licences SET max_flow = '123456,7' WHERE licence_no = :n", {"n": amended}),
        )
        assert run_dataset(WATER)["version"] == 3
        withdraw(store, WATER, 2, "Nhập nhầm giấy phép / a licence entered by mistake")

        monitoring.generate(units["air"], stations=2, days=1)
        assert run_dataset(AIR)["version"] == 1
        monitoring.append_day(units["air"])
        assert run_dataset(AIR)["version"] == 2

        registry = load_registry(REPO / "config" / "recipients.yaml")
        tokens = Tokens(store.backend)
        issued = {code: tokens.issue(registry.get(code)) for code in (HCMC, INSTITUTE)}
        issued["expired"] = tokens.issue(
            registry.get(HANOI), expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
        )
        revoked_token = tokens.issue(registry.get(HANOI))
        tokens.revoke(HANOI, hashlib.sha256(revoked_token.encode()).hexdigest()[:12])
        issued["revoked"] = revoked_token
        yield Built(
            tmp=tmp,
            root=root,
            tokens=issued,
            withdrawn=(WATER, 2),
            touched=touched.parcel_ids,
            new_parcels=new_parcels,
            licence_only_in_v2=new_no,
        )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """The catalog on a loopback port over one backend, and what a recipient needs to reach it."""

    kind: str
    endpoint: str
    store: ReleaseStore
    built: Built
    profiles: Path

    def profile(self, name: str, token: str | None = None, expires: str | None = None) -> str:
        """Path of a profile file for ``token`` (by name in the built tokens, unless given)."""
        path = self.profiles / f"{name}.share"
        body: dict[str, Any] = {
            "shareCredentialsVersion": 1,
            "endpoint": self.endpoint,
            "bearerToken": token or self.built.tokens[name],
        }
        if expires:
            body["expirationTime"] = expires
        path.write_text(json.dumps(body))
        return str(path)


def _copy_to_s3(root: Path, s3_server: Any) -> str:
    bucket = f"datashare-sharing-{uuid.uuid4().hex[:10]}"
    s3_server.client.create_bucket(Bucket=bucket)
    backend = S3Backend(bucket, "releases", endpoint_url=s3_server.endpoint_url)
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")):
        key = path.relative_to(root).as_posix()
        if key.startswith("_staging/"):
            continue
        backend.put_file(key, path)
    return f"s3://{bucket}/releases"


@pytest.fixture(scope="module", params=["local", "s3"])
def server(request: pytest.FixtureRequest, built: Built, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The catalog (uvicorn in a thread) on the local store, then on its copy in the loopback S3 server."""
    import uvicorn

    from datashare.catalog.app import create_app

    if request.param == "s3":
        s3_server = request.getfixturevalue("s3_server")
        uri = _copy_to_s3(built.root, s3_server)
        monkey = pytest.MonkeyPatch()
        monkey.setenv("DATASHARE_S3_ENDPOINT_URL", s3_server.endpoint_url)
    else:
        uri, monkey = str(built.root), pytest.MonkeyPatch()
    settings = Settings(
        home=REPO,
        release_uri=uri,
        scratch_root=built.tmp / "scratch",
        share_conn_id="datashare_share",
        share_schema="datashare",
        sharing_url_ttl_s=120,
    )
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, name=f"catalog-{request.param}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the catalog did not start"
        time.sleep(0.05)
    try:
        yield Server(
            kind=request.param,
            endpoint=f"http://127.0.0.1:{port}/delta-sharing",
            store=ReleaseStore.open(uri),
            built=built,
            profiles=tmp_path_factory.mktemp(f"profiles-{request.param}"),
        )
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        monkey.undo()


@pytest.fixture(scope="module")
def hanoi(server: Server) -> str:
    """A profile of the Hanoi department written by ``datashare grant --profile`` (90-day token)."""
    path = server.profiles / "hanoi.share"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DATASHARE_HOME", str(REPO))
        mp.setenv("DATASHARE_RELEASE_ROOT", str(server.built.root))
        mp.setenv("DATASHARE_SHARING_ENDPOINT", server.endpoint)
        assert cli.main(["grant", HANOI, "--http", "--profile", str(path)]) == 0
    profile = json.loads(path.read_text())
    assert profile["shareCredentialsVersion"] == 1 and profile["endpoint"] == server.endpoint
    assert profile["bearerToken"].startswith("dsh_sonnmt_hanoi_")
    expires = dt.datetime.fromisoformat(profile["expirationTime"].replace("Z", "+00:00"))
    assert dt.timedelta(days=89) < expires - dt.datetime.now(dt.UTC) <= dt.timedelta(days=90)
    assert path.stat().st_mode & 0o077 == 0  # a secret: readable by its owner only
    if server.kind == "s3":  # tokens live in the store: the S3 copy needs this one too
        src = server.built.root / "_access" / "tokens"
        for token_file in src.iterdir():
            key = f"_access/tokens/{token_file.name}"
            if not server.store.backend.exists(key):
                server.store.backend.put_file(key, token_file)
    return str(path)


def _url(profile: str, dataset_id: str, share: str = HANOI) -> str:
    return f"{profile}#{share}.{SECTORS[dataset_id]}.{dataset_id}"


def _sorted(frame: pd.DataFrame, key: list[str]) -> pd.DataFrame:
    return frame.sort_values(key, kind="stable").reset_index(drop=True)


def _expected_changes(store: ReleaseStore, dataset_id: str, before: int, after: int) -> pd.DataFrame:
    """The rows that changed from one release to another, computed here with a pandas merge on the key."""
    import pandas as pd

    key = KEYS[dataset_id]
    old, new = _published(store, dataset_id, before), _published(store, dataset_id, after)
    values = [c for c in new.columns if c not in key and c in old.columns]
    merged = old.merge(new, on=key, how="outer", suffixes=("_old", "_new"), indicator=True)
    out = []

    def pick(row: Any, side: str) -> dict[str, Any]:
        return {**{k: row[k] for k in key}, **{c: row[f"{c}_{side}"] for c in values}}

    for _, row in merged.iterrows():
        if row["_merge"] == "left_only":
            out.append({**pick(row, "old"), "_change_type": "delete"})
        elif row["_merge"] == "right_only":
            out.append({**pick(row, "new"), "_change_type": "insert"})
        else:
            same = all(
                (pd.isna(row[f"{c}_old"]) and pd.isna(row[f"{c}_new"])) or row[f"{c}_old"] == row[f"{c}_new"]
                for c in values
            )
            if not same:
                out.append({**pick(row, "old"), "_change_type": "update_preimage"})
                out.append({**pick(row, "new"), "_change_type": "update_postimage"})
    frame = pd.DataFrame(out, columns=[*new.columns, "_change_type"])
    return frame


def _normalise(frame: pd.DataFrame, key: list[str]) -> list[tuple[Any, ...]]:
    """Rows as comparable tuples (NaN and None alike), sorted by key then change type."""
    import pandas as pd

    rows = []
    for record in frame.to_dict("records"):
        rows.append(tuple(None if (not isinstance(v, str) and pd.isna(v)) else v for v in record.values()))
    order = {"delete": 0, "update_preimage": 1, "update_postimage": 2, "insert": 3}
    columns = list(frame.columns)
    return sorted(
        rows, key=lambda r: (tuple(str(r[columns.index(k)]) for k in key), order[r[columns.index("_change_type")]])
    )


# -- listing ------------------------------------------------------------------------------------------


def test_a_recipient_lists_exactly_the_tables_it_is_granted(server: Server, hanoi: str) -> None:
    client = delta_sharing.SharingClient(hanoi)

    shares = client.list_shares()
    assert [s.name for s in shares] == [HANOI]
    schemas = {s.name for s in client.list_schemas(shares[0])}
    assert schemas == {"land", "water_resources", "environment_monitoring"}
    tables = {(t.share, t.schema, t.name) for t in client.list_all_tables()}
    assert tables == {(HANOI, SECTORS[d], d) for d in (LAND, WATER, AIR)}

    research = delta_sharing.SharingClient(server.profile(INSTITUTE))  # not government: open data only
    assert {t.name for t in research.list_all_tables()} == {AIR}
    hcmc = delta_sharing.SharingClient(server.profile(HCMC))  # government, but land_parcels is Hanoi's
    assert {t.name for t in hcmc.list_all_tables()} == {WATER, AIR}


def test_list_answers_page_with_max_results(server: Server, hanoi: str) -> None:
    token = json.loads(Path(hanoi).read_text())["bearerToken"]
    names, page_token = [], None
    while True:
        query = "maxResults=1" + (f"&pageToken={page_token}" if page_token else "")
        body = _get_json(f"{server.endpoint}/shares/{HANOI}/all-tables?{query}", token)
        assert len(body["items"]) <= 1
        names += [i["name"] for i in body["items"]]
        page_token = body.get("nextPageToken")
        if not page_token:
            break
    assert sorted(names) == sorted([LAND, WATER, AIR])
    status, body = _get_error(f"{server.endpoint}/shares/{HANOI}/schemas?maxResults=-1", token)
    assert status == 400 and body["errorCode"] == "INVALID_PARAMETER_VALUE" and "maxResults" in body["message"]


def _get_json(url: str, token: str) -> dict[str, Any]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _get_error(url: str, token: str | None, method: str = "GET", body: bytes | None = None) -> tuple[int, dict]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, headers=headers, method=method, data=body)
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=30).close()
    return info.value.code, json.loads(info.value.read() or b"{}")


# -- reading --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dataset_id", [LAND, WATER, AIR])
def test_load_as_pandas_equals_the_latest_release_row_for_row(server: Server, hanoi: str, dataset_id: str) -> None:
    import pandas as pd

    latest = server.store.versions(dataset_id)[-1]

    frame = delta_sharing.load_as_pandas(_url(hanoi, dataset_id))

    expected = _published(ReleaseStore.local(server.built.root), dataset_id, latest)
    assert len(frame) == len(expected) > 0
    pd.testing.assert_frame_equal(frame, expected)
    assert delta_sharing.get_table_version(_url(hanoi, dataset_id)) == latest


def test_an_older_version_and_a_timestamp_read_that_release(server: Server, hanoi: str) -> None:
    import pandas as pd

    local = ReleaseStore.local(server.built.root)
    v1 = _published(local, LAND, 1)

    frame = delta_sharing.load_as_pandas(_url(hanoi, LAND), version=1)

    pd.testing.assert_frame_equal(frame, v1)
    assert not frame.equals(_published(local, LAND, 2))
    committed = dt.datetime.fromisoformat(local.release(LAND, 1).record["committed_at"].replace("Z", "+00:00"))
    second = dt.datetime.fromisoformat(local.release(LAND, 2).record["committed_at"].replace("Z", "+00:00"))
    assert committed < second  # commit times are kept to the millisecond, so two releases a moment apart differ
    at = (committed + (second - committed) / 2).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    pd.testing.assert_frame_equal(delta_sharing.load_as_pandas(_url(hanoi, LAND), timestamp=at), v1)
    before = (committed - dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    with pytest.raises(HTTPError, match="400"):
        delta_sharing.load_as_pandas(_url(hanoi, LAND), timestamp=before)


def test_a_limit_hint_returns_enough_files_and_the_client_cuts_the_rest(server: Server, hanoi: str) -> None:
    frame = delta_sharing.load_as_pandas(_url(hanoi, LAND), limit=7)
    assert len(frame) == 7
    token = json.loads(Path(hanoi).read_text())["bearerToken"]
    lines = _query(server, token, LAND, {"limitHint": 1})
    assert [json.loads(line)["file"]["id"] for line in lines[2:]] == [server.store.latest(LAND).files[0]["sha256"]]


def _query(server: Server, token: str, dataset_id: str, body: dict[str, Any]) -> list[str]:
    request = urllib.request.Request(
        f"{server.endpoint}/shares/{HANOI}/schemas/{SECTORS[dataset_id]}/tables/{dataset_id}/query",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.headers["Delta-Table-Version"]
        return response.read().decode().splitlines()


def _query_raw(server: Server, token: str, body: bytes) -> list[str]:
    request = urllib.request.Request(
        f"{server.endpoint}/shares/{HANOI}/schemas/land/tables/{LAND}/query",
        data=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.read().decode().splitlines()


def test_predicate_hints_skip_files_whose_statistics_rule_them_out(server: Server, hanoi: str) -> None:
    token = json.loads(Path(hanoi).read_text())["bearerToken"]
    release = server.store.latest(LAND)
    assert len(release.files) > 1
    newest = max(server.built.new_parcels)
    every = [json.loads(line)["file"] for line in _query(server, token, LAND, {})[2:]]
    stats = [json.loads(f["stats"]) for f in every]
    holding = [
        f["id"]
        for f, s in zip(every, stats, strict=True)
        if s["minValues"]["parcel_id"] <= newest <= s["maxValues"]["parcel_id"]
    ]
    assert 0 < len(holding) < len(every)

    for body in (
        {"predicateHints": [f"parcel_id = {newest}"]},
        {"predicateHints": [f"{newest} <= parcel_id", "parcel_id IS NOT NULL"]},
        {
            "jsonPredicateHints": json.dumps(
                {
                    "op": "equal",
                    "children": [
                        {"op": "column", "name": "parcel_id", "valueType": "long"},
                        {"op": "literal", "value": str(newest), "valueType": "long"},
                    ],
                }
            )
        },
    ):
        kept = [json.loads(line)["file"]["id"] for line in _query(server, token, LAND, body)[2:]]
        assert kept == holding, body
    # Hints we cannot judge (unknown column, other syntax) keep every file: they are hints, not filters.
    for body in ({"predicateHints": ["no_such_column = 1"]}, {"predicateHints": ["parcel_id IN (1, 2)"]}):
        assert len(_query(server, token, LAND, body)[2:]) == len(every)
    # The client applies no row filter of its own for hints: a hinted read returns the kept files' rows.
    hinted = delta_sharing.load_as_pandas(
        _url(hanoi, LAND),
        jsonPredicateHints=json.dumps(
            {
                "op": "equal",
                "children": [
                    {"op": "column", "name": "parcel_id", "valueType": "long"},
                    {"op": "literal", "value": str(newest), "valueType": "long"},
                ],
            }
        ),
    )
    assert newest in set(hinted["parcel_id"]) and len(hinted) < release.rows


# -- the change data feed ---------------------------------------------------------------------------------


def test_table_changes_between_two_versions_are_exactly_the_rows_that_changed(server: Server, hanoi: str) -> None:
    local = ReleaseStore.local(server.built.root)

    feed = delta_sharing.load_table_changes_as_pandas(_url(hanoi, LAND), starting_version=2, ending_version=2)

    expected = _expected_changes(local, LAND, 1, 2)
    assert set(feed["_commit_version"]) == {2}
    committed = dt.datetime.fromisoformat(local.release(LAND, 2).record["committed_at"].replace("Z", "+00:00"))
    assert set(feed["_commit_timestamp"]) == {int(committed.timestamp() * 1000)}
    got = feed.drop(columns=["_commit_version", "_commit_timestamp"])
    assert list(got.columns) == list(expected.columns)
    assert _normalise(got, KEYS[LAND]) == _normalise(expected, KEYS[LAND])
    kinds = got["_change_type"].value_counts().to_dict()
    assert kinds.get("insert") == len(server.built.new_parcels)
    assert kinds.get("update_preimage") == kinds.get("update_postimage") > 0
    changed = set(got.loc[got["_change_type"] == "update_postimage", "parcel_id"])
    assert changed <= set(server.built.touched)  # re-surveyed parcels, nothing else

    # The same range by commit time: the first release at or after the start, the last at or before the end.
    # ISO 8601 in UTC to the millisecond, as commit times are kept (a second may hold two releases)
    stamp = committed.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    by_time = delta_sharing.load_table_changes_as_pandas(
        _url(hanoi, LAND), starting_timestamp=stamp, ending_timestamp=stamp
    )
    assert set(by_time["_commit_version"]) == {2}
    assert _normalise(by_time.drop(columns=["_commit_version", "_commit_timestamp"]), KEYS[LAND]) == _normalise(
        expected, KEYS[LAND]
    )
    assert delta_sharing.get_table_version(_url(hanoi, LAND), starting_timestamp=stamp) == 2
    # the protocol's other form, the server's local time to the second: the first release at or after it
    local_second = committed.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    floor = committed.replace(microsecond=0)
    first_after = min(
        v
        for v in (1, 2)
        if dt.datetime.fromisoformat(local.release(LAND, v).record["committed_at"].replace("Z", "+00:00")) >= floor
    )
    assert delta_sharing.get_table_version(_url(hanoi, LAND), starting_timestamp=local_second) == first_after


def test_the_change_feed_starts_with_the_first_release_as_inserts(server: Server, hanoi: str) -> None:
    import pandas as pd

    local = ReleaseStore.local(server.built.root)

    feed = delta_sharing.load_table_changes_as_pandas(_url(hanoi, AIR), starting_version=1)

    first = feed[feed["_commit_version"] == 1].drop(columns=CDF_COLUMNS)
    assert len(first) == local.release(AIR, 1).rows
    pd.testing.assert_frame_equal(_sorted(first, KEYS[AIR]), _sorted(_published(local, AIR, 1), KEYS[AIR]))
    second = feed[feed["_commit_version"] == 2].drop(columns=["_commit_version", "_commit_timestamp"])
    expected = _expected_changes(local, AIR, 1, 2)
    assert _normalise(second, KEYS[AIR]) == _normalise(expected, KEYS[AIR])
    assert set(second["_change_type"]) == {"insert"}  # a new day: only new observations


def test_a_withdrawn_release_is_never_served(server: Server, hanoi: str) -> None:
    local = ReleaseStore.local(server.built.root)
    dataset_id, withdrawn = server.built.withdrawn

    assert delta_sharing.get_table_version(_url(hanoi, dataset_id)) == 3
    with pytest.raises(HTTPError, match="404"):
        delta_sharing.load_as_pandas(_url(hanoi, dataset_id), version=withdrawn)
    feed = delta_sharing.load_table_changes_as_pandas(_url(hanoi, dataset_id), starting_version=2, ending_version=3)

    # v3 is compared with v1, the release before the withdrawn one: the licence v2 alone held never shows.
    assert set(feed["_commit_version"]) == {3}
    assert server.built.licence_only_in_v2 not in set(feed["licence_no"])
    got = feed.drop(columns=["_commit_version", "_commit_timestamp"])
    assert _normalise(got, KEYS[WATER]) == _normalise(_expected_changes(local, WATER, 1, 3), KEYS[WATER])
    assert {"delete", "update_preimage", "update_postimage"} <= set(got["_change_type"])


# -- refusals -------------------------------------------------------------------------------------------------


def test_another_recipients_table_is_not_found(server: Server) -> None:
    hcmc = server.profile(HCMC)
    with pytest.raises(HTTPError, match="404"):
        delta_sharing.load_as_pandas(_url(hcmc, LAND, share=HCMC))
    with pytest.raises(HTTPError, match="404"):
        delta_sharing.load_as_pandas(_url(hcmc, WATER, share=HANOI))  # someone else's share
    with pytest.raises(HTTPError, match="404"):
        delta_sharing.load_table_changes_as_pandas(_url(hcmc, LAND, share=HCMC), starting_version=1)


@pytest.mark.parametrize("name", ["expired", "revoked"])
def test_expired_and_revoked_profiles_are_refused(server: Server, name: str) -> None:
    profile = server.profile(name)
    with pytest.raises(HTTPError, match="401"):
        delta_sharing.SharingClient(profile).list_shares()
    with pytest.raises(HTTPError, match="401"):
        delta_sharing.load_as_pandas(_url(profile, AIR))
    status, body = _get_error(f"{server.endpoint}/shares", None)
    assert status == 401 and body["errorCode"] == "UNAUTHENTICATED"


def test_file_urls_are_short_lived_and_bound_to_their_file(server: Server, hanoi: str) -> None:
    token = json.loads(Path(hanoi).read_text())["bearerToken"]
    files = [json.loads(line)["file"] for line in _query(server, token, AIR, {})[2:]]
    url = files[0]["url"]
    with urllib.request.urlopen(url, timeout=30) as response:
        assert hashlib.sha256(response.read()).hexdigest() == files[0]["id"]
    if server.kind == "s3":
        assert "X-Amz-Expires=120" in url and "X-Amz-Signature=" in url
        return
    assert token not in url and "Bearer" not in url
    ranged = urllib.request.Request(url, headers={"Range": "bytes=0-3"})
    with urllib.request.urlopen(ranged, timeout=30) as response:
        assert response.status == 206 and response.read() == b"PAR1"
    head = urllib.request.Request(url, method="HEAD")
    with urllib.request.urlopen(head, timeout=30) as response:
        assert int(response.headers["Content-Length"]) == files[0]["size"]
    base, _, query = url.partition("?")
    params = dict(p.split("=", 1) for p in query.split("&"))
    other = server.store.release(LAND, 1).prefix + "/data/part-00000.parquet"
    forged = [
        f"{base}?expires={int(params['expires']) + 3600}&signature={params['signature']}",  # stretched in time
        f"{base.rsplit('/files/', 1)[0]}/files/{other}?{query}",  # pointed at another object
        f"{base}?expires={params['expires']}&signature={'0' * 64}",
        f"{base}?expires=1&signature={params['signature']}",  # expired
        base,
    ]
    for bad in forged:
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(bad, timeout=30).close()
        assert info.value.code == 403, bad


def test_malformed_requests_get_protocol_errors(server: Server, hanoi: str) -> None:
    token = json.loads(Path(hanoi).read_text())["bearerToken"]
    table = f"{server.endpoint}/shares/{HANOI}/schemas/land/tables/{LAND}"
    for body, needle in (
        (b"not json", "not JSON"),
        (b"[1]", "JSON object"),
        (json.dumps({"version": -1}).encode(), "version"),
        (json.dumps({"version": 1, "timestamp": "2026-01-01 00:00:00"}).encode(), "either version or timestamp"),
        (json.dumps({"limitHint": "ten"}).encode(), "limitHint"),
        (json.dumps({"startingVersion": 1}).encode(), "/changes"),
        (json.dumps({"timestamp": "yesterday"}).encode(), "not a timestamp"),
        (json.dumps({"timestamp": "0001-01-01 00:00:00"}).encode(), "0001-01-01"),
        (b"[" * 100_000 + b"]" * 100_000, "not JSON"),  # nesting deep enough to exhaust a recursive parser
        (b'{"predicateHints": ["' + b"x" * (1 << 20) + b'"]}', "larger than 1 MiB"),
    ):
        status, answer = _get_error(f"{table}/query", token, "POST", body)
        assert status == 400 and needle in answer["message"], (body, answer)
    for query, needle in (
        ("", "startingVersion or startingTimestamp is required"),
        ("?startingVersion=x", "startingVersion"),
        ("?startingVersion=2&endingVersion=1", "before the starting version"),
        ("?startingVersion=99", "past the latest version"),
        ("?startingVersion=1&startingTimestamp=2026-01-01%2000:00:00", "either startingVersion"),
    ):
        status, answer = _get_error(f"{table}/changes{query}", token)
        assert status == 400 and needle in answer["message"], (query, answer)
    deep = json.dumps({"jsonPredicateHints": "[" * 100_000 + "]" * 100_000}).encode()
    assert len(_query_raw(server, token, deep)) > 2  # an unreadable hint is skipped, not a server error
    status, answer = _get_error(f"{server.endpoint}/shares/{HANOI}/schemas/land/tables/no_such_table/metadata", token)
    assert status == 404 and answer["errorCode"] == "RESOURCE_DOES_NOT_EXIST"


def test_metadata_carries_the_schema_in_delta_json(server: Server, hanoi: str) -> None:
    metadata = delta_sharing.get_table_metadata(_url(hanoi, AIR), use_delta_format=False)
    schema = json.loads(metadata.schema_string)
    types = {f["name"]: f["type"] for f in schema["fields"]}
    assert types["station_code"] == "string" and types["observed_at"] == "timestamp"
    assert types["pm25"] == "double"
    assert metadata.configuration == {"enableChangeDataFeed": "true"}
    published = pq.read_schema(
        ReleaseStore.local(server.built.root).backend.local_path(
            f"{AIR}/v2/{server.store.release(AIR, 2).files[0]['path']}"
        )
    )
    assert [f["name"] for f in schema["fields"]] == published.names
    assert all(f["metadata"].get("comment") for f in schema["fields"])
    protocol = delta_sharing.get_table_protocol(_url(hanoi, AIR), use_delta_format=False)
    assert protocol.min_reader_version == 1


def test_profiles_are_not_overwritten_and_need_a_token(server: Server, tmp_path: Path, capsys) -> None:
    path = tmp_path / "p.share"
    path.write_text("{}")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DATASHARE_HOME", str(REPO))
        mp.setenv("DATASHARE_RELEASE_ROOT", str(server.built.root))
        assert cli.main(["grant", HANOI, "--profile", str(path), "--http"]) == 2
        assert "already exists" in capsys.readouterr().err and path.read_text() == "{}"
        assert cli.main(["grant", HANOI, "--sql", "--profile", str(tmp_path / "q.share")]) == 2
        assert "--profile holds an HTTP token" in capsys.readouterr().err
        assert not (tmp_path / "q.share").exists()
    shutil.rmtree(tmp_path, ignore_errors=True)


# -- the catalog's change summaries, page, files and API ------------------------------------------------------


def _http(server: Server, path: str, token: str | None = None) -> tuple[int, dict[str, str], bytes]:
    """GET a catalog path (redirects followed); status, headers and body, errors included."""
    base = server.endpoint.removesuffix("/delta-sharing")
    request = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def _token(profile: str) -> str:
    return json.loads(Path(profile).read_text())["bearerToken"]


def test_the_api_counts_changes_by_key_against_the_previous_release(server: Server, hanoi: str) -> None:
    local = ReleaseStore.local(server.built.root)
    expected = _expected_changes(local, LAND, 1, 2)
    kinds = expected["_change_type"].value_counts().to_dict()

    status, _, body = _http(server, f"/api/v1/datasets/{LAND}/changes", _token(hanoi))

    assert status == 200
    answer = json.loads(body)
    assert (answer["from_version"], answer["to_version"], answer["key"]) == (1, 2, ["parcel_id"])
    assert answer["added"] == kinds.get("insert", 0) == len(server.built.new_parcels)
    assert answer["removed"] == kinds.get("delete", 0) == 0
    assert answer["changed"] == kinds["update_postimage"] > 0
    assert answer["rows_before"] == local.release(LAND, 1).rows
    assert answer["rows_after"] == local.release(LAND, 2).rows == answer["rows_before"] + answer["added"]
    assert answer["unchanged"] == answer["rows_after"] - answer["added"] - answer["changed"]
    assert answer["schema_changes"] == []
    assert answer["title"]["vi"] == "Thửa đất địa chính"


def test_any_two_visible_versions_compare_and_a_withdrawn_one_does_not(server: Server, hanoi: str) -> None:
    token = _token(hanoi)
    local = ReleaseStore.local(server.built.root)

    status, _, body = _http(server, f"/api/v1/datasets/{WATER}/changes?from=1&to=3", token)
    assert status == 200
    answer = json.loads(body)
    kinds = _expected_changes(local, WATER, 1, 3)["_change_type"].value_counts().to_dict()
    assert (answer["added"], answer["removed"], answer["changed"]) == (
        kinds.get("insert", 0),
        kinds.get("delete", 0),
        kinds.get("update_postimage", 0),
    )
    default = json.loads(_http(server, f"/api/v1/datasets/{WATER}/changes", token)[2])
    assert (default["from_version"], default["to_version"]) == (1, 3)  # v2 is withdrawn: v3 follows v1
    for query in ("from=2&to=3", "from=1&to=2"):
        assert _http(server, f"/api/v1/datasets/{WATER}/changes?{query}", token)[0] == 404
    status, _, body = _http(server, f"/api/v1/datasets/{WATER}/changes?from=3&to=1", token)
    assert status == 404 and "older release" in json.loads(body)["detail"]  # no such change set, and why
    status, _, body = _http(server, f"/api/v1/datasets/{AIR}/changes?to=1", token)
    assert status == 404 and "first release" in json.loads(body)["detail"]
    assert _http(server, f"/api/v1/datasets/{AIR}/changes?from=x", token)[0] == 422


def test_change_files_download_as_parquet_and_csv(server: Server, hanoi: str) -> None:
    import pandas as pd

    token = _token(hanoi)
    local = ReleaseStore.local(server.built.root)
    answer = json.loads(_http(server, f"/api/v1/datasets/{LAND}/changes", token)[2])
    expected = _expected_changes(local, LAND, 1, 2)

    status, _, parquet = _http(server, f"/api/v1/datasets/{LAND}/changes/download?from=1&to=2", token)
    assert status == 200 and hashlib.sha256(parquet).hexdigest() == answer["file_sha256"]
    table = pq.read_table(pa_buffer(parquet))
    assert _normalise(table.to_pandas(date_as_object=True), KEYS[LAND]) == _normalise(expected, KEYS[LAND])

    status, headers, csv = _http(server, f"/api/v1/datasets/{LAND}/changes/download?format=csv", token)
    assert status == 200 and headers["content-type"].startswith("text/csv")
    assert csv.startswith(b"\xef\xbb\xbf")  # Excel reads UTF-8 Vietnamese only with the BOM
    assert f"{LAND}-v2-changes-v1-v2.csv" in headers["content-disposition"]
    frame = pd.read_csv(io.BytesIO(csv), encoding="utf-8-sig", dtype=str, keep_default_na=False)
    assert list(frame.columns) == list(expected.columns)
    assert len(frame) == len(expected) == answer["change_rows"]
    assert sorted(zip(frame["parcel_id"], frame["_change_type"], strict=True)) == sorted(
        zip(expected["parcel_id"].astype(str), expected["_change_type"], strict=True)
    )
    updated = frame["updated_at"].iloc[0]
    assert dt.datetime.fromisoformat(updated) and "T" in updated  # ISO 8601


def pa_buffer(data: bytes) -> Any:
    import pyarrow as pa

    return pa.BufferReader(data)


def test_the_release_page_sums_up_its_changes_in_both_languages(server: Server, hanoi: str) -> None:
    token = _token(hanoi)
    answer = json.loads(_http(server, f"/api/v1/datasets/{LAND}/changes", token)[2])

    status, _, page = _http(server, f"/datasets/{LAND}/v/2", token)
    html = page.decode()
    assert status == 200
    assert "Thay đổi so với phiên bản trước" in html and "Dòng thay đổi" in html
    changed = html.split('class="changes-changed">', 1)[1].split("<", 1)[0]
    assert changed == f"{answer['changed']:,}".replace(",", ".")
    assert f'href="/datasets/{LAND}/changes?from=1&amp;to=2"' in html
    english = _http(server, f"/datasets/{LAND}/v/2?lang=en", token)[2].decode()
    assert "Changes since the previous release" in english and "Rows changed" in english
    first = _http(server, f"/datasets/{LAND}/v/1", token)[2].decode()
    assert "Phiên bản đầu tiên" in first


def test_the_changes_page_shows_before_and_after(server: Server, hanoi: str) -> None:
    token = _token(hanoi)

    status, _, page = _http(server, f"/datasets/{LAND}/changes?from=1&to=2&lang=en", token)

    html = page.decode()
    assert status == 200
    assert html.index("Before") < html.index("After")  # a changed parcel: its old row, then its new one
    assert 'class="diff"' in html and "area_m2" in html
    assert "Rows added" in html and "Matched by key" in html and "<code>parcel_id</code>" in html
    vi = _http(server, f"/datasets/{LAND}/changes", token)[2].decode()
    assert "Trước khi sửa" in vi and "Sau khi sửa" in vi and "Dòng thêm mới" in vi
    assert '<html lang="vi">' in vi


def test_changes_follow_the_catalogs_access_rule(server: Server) -> None:
    hcmc = _token(server.profile(HCMC))
    for path in (
        f"/api/v1/datasets/{LAND}/changes",
        f"/api/v1/datasets/{LAND}/changes/download?format=csv",
        f"/datasets/{LAND}/changes",
    ):
        assert _http(server, path, hcmc)[0] == 404, path
        assert _http(server, path)[0] == 404, path
    assert _http(server, f"/api/v1/datasets/{AIR}/changes")[0] == 200  # open data: anyone
    assert _http(server, f"/api/v1/datasets/{LAND}/changes", server.built.tokens["revoked"])[0] == 401


def test_openapi_documents_the_changes_routes(server: Server) -> None:
    spec = json.loads(_http(server, "/openapi.json")[2])
    changes = spec["paths"]["/api/v1/datasets/{dataset_id}/changes"]["get"]
    assert {p["name"] for p in changes["parameters"]} >= {"dataset_id", "from", "to"}
    download = spec["paths"]["/api/v1/datasets/{dataset_id}/changes/download"]["get"]
    assert {p["name"] for p in download["parameters"]} >= {"from", "to", "format"}
    assert "text/csv" in download["responses"]["200"]["content"]
