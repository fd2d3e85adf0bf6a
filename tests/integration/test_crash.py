"""Kills at every instant the store's recovery relies on, then every reader, and the next run.

A run of ``air_quality_hourly`` is killed with SIGKILL (no ``finally``, no cleanup, as a lost worker)
at a named point (``DATASHARE_KILL_AT``, :mod:`datashare.faults`), on a local store and on a loopback
S3 server; the stage that dies runs in a process of its own, as an Airflow task does, with the
references the earlier stages of the run handed it. After each kill:

- every CLI command (``list``, ``releases``, ``show``, ``verify``) and every catalog page answers;
- ``verify`` is clean, or names only what ``verify --repair`` completes, and is clean after it;
- the next run publishes exactly one version beyond v1, holding exactly the source's rows, and the
  SQL share serves it.

Random SIGKILLs of whole ``datashare run`` processes complete the picture.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from datashare.catalog.app import create_app
from datashare.pipeline.context import RunContext
from datashare.pipeline.stages import (
    run_dataset,
    stage_commit,
    stage_extract,
    stage_publish_sql,
    stage_transform,
    stage_validate,
)
from datashare.settings import Settings
from datashare.store import ReleaseStore
from datashare.tools.cli import main
from units import monitoring

DATASET = "air_quality_hourly"
CONN = "monre_monitoring"
REPAIRABLE = ("release with no ledger entry", "(repairable)")

STAGE_SCRIPT = """
import json, sys
from datashare.pipeline import stages as pipeline
from datashare.pipeline.context import RunContext
run_id, stage, refs = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
getattr(pipeline, stage)(RunContext.create("air_quality_hourly", run_id), *refs)
"""

# point -> the stage it lies in
POINTS = {
    "extract.staged": "stage_extract",
    "transform.staged": "stage_transform",
    "validate.saved": "stage_validate",
    "commit.claimed": "stage_commit",
    "commit.data_placed": "stage_commit",
    "commit.manifest_written": "stage_commit",
    "commit.recorded": "stage_commit",
    "ledger.appended": "stage_commit",
    "commit.ledgered": "stage_commit",
    "commit.head_written": "stage_commit",
    "publish.loaded": "stage_publish_sql",
    "record.saved": "stage_record",
}
ALSO = {"commit.closed": "stage_commit"}
"""Reached only when a dead writer's claim is met: tried by test_kills_while_closing_a_dead_writers_number."""
S3_POINTS = ["commit.claimed", "commit.data_placed", "commit.recorded", "commit.ledgered", "publish.loaded"]


@pytest.fixture
def s3_project(project, s3_server, s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The ``project`` fixture with its release store in ``s3://<bucket>/releases``."""
    monkeypatch.setenv("DATASHARE_RELEASE_ROOT", f"s3://{s3_bucket}/releases")
    monkeypatch.setenv("DATASHARE_S3_ENDPOINT_URL", s3_server.endpoint_url)
    monkeypatch.setenv("DATASHARE_STAGING_DIR", str(tmp_path / "scratch"))
    return project


@pytest.fixture(params=["local", "s3"])
def where(request: pytest.FixtureRequest, project: Any) -> Callable[..., Path]:
    """The ``project`` fixture on a local store, then on S3."""
    return project if request.param == "local" else request.getfixturevalue("s3_project")


def _unit_with_v1(connect: Callable[..., Path], tmp_path: Path) -> str:
    """A small monitoring unit, its v1 released, then one more day in the unit."""
    unit = f"sqlite:///{tmp_path / 'unit.sqlite'}"
    monitoring.generate(unit, stations=2, days=2)
    connect(CONN, unit)
    assert run_dataset(DATASET, run_id="first")["version"] == 1
    monitoring.append_day(unit)
    return unit


def _run_stage(run_id: str, stage: str, refs: list[Any], kill_at: str) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "DATASHARE_KILL_AT": kill_at}
    args = [sys.executable, "-c", STAGE_SCRIPT, run_id, stage, json.dumps(refs)]
    return subprocess.run(args, env=env, capture_output=True, timeout=300, check=False)


def _kill_in_stage(point: str, run_id: str = "doomed") -> None:
    """Run the doomed run's stages in this process up to the one holding ``point``; that one dies alone."""
    stage = {**POINTS, **ALSO}[point]
    ctx = RunContext.create(DATASET, run_id)
    refs: list[Any] = []
    order = ["stage_extract", "stage_transform", "stage_validate", "stage_commit", "stage_publish_sql", "stage_record"]
    done: dict[str, Any] = {}
    for name in order[: order.index(stage)]:
        if name == "stage_extract":
            done[name] = stage_extract(ctx)
        elif name == "stage_transform":
            done[name] = stage_transform(ctx, done["stage_extract"])
        elif name == "stage_validate":
            done[name] = stage_validate(ctx, done["stage_transform"])
        elif name == "stage_commit":
            done[name] = stage_commit(ctx, done["stage_extract"], done["stage_transform"], done["stage_validate"])
        elif name == "stage_publish_sql":
            done[name] = stage_publish_sql(ctx, done["stage_commit"])
    as_json = {k: (v.to_json() if hasattr(v, "to_json") else v) for k, v in done.items()}
    refs = {
        "stage_extract": [],
        "stage_transform": [as_json.get("stage_extract")],
        "stage_validate": [as_json.get("stage_transform")],
        "stage_commit": [as_json.get("stage_extract"), as_json.get("stage_transform"), as_json.get("stage_validate")],
        "stage_publish_sql": [as_json.get("stage_commit")],
        "stage_record": [as_json.get("stage_commit"), as_json.get("stage_publish_sql")],
    }[stage]
    proc = _run_stage(run_id, stage, refs, point)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-3000:]


def _source_keys(unit: str) -> set[tuple[str, str]]:
    engine = sa.create_engine(unit)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT DISTINCT station_code, observed_at FROM air_observations")).all()
    engine.dispose()
    return {(str(code), str(at).replace(" ", "T")[:19]) for code, at in rows}


def _release_table(store: ReleaseStore, version: int, scratch: Path) -> pa.Table:
    release = store.release(DATASET, version)
    tables = []
    for f in release.files:
        local = scratch / f"v{version}-{f['path'].replace('/', '_')}"
        store.backend.download(release.key(f["path"]), local)
        tables.append(pq.read_table(local))
    return pa.concat_tables(tables)


def _readers_work(capsys: pytest.CaptureFixture[str]) -> list[str]:
    """Every CLI command and catalog page answers; verify is clean or clean after --repair. Returns repairs."""
    capsys.readouterr()
    assert main(["list"]) == 0, capsys.readouterr()
    assert main(["releases", DATASET]) == 0, capsys.readouterr()
    assert main(["show", DATASET]) == 0, capsys.readouterr()
    capsys.readouterr()
    repaired: list[str] = []
    if main(["verify"]) != 0:
        failures = [line for line in capsys.readouterr().out.splitlines() if line.startswith("FAIL ")]
        assert failures and all(any(r in line for r in REPAIRABLE) for line in failures), failures
        assert main(["verify", "--repair"]) == 0, capsys.readouterr()
        repaired = [line for line in capsys.readouterr().out.splitlines() if line.startswith("REPAIRED ")]
        assert repaired
    client = TestClient(create_app(Settings.from_env()))
    for path in (
        "/",
        "/?lang=en",
        "/api/v1/datasets",
        "/dcat.jsonld",
        f"/datasets/{DATASET}",
        f"/api/v1/datasets/{DATASET}",
    ):
        response = client.get(path)
        assert response.status_code == 200, (path, response.status_code, response.text[:500])
    store = ReleaseStore.open(Settings.from_env().release_uri)
    withdrawn = store.withdrawn(DATASET)
    for version in store.versions(DATASET):
        expected = 404 if version in withdrawn else 200
        assert client.get(f"/datasets/{DATASET}/v/{version}").status_code == expected
    return repaired


def _next_run_completes(unit: str, tmp_path: Path) -> dict[str, Any]:
    """The next run leaves exactly one version beyond v1, holding every source key once, served by the share."""
    summary = run_dataset(DATASET, run_id="next")
    store = ReleaseStore.open(Settings.from_env().release_uri)
    versions = store.versions(DATASET)
    assert len(versions) == 2 and versions[0] == 1, versions
    table = _release_table(store, versions[-1], tmp_path)
    keys = [
        (c, t.isoformat()[:19])
        for c, t in zip(table["station_code"].to_pylist(), table["observed_at"].to_pylist(), strict=True)
    ]
    assert len(keys) == len(set(keys))  # no row twice
    assert set(keys) == _source_keys(unit)  # every source row, nothing else
    assert summary["version"] == versions[-1]
    share = sa.create_engine(f"sqlite:///{tmp_path / 'share.sqlite'}")
    with share.connect() as conn:
        assert conn.execute(sa.text(f"SELECT count(*) FROM {DATASET}")).scalar_one() == table.num_rows
    share.dispose()
    assert main(["verify"]) == 0
    return summary


@pytest.mark.parametrize("point", list(POINTS))
def test_kill_on_a_local_store(point: str, project, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    unit = _unit_with_v1(project, tmp_path)

    _kill_in_stage(point)

    _readers_work(capsys)
    _next_run_completes(unit, tmp_path)


@pytest.mark.parametrize("point", S3_POINTS)
def test_kill_on_s3(point: str, s3_project, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    unit = _unit_with_v1(s3_project, tmp_path)

    _kill_in_stage(point)

    _readers_work(capsys)
    _next_run_completes(unit, tmp_path)


def test_a_kill_after_the_ledger_entry_is_repaired_by_the_next_run(
    project, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Killed between commit record and ledger entry: the next run appends the entry itself (no verify needed)."""
    unit = _unit_with_v1(project, tmp_path)
    _kill_in_stage("commit.recorded")
    monitoring.append_day(unit)

    _next = run_dataset(DATASET, run_id="next")

    store = ReleaseStore.open(Settings.from_env().release_uri)
    assert store.versions(DATASET) == [1, 2, 3] and _next["version"] == 3
    entries = [e.body for e in store.ledger.entries(DATASET) if e.body["event"] == "release_committed"]
    assert [(e["version"], bool(e.get("repaired"))) for e in entries] == [(1, False), (2, True), (3, False)]
    assert main(["verify"]) == 0


def test_kills_while_closing_a_dead_writers_number(where, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """One writer dies holding its claim, the next dies right after closing that number; the third completes."""
    unit = _unit_with_v1(where, tmp_path)
    _kill_in_stage("commit.claimed", run_id="doomed")
    _kill_in_stage("commit.closed", run_id="doomed_too")

    _readers_work(capsys)
    store = ReleaseStore.open(Settings.from_env().release_uri)
    assert store.record(DATASET, 2)["skipped"] is True
    _next_run_completes(unit, tmp_path)
    assert store.versions(DATASET) == [1, 3]


def test_kill_during_withdrawal(where, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Killed after the withdrawal marker, before its ledger entry: withdrawn for every reader; repair completes it."""
    unit = _unit_with_v1(where, tmp_path)
    run_dataset(DATASET, run_id="second")
    env = {**os.environ, "DATASHARE_KILL_AT": "withdraw.marked"}
    cli = Path(sys.executable).with_name("datashare")
    proc = subprocess.run(
        [str(cli), "withdraw", DATASET, "--version", "2", "--reason", "đơn vị đo sai"],
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]

    client = TestClient(create_app(Settings.from_env()))
    assert client.get(f"/datasets/{DATASET}/v/2").status_code == 404  # withdrawn for the catalog already
    repaired = _readers_work(capsys)
    assert any("release_withdrawn ledger entry was missing" in line for line in repaired)
    again = run_dataset(DATASET, run_id="after")  # builds on v1: same rows as v2, which stays withdrawn
    assert not again["created"] and "withdrawn v2" in again["reason"]
    assert _source_keys(unit)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_kills_of_whole_runs(seed: int, project, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``datashare run`` killed at a random instant (seeded), twice in a row; then readers and the next run."""
    unit = _unit_with_v1(project, tmp_path)
    cli = Path(sys.executable).with_name("datashare")
    rng = random.Random(seed)
    for _ in range(2):
        proc = subprocess.Popen([str(cli), "run", DATASET], env=dict(os.environ), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)  # fmt: skip
        time.sleep(rng.uniform(0.5, 6.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)

    _readers_work(capsys)
    _next_run_completes(unit, tmp_path)


def test_four_runs_started_at_once_after_a_new_day_publish_one_version(where, tmp_path: Path) -> None:
    """The evidence of issue 11: four simultaneous runs gave 3, 3, 4 and 4 versions; now one, with every row once."""
    unit = _unit_with_v1(where, tmp_path)
    cli = Path(sys.executable).with_name("datashare")
    procs = [
        subprocess.Popen(
            [str(cli), "run", DATASET], env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(4)
    ]
    outcomes = []
    for proc in procs:  # communicate: a pipe left unread fills up and blocks the run that writes to it
        out, err = proc.communicate(timeout=600)
        outcomes.append((proc.returncode, out.decode(), err.decode()))

    assert all(code == 0 for code, _, _ in outcomes), [err[-1500:] for _, _, err in outcomes]
    assert sum("Published a new release" in out for _, out, _ in outcomes) == 1
    store = ReleaseStore.open(Settings.from_env().release_uri)
    # One new version. On a starved machine a writer's lease can run out while it waits for the CPU: its
    # number is then closed with a tombstone and the winner takes the next one (versions may have gaps).
    versions = store.versions(DATASET)
    assert len(versions) == 2 and versions[0] == 1, versions
    release = store.release(DATASET, versions[1])
    assert all(f["rows"] > 0 for f in release.files)  # no empty data file
    table = _release_table(store, versions[1], tmp_path)
    assert table.num_rows == len(_source_keys(unit))
