"""Every DAG under Airflow's real services: api-server, scheduler, dag-processor, triggerer, two Celery workers.

The stack (``stack.py``) runs on loopback from the project's virtual environment: PostgreSQL metadata,
Redis broker, an S3 protocol server as the release store, unit databases for every dataset on
PostgreSQL and MariaDB and the SQL share on PostgreSQL. Each worker has its own HOME, staging folder and
hostname, as two machines would (``DATASHARE_SCHEDULER_STAGING=shared`` gives them one staging folder).
Every source DAG is triggered through the REST API v2 with a JWT; the derived dataset runs on its
inputs' Asset events. The run takes a few minutes, so it runs once and each test reads its outcome.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from scheduler_run import SECOND_TRIGGER, Outcome, wait_runs, where
from stack import BIN, BUCKET, MARIADB_ADMIN, POSTGRES_ADMIN, REPO, S3_PREFIX, Stack, _group_members, _session_members

# The first test starts the stack and waits for every run (its fixtures count against pytest-timeout's 600 s).
pytestmark = [pytest.mark.scheduler, pytest.mark.postgres, pytest.mark.mariadb, pytest.mark.timeout(3600)]

REASONS = {"no new rows past the cursor", "content unchanged"}
KILLED_DATASET = "land_use_codes"
"""Small, and no derived dataset reads it: its new version sets off no other DAG."""
KILL_POINT = "commit.data_placed"
"""Release data copied into the next version's folder, no commit record yet: the worst instant to lose a host."""
REVISED = " (revised)"


@pytest.fixture(scope="module")
def store(stack: Stack) -> Iterator[Any]:
    """The release store the workers wrote, read from this process through the S3 server."""
    from datashare.store import ReleaseStore

    with pytest.MonkeyPatch.context() as mp:
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "DATASHARE_S3_ENDPOINT_URL"):
            mp.setenv(key, stack.env[key])
        mp.setenv("AWS_CONFIG_FILE", os.devnull)
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
        yield ReleaseStore.open(f"s3://{BUCKET}/{S3_PREFIX}")


def _ledger(store: Any) -> Any:
    try:
        from datashare.store import Ledger  # the store as a package (issue 10)
    except ImportError:  # before it, a module of its own
        from datashare.store.ledger import Ledger
    return Ledger(store.backend)


def _errors(stack: Stack, dag_id: str, run_id: str, task_id: str) -> str:
    """The exceptions in a task's logs (type and message), for failure messages."""
    found = []
    for line in stack.task_log_text(dag_id, run_id, task_id).splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        for detail in record.get("error_detail") or []:
            found.append(f"{detail.get('exc_type')}: {str(detail.get('exc_value'))[:400]}")
    return "\n      ".join(found[-3:])


def test_every_run_succeeds_on_its_first_try(outcome: Outcome) -> None:
    """Every run succeeds, and no task needed a retry that happened to land on the worker holding the files."""
    problems = []
    for dag_id, runs in outcome.runs.items():
        for run in runs:
            tis = outcome.tis[(dag_id, run["dag_run_id"])]
            for ti in tis:
                retried = (ti.get("try_number") or 1) > 1
                if ti["state"] == "upstream_failed":
                    continue  # the failure upstream is listed
                if ti["state"] not in ("success", "skipped") or retried:
                    problems.append(
                        f"{dag_id}.{where(ti)} {ti['state']} (try {ti.get('try_number')}, on {ti.get('hostname')}):"
                        f"\n      {_errors(outcome.stack, dag_id, run['dag_run_id'], ti['task_id'])}"
                    )
            if run["state"] != "success" and not problems:
                problems.append(f"{dag_id} run {run['dag_run_id']} is {run['state']}")
    assert set(outcome.first) == set(outcome.sources)
    assert not problems and not outcome.notes, "\n".join([*outcome.notes, *problems])


def test_land_parcels_key_ranges_ran_on_both_workers(outcome: Outcome) -> None:
    """The four mapped key ranges are spread over the two workers, and all of them succeed."""
    tis = outcome.tis[("land_parcels", outcome.first["land_parcels"])]
    ranges = [ti for ti in tis if ti["task_id"] == "extract_range"]
    assert sorted(ti["map_index"] for ti in ranges) == [0, 1, 2, 3]
    hosts = {ti["hostname"] for ti in ranges}
    assert hosts == {w.hostname for w in outcome.stack.worker_info}, [(where(t), t["hostname"]) for t in ranges]
    assert {ti["state"] for ti in ranges} == {"success"}, [(where(t), t["state"], t["hostname"]) for t in ranges]


def test_each_release_is_committed_exactly_once(outcome: Outcome, store: Any) -> None:
    """One commit record and one ledger entry per release; a source dataset has exactly v1 after two triggers."""
    ledger = _ledger(store)
    for dataset_id in [*outcome.sources, *outcome.derived]:
        versions = store.versions(dataset_id)
        committed = [e.body["version"] for e in ledger.entries(dataset_id) if e.body["event"] == "release_committed"]
        if dataset_id in outcome.sources:
            assert versions == [1], (dataset_id, versions)
        assert versions, f"{dataset_id}: nothing committed"
        assert sorted(committed) == versions, (dataset_id, "ledger", committed, "store", versions)
        for version in versions:
            assert store.verify(dataset_id, version) == [], (dataset_id, version)


def test_derived_dataset_ran_on_its_inputs_asset_events(outcome: Outcome, store: Any) -> None:
    """The derived DAG was never triggered by hand: it ran on the Asset events its inputs' DAGs emitted."""
    from datashare.settings import Settings
    from datashare.spec import load_spec

    stack = outcome.stack
    for dataset_id in outcome.derived:
        inputs = load_spec(Settings.from_env().datasets_dir / f"{dataset_id}.yaml").source.inputs
        runs = outcome.runs[dataset_id]
        assert runs, f"{dataset_id} never ran: {outcome.notes}"
        assert {r["run_type"] for r in runs} == {"asset_triggered"}, runs
        consumed: dict[str, set[str]] = {}
        for run in runs:
            run_path = f"/dags/{dataset_id}/dagRuns/{quote(run['dag_run_id'], safe='')}"
            events = stack.api("GET", f"{run_path}/upstreamAssetEvents")
            for event in events["asset_events"]:
                consumed.setdefault(event["source_dag_id"], set()).add(event["source_run_id"])
        assert set(consumed) == set(inputs), consumed
        for input_id, run_ids in consumed.items():
            assert run_ids == {outcome.first[input_id]}, (input_id, run_ids)  # its first run published v1
        latest = store.release(dataset_id, store.versions(dataset_id)[-1])
        assert latest.manifest["datashare"]["stats"]["inputs"] == {i: store.versions(i)[-1] for i in inputs}


def test_second_trigger_publishes_nothing_and_says_why(outcome: Outcome, store: Any) -> None:
    """A second run with nothing new succeeds, skips ``record``, emits no Asset event and names the reason."""
    from datashare.pipeline.context import run_key_of

    stack = outcome.stack
    for dag_id in SECOND_TRIGGER:
        run_id = outcome.second[dag_id]
        assert outcome.run(dag_id, run_id)["state"] == "success"
        states = {where(ti): ti["state"] for ti in outcome.tis[(dag_id, run_id)]}
        assert states.pop("record") == "skipped", (dag_id, states)
        assert set(states.values()) == {"success"}, states
        summary = json.loads(store.backend.get_bytes(f"{dag_id}/_runs/{run_key_of(run_id)}.json"))
        assert summary["created"] is False and summary["version"] == 1, summary
        assert summary["reason"] in REASONS, summary
        assert f"no new version of {dag_id}: {summary['reason']}" in stack.task_log_text(dag_id, run_id, "record")
        events = stack.api("GET", "/assets/events?" + urlencode({"source_dag_id": dag_id, "source_run_id": run_id}))
        assert events["total_entries"] == 0, events
        first = {"source_dag_id": dag_id, "source_run_id": outcome.first[dag_id]}
        assert stack.api("GET", "/assets/events?" + urlencode(first))["total_entries"] == 1  # the first run did emit


def test_catalog_answers_inside_the_api_server(outcome: Outcome) -> None:
    """``/datashare`` in Airflow's api-server lists the open releases to anyone and hides the restricted one."""
    stack = outcome.stack
    status, body = stack.get_url("/datashare/api/v1/datasets?classification=open")
    assert status == 200, body[:500]
    listed = {item["id"]: item for item in json.loads(body)["items"]}
    assert listed["air_quality_hourly"]["latest_version"] == 1
    assert listed["air_quality_hourly"]["verdict"] is not None
    status, body = stack.get_url("/datashare/api/v1/datasets")
    assert status == 200 and "land_parcels" not in {i["id"] for i in json.loads(body)["items"]}  # restricted
    status, page = stack.get_url("/datashare/")
    assert status == 200 and "air_quality_hourly" in page.decode()


def _revise_a_code(stack: Stack) -> tuple[str, str]:
    """Change one land-use code's English name at the source, so the next run has a new version to commit."""
    import sqlalchemy as sa

    engine = sa.create_engine(stack.connections["monre_catalogues"])
    try:
        with engine.begin() as conn:
            code = conn.execute(sa.text("SELECT min(code) FROM land_use_codes")).scalar_one()
            name = conn.execute(
                sa.text("UPDATE land_use_codes SET name_en = name_en || :s WHERE code = :c RETURNING name_en"),
                {"s": REVISED, "c": code},
            ).scalar_one()
    finally:
        engine.dispose()
    return str(code), str(name)


def _ti(stack: Stack, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
    return next(ti for ti in stack.task_instances(dag_id, run_id) if ti["task_id"] == task_id)


def test_a_worker_killed_mid_commit_loses_and_duplicates_nothing(outcome: Outcome, store: Any) -> None:
    """A worker SIGKILLed with all its processes mid-commit (a lost host): the release is committed exactly once.

    The commit task waits at ``commit.data_placed`` (a pause point of :mod:`datashare.faults`, armed for this
    run only): it holds the claim on the next version number and has copied the data into that version's
    folder, with no commit record yet. The test kills the worker the REST API says runs it. Airflow hears no
    heartbeat, fails the try after ``[scheduler] task_instance_heartbeat_timeout`` and retries it on the other
    worker, which finds the dead writer's claim expired, closes that number and commits the next one: one new
    version, one ledger entry, one Asset event, ``datashare verify`` clean, and nothing of the killed try left.
    """
    from datashare.pipeline.context import run_key_of

    stack = outcome.stack
    dag_id = KILLED_DATASET
    before = store.versions(dag_id)
    assert before == [1], before
    code, revised = _revise_a_code(stack)
    run_id = f"worker_killed__{uuid.uuid4().hex[:8]}"
    run_key = run_key_of(run_id)
    started = time.monotonic()
    stack.arm_pause(KILL_POINT, run_id)
    try:
        stack.api("POST", f"/dags/{dag_id}/dagRuns", {"dag_run_id": run_id, "logical_date": None})
        paused = stack.wait_paused(KILL_POINT, timeout_s=300)
        reached = time.monotonic()
        ti = _ti(stack, dag_id, run_id, "commit_release")
        assert (paused["run_id"], paused["task_id"], paused["try_number"]) == (run_id, "commit_release", "1"), paused
        assert ti["state"] == "running" and ti["try_number"] == 1, ti
        victim = stack.service(ti["hostname"])  # each worker's hostname is its service name
        assert paused["pid"] in _session_members(victim.proc.pid), (paused, victim.name)
        held = max(before) + 1  # the number the paused writer claimed
        status, claim = store.claim_state(dag_id, held)
        assert status == "live" and claim and claim["run"] == run_key, (status, claim)
        placed = store.backend.list(f"{dag_id}/v{held}")
        assert placed and not any(k.endswith("datapackage.json") for k in placed), placed
        killed = stack.kill_service(victim.name)
    finally:
        stack.disarm_pause(KILL_POINT)
    assert paused["pid"] in killed and not _session_members(victim.proc.pid)
    survivors = {w.hostname for w in stack.worker_info} - {victim.name}

    assert not wait_runs(stack, {dag_id: run_id}, timeout_s=stack.heartbeat_timeout_s + 300), "run did not end"
    ended = time.monotonic()
    run = next(r for r in stack.runs(dag_id) if r["dag_run_id"] == run_id)
    tis = {ti["task_id"]: ti for ti in stack.task_instances(dag_id, run_id)}
    assert run["state"] == "success", (run["state"], {t: (ti["state"], ti["try_number"]) for t, ti in tis.items()})
    assert {t: ti["state"] for t, ti in tis.items()} == dict.fromkeys(tis, "success")

    # Airflow: the killed try failed on its heartbeat timeout, on the killed worker; the retry ran on the other.
    commit = tis["commit_release"]
    assert commit["try_number"] == 2 and commit["hostname"] in survivors, commit
    tries = stack.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/commit_release/tries")
    first = next(t for t in tries["task_instances"] if t["try_number"] == 1)
    assert first["hostname"] == victim.name and first["state"] in ("failed", "up_for_retry"), first
    timeouts = stack.api("GET", f"/eventLogs?dag_id={dag_id}&run_id={run_id}&event=heartbeat%20timeout")
    assert timeouts["total_entries"] == 1, timeouts
    assert all(ti["try_number"] == 1 for t, ti in tis.items() if t != "commit_release"), tis

    # The store: exactly one new version, past the number the dead writer held, and nothing of its try.
    committed = held + 1
    assert store.versions(dag_id) == [*before, committed]
    assert store.claim_state(dag_id, held) == ("closed", None)
    assert store.backend.list(f"{dag_id}/v{held}") == [], "the killed try's copied data outlived the commit"
    assert store.backend.list(f"{dag_id}/_claims") == []
    entries = [e.body for e in _ledger(store).entries(dag_id) if e.body["event"] == "release_committed"]
    assert [(e["version"], e["run"] == run_key) for e in entries] == [(1, False), (committed, True)], entries
    for version in store.versions(dag_id):
        assert store.verify(dag_id, version) == [], version
    verify = subprocess.run(
        [str(BIN / "datashare"), "verify", dag_id], env=stack.env, cwd=REPO, capture_output=True, text=True, check=False
    )
    assert verify.returncode == 0, verify.stdout[-2000:] + verify.stderr[-2000:]
    assert store.backend.list(f"_staging/{dag_id}/{run_key}") == []

    # The release is the source as it is now: every code once, the revised name in it.
    import pyarrow.parquet as pq

    release = store.release(dag_id, committed)
    assert release.record["run"] == run_key
    table = pq.read_table(io.BytesIO(store.backend.get_bytes(f"{dag_id}/v{committed}/{release.files[0]['path']}")))
    names = dict(zip(table["code"].to_pylist(), table["name_en"].to_pylist(), strict=True))
    assert len(names) == table.num_rows == store.release(dag_id, 1).rows and names[code] == revised
    summary = json.loads(store.backend.get_bytes(f"{dag_id}/_runs/{run_key}.json"))
    assert summary["created"] is True and summary["version"] == committed, summary
    events = stack.api("GET", "/assets/events?" + urlencode({"source_dag_id": dag_id, "source_run_id": run_id}))
    assert events["total_entries"] == 1, events
    print(
        f"\nworker kill: paused after {reached - started:.0f} s, {victim.name} killed, run ended "
        f"{ended - reached:.0f} s later on {commit['hostname']} (heartbeat timeout {stack.heartbeat_timeout_s} s)"
    )


def test_stop_ends_exactly_the_processes_it_started(stack: Stack, outcome: Outcome) -> None:
    """Stopping the stack ends every process group it started and drops its databases, and nothing else."""
    import sqlalchemy as sa

    bystander = subprocess.Popen(["sleep", "120"], start_new_session=True)  # not the stack's: must survive
    try:
        groups = {s.name: s.proc.pid for s in stack.services}
        assert {"api-server", "scheduler", "dag-processor", "triggerer", "worker-a", "worker-b"} <= set(groups)
        databases = list(stack._pg_dbs)
        stack.stop()
        assert {name: _group_members(pid) for name, pid in groups.items() if _group_members(pid)} == {}
        assert {name: _session_members(pid) for name, pid in groups.items() if _session_members(pid)} == {}
        assert bystander.poll() is None, "stop() ended a process it did not start"
        engine = sa.create_engine(POSTGRES_ADMIN)
        with engine.connect() as conn:
            left = conn.execute(sa.text("SELECT datname FROM pg_database WHERE datname = ANY(:n)"), {"n": databases})
            assert left.scalars().all() == []
        engine.dispose()
        engine = sa.create_engine(MARIADB_ADMIN)
        with engine.connect() as conn:
            left = conn.execute(sa.text("SHOW DATABASES LIKE :p"), {"p": f"dsstack_{stack.tag}_%"})
            assert left.scalars().all() == []
        engine.dispose()
    finally:
        os.killpg(bystander.pid, signal.SIGTERM)
        bystander.wait()
