"""Whole air_quality_hourly releases through Airflow's real scheduler: where each task's time goes.

Starts the real-scheduler suite's stack (``tests/scheduler/stack.py``: api-server, scheduler,
dag-processor, triggerer, two Celery workers with their own staging folders, PostgreSQL metadata,
Redis broker, a loopback S3 server as the release store) with ``--releases`` copies of the
``air_quality_hourly`` spec (default 3, each under its own id, so each run is a whole first release),
triggers them one after another through the REST API, takes the median run and reads back, per task:

* ``wall_s``: the task instance's duration as Airflow recorded it (start to end on the worker);
* ``stage_s``: the stage's own time, measured the way ``make bench`` measures it (a process per stage,
  libraries imported first, :mod:`tasks`), in the same run, on the same unit;
* Airflow's overhead, split into what can be seen: ``scheduling_s`` (upstream task ended -> this task
  queued: the scheduler's hand-off), ``queue_s`` (queued -> running on a worker: Celery pick-up and the
  supervisor's fork), ``startup_s`` (running -> the task's code starts: process start, DAG bundle, DAG
  file parse, of which ``parse_s``), ``callable_s`` (the task's code), ``beyond_stage_s`` (the task's
  code less the stage's own time: imports the worker did not preload, the engine's set-up such as the
  first boto3 call, and staging transfers to and from the object store), ``xcom_s`` (after the code:
  pushing XCom, reporting the state). ``fresh_imports_s`` is what the stage's imports cost a fresh
  process (the bench's child): what the workers' preload (:mod:`datashare.orchestration.celery_preload`) saves.

    .venv/bin/python bench/scheduler.py --stations 12 --days 7     # small scale, a few minutes
    .venv/bin/python bench/scheduler.py --unit pg_5m               # the 5 M-row bench unit (bench/sources.py)

``bench/run.py --scheduler`` runs it inside ``make bench`` (``BENCH_ARGS=--scheduler``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "tests" / "scheduler"))

from scheduler_run import seconds_between, wait_runs  # noqa: E402
from stack import Stack  # noqa: E402

log = logging.getLogger("bench.scheduler")
DATASET = "air_quality_hourly"
STAGE_OF_TASK = {
    "extract": "extract",
    "transform": "transform",
    "validate": "validate",
    "commit_release": "commit",
    "publish_sql": "publish_sql",
    "record": "record",
}
UPSTREAM = {
    "transform": ["extract"],
    "validate": ["transform"],
    "commit_release": ["extract", "transform", "validate"],
    "publish_sql": ["commit_release"],
    "record": ["commit_release", "publish_sql"],
}


def _events(path: Path) -> list[tuple[dt.datetime, str, dict[str, Any]]]:
    out = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        stamp = dt.datetime.fromisoformat(record["timestamp"].replace("Z", "+00:00"))
        out.append((stamp, str(record.get("event", "")), record))
    return out


def phases_from_log(path: Path) -> dict[str, float | None]:
    """Start-up, DAG parse, the task's code and what follows it, from the task's structured log."""
    events = _events(path)
    if not events:
        return {}
    first = events[0][0]
    parsed = next(((t, r) for t, e, r in events if e == "Worker startup parse complete"), None)
    groups = [t for t, e, _ in events if e == "::endgroup::"]
    code_start = next((t for t in groups if parsed and t >= parsed[0]), None)
    done = next((t for t, e, _ in events if e.startswith("Done. Returned value") or e == "::group::Post Execute"), None)
    last = events[-1][0]
    return {
        "log_first": first.isoformat(),
        "parse_s": (parsed[1].get("dag_file_parse_ms", 0) + parsed[1].get("bundle_prepare_ms", 0)) / 1000
        if parsed
        else None,
        "code_start": code_start.isoformat() if code_start else None,
        "callable_s": (done - code_start).total_seconds() if done and code_start else None,
        "after_code_s": (last - done).total_seconds() if done else None,
    }


def service_cpu(stack: Stack) -> dict[str, float]:
    """CPU seconds each service of the stack has used so far: its session's live processes and reaped children.

    A worker's session holds the task processes it forks, so a worker's figure includes the stages' own work;
    every other service (scheduler, api-server, dag-processor, triggerer, the S3 server) competes with it.
    """
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for service in stack.services:
        total = 0
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == service.proc.pid:  # field 3 after the name: the session
                total += sum(int(x) for x in fields[11:15])  # utime, stime, cutime, cstime
        out[service.name] = round(total / tick, 2)
    return out


def per_task(
    stack: Stack, run_id: str, stages: dict[str, dict[str, float]], dag_id: str = DATASET
) -> list[dict[str, Any]]:
    """One row per task of the run: Airflow's figures beside the stage's own."""
    tis = {ti["task_id"]: ti for ti in stack.task_instances(dag_id, run_id)}
    rows = []
    for task_id, stage in STAGE_OF_TASK.items():
        ti = tis[task_id]
        files = stack.task_log_files(dag_id, run_id, task_id)
        phases = phases_from_log(files[-1]) if files else {}
        upstream_end = max((tis[u]["end_date"] for u in UPSTREAM.get(task_id, [])), default=None)
        own = stages.get(stage, {})
        row: dict[str, Any] = {
            "task": task_id,
            "worker": ti.get("hostname"),
            "state": ti.get("state"),
            "try": ti.get("try_number"),
            "wall_s": ti.get("duration"),
            "stage_s": own.get("wall_s"),
            "fresh_imports_s": own.get("imports_s"),
            "scheduling_s": seconds_between(upstream_end, ti.get("queued_when")) if upstream_end else None,
            "queue_s": seconds_between(ti.get("queued_when"), ti.get("start_date")),
            "startup_s": seconds_between(ti.get("start_date"), phases.get("code_start")),
            "parse_s": phases.get("parse_s"),
            "callable_s": phases.get("callable_s"),
            "xcom_s": phases.get("after_code_s"),
        }
        if row["callable_s"] is not None and row["stage_s"] is not None:
            row["beyond_stage_s"] = round(row["callable_s"] - row["stage_s"], 3)
        if row["wall_s"] is not None and row["stage_s"] is not None:
            row["overhead_s"] = round(row["wall_s"] - row["stage_s"], 3)
        rows.append({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()})
    return rows


WARM_UP_DAG = "datashare_audit"


def warm_up(stack: Stack, dag: dict[str, Any]) -> None:
    """One audit run before the measured one: the api-server answers its first task-start request cold.

    Measured on this stack (api-server access log): the first ``PATCH /execution/task-instances/{id}/run``
    after the api-server starts takes about 3 s, the next ones 10-20 ms. A deployment pays that once per
    api-server start, not per run, so the bench measures a warm api-server; the warm-up's own time is kept
    in ``stack_timings.warm_up``.
    """
    started = time.perf_counter()
    run_id = stack.trigger(dag, take_scheduled_slot=True)
    stack.unpause(WARM_UP_DAG)
    if wait_runs(stack, {WARM_UP_DAG: run_id}, timeout_s=600):
        raise RuntimeError(f"the warm-up run {run_id} of {WARM_UP_DAG} did not end within 10 minutes")
    stack.timings["warm_up"] = round(time.perf_counter() - started, 2)


def stages_own_time(unit_url: str, local_end: dt.datetime, role_prefix: str) -> dict[str, Any]:
    """The release as ``make bench`` measures it (a process per stage, imports apart), on the same unit."""
    import shutil

    import run as bench_run  # bench/run.py
    import sqlalchemy as sa

    from datashare.source.connections import connection_env_value

    work = Path(tempfile.mkdtemp(prefix="datashare-bench-sched-"))
    share = f"sqlite:///{work / 'share.sqlite'}"
    env = {
        "DATASHARE_NOW": (local_end - dt.timedelta(hours=7)).replace(tzinfo=dt.UTC).isoformat(),
        "DATASHARE_HOME": str(REPO),
        "DATASHARE_RELEASE_ROOT": str(work / "releases"),
        "AIRFLOW_CONN_MONRE_MONITORING": connection_env_value(unit_url),
        "AIRFLOW_CONN_DATASHARE_SHARE": connection_env_value(share),
        "GX_ANALYTICS_ENABLED": "false",
    }
    if sa.make_url(unit_url).get_backend_name() == "postgresql":
        env["AIRFLOW_CONN_DATASHARE_SHARE"] = connection_env_value(os.environ["BENCH_SCHED_SHARE_URL"])
        env["DATASHARE_SHARE_SCHEMA"] = f"bench_sched_{secrets.token_hex(3)}"
        env["DATASHARE_SQL_ROLE_PREFIX"] = role_prefix  # the stack drops its roles when it stops
    try:
        return bench_run.release(env, "bench-sched-own")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def release_copies(root: Path, releases: int) -> tuple[Path, list[str]]:
    """A DATASHARE_HOME whose specs are ``releases`` copies of the air-quality spec (the first keeps its id).

    Each copy is a dataset of its own with the same source, suite and settings, so each measured run is a
    whole first release, as the stages' own time is, on one warm stack.
    """
    import shutil

    home = root / "home"
    datasets = home / "dags" / "datasets"
    datasets.mkdir(parents=True)
    shutil.copytree(REPO / "expectations", home / "expectations")
    shutil.copytree(REPO / "config", home / "config")
    text = (REPO / "dags" / "datasets" / f"{DATASET}.yaml").read_text(encoding="utf-8")
    ids = [DATASET] + [f"{DATASET}_r{i}" for i in range(2, releases + 1)]
    for dataset_id in ids:
        spec = text.replace(f"id: {DATASET}\n", f"id: {dataset_id}\nsuite: {DATASET}\n", 1)
        (datasets / f"{dataset_id}.yaml").write_text(spec, encoding="utf-8")
    return home, ids


def one_release(stack: Stack, dag: dict[str, Any]) -> dict[str, Any]:
    """Trigger one dataset's DAG and wait for it: the run's wall time and the CPU each service used meanwhile."""
    cpu_before = service_cpu(stack)
    t = time.perf_counter()
    run_id = stack.trigger(dag, take_scheduled_slot=True)
    stack.unpause(dag["dag_id"])
    if wait_runs(stack, {dag["dag_id"]: run_id}, timeout_s=3600):
        logs = stack.base / "logs"
        raise RuntimeError(f"the {dag['dag_id']} run {run_id} did not end within an hour; logs in {logs}")
    through_scheduler = time.perf_counter() - t
    cpu_after = service_cpu(stack)
    run = next(r for r in stack.runs(dag["dag_id"]) if r["dag_run_id"] == run_id)
    return {
        "dag_id": dag["dag_id"],
        "run_id": run_id,
        "state": run["state"],
        "run_wall_s": seconds_between(run.get("start_date"), run.get("end_date")),
        "trigger_to_end_s": round(through_scheduler, 3),
        "service_cpu_s": {name: round(cpu_after.get(name, 0.0) - cpu_before.get(name, 0.0), 2) for name in cpu_after},
    }


def measure(
    *,
    unit: str | None,
    stations: int,
    days: int,
    base: Path | None = None,
    shared_staging: bool | None = None,
    preload: bool = True,
    releases: int = 3,
) -> dict[str, Any]:
    """Start the stack, run ``releases`` whole releases through it one after another, measure the same release
    stage by stage; stop the stack. The figures are those of the median run; every run's wall time is kept."""
    import atexit

    from datashare.store.manifest import REVISION_ENV, code_version
    from units import monitoring

    base = base or Path(tempfile.mkdtemp(prefix="datashare-bench-sched-"))
    if shared_staging is None:
        shared_staging = os.environ.get("DATASHARE_SCHEDULER_STAGING") == "shared"
    stack = Stack(base, shared_staging=shared_staging, preload=preload)
    atexit.register(stack.stop)
    try:
        started = time.perf_counter()
        if unit:
            from sources import UNITS, ensure

            chosen = UNITS[unit]
            rows = ensure(chosen)
            unit_url, local_end = chosen.url, chosen.end
        else:
            unit_url = stack.postgres_database("monitoring")
            end = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=7)).date()
            made = monitoring.generate(unit_url, stations=stations, days=days, start=end - dt.timedelta(days=days - 1))
            rows, local_end = made.rows, dt.datetime.combine(end + dt.timedelta(days=1), dt.time(0))
        stack.timings["unit"] = round(time.perf_counter() - started, 2)
        share = stack.postgres_database("share")
        os.environ["BENCH_SCHED_SHARE_URL"] = share
        now = (local_end - dt.timedelta(hours=7)).replace(tzinfo=dt.UTC).isoformat()
        home, dataset_ids = release_copies(base, releases)
        stack.start(
            {"monre_monitoring": unit_url, "datashare_share": share},
            {
                "DATASHARE_PSEUDONYM_KEY": secrets.token_hex(32),
                "DATASHARE_NOW": now,
                "DATASHARE_HOME": str(home),
                REVISION_ENV: code_version(REPO).partition("+g")[2],  # as an image records it (docs/runbook.md)
            },
        )
        dags = stack.wait_for_dags({*dataset_ids, WARM_UP_DAG})
        warm_up(stack, dags[WARM_UP_DAG])
        runs = [one_release(stack, dags[dataset_id]) for dataset_id in dataset_ids]
        try:
            own = stages_own_time(unit_url, local_end, stack.role_prefix)
        except RuntimeError as exc:  # the Airflow figures still stand; say why the stage figures are missing
            log.error("the stages' own time could not be measured: %s", exc)
            own = {"stages": {}, "wall_s": None, "process_s": None, "error": str(exc)}
        walls = [r["run_wall_s"] for r in runs if r["run_wall_s"] is not None]
        median_run = sorted(runs, key=lambda r: r["run_wall_s"] or float("inf"))[(len(runs) - 1) // 2]
        tasks = per_task(stack, median_run["run_id"], own["stages"], median_run["dag_id"])
        run_wall = median_run["run_wall_s"]
        overheads = [t["overhead_s"] for t in tasks if t.get("overhead_s") is not None]
        return {
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "unit": unit or f"monitoring {stations} stations x {days} days",
            "rows": rows,
            "state": "success" if all(r["state"] == "success" for r in runs) else "failed",
            "staging": "shared" if stack.shared_staging else "per-worker",
            "worker_preload": stack.preload,
            "releases": [{k: v for k, v in r.items() if k != "service_cpu_s"} for r in runs],
            "run_walls_s": walls,
            "run_wall_s": run_wall,
            "median_of": len(walls),
            "trigger_to_end_s": median_run["trigger_to_end_s"],
            "stages_own_s": own["wall_s"],
            "stages_own_error": own.get("error"),
            "stages_processes_s": own["process_s"],
            "ratio_to_stages_own": round(run_wall / own["wall_s"], 2) if run_wall and own["wall_s"] else None,
            "ratios_to_stages_own": [round(w / own["wall_s"], 2) for w in walls] if own["wall_s"] else [],
            "overhead_per_task_median_s": round(statistics.median(overheads), 3) if overheads else None,
            "tasks": tasks,
            "service_cpu_s": median_run["service_cpu_s"],
            "cpus": os.cpu_count(),
            "stack_timings": stack.timings,
        }
    finally:
        stack.stop()


def markdown(result: dict[str, Any]) -> str:
    """The per-task table."""
    cols = [
        "task",
        "worker",
        "wall_s",
        "stage_s",
        "overhead_s",
        "scheduling_s",
        "queue_s",
        "startup_s",
        "parse_s",
        "callable_s",
        "beyond_stage_s",
        "fresh_imports_s",
        "xcom_s",
    ]
    lines = [
        f"{result['unit']}: {result['rows']:,} rows, run {result['state']} with {result['staging']} staging, "
        f"worker preload {'on' if result['worker_preload'] else 'off'}; "
        f"run wall {result['run_wall_s']} s against the stages' own {result['stages_own_s']} s "
        f"({result['ratio_to_stages_own']} x, the median of {result.get('median_of', 1)} whole releases: "
        f"{', '.join(f'{w:.2f} s' for w in result.get('run_walls_s', [result['run_wall_s']]))}); "
        f"median overhead per task {result['overhead_per_task_median_s']} s; the tasks below are the median run's",
        "",
        "| " + " | ".join(cols) + " |",
        "|" + "---|" * len(cols),
    ]
    for row in result["tasks"]:
        lines.append("| " + " | ".join("" if row.get(c) is None else str(row.get(c)) for c in cols) + " |")
    cpu = result.get("service_cpu_s")
    if cpu:
        workers = sum(v for k, v in cpu.items() if k.startswith("worker"))
        others = {k: v for k, v in cpu.items() if not k.startswith("worker")}
        lines += [
            "",
            f"CPU used from trigger to end ({result['trigger_to_end_s']} s on {result.get('cpus')} CPUs): workers"
            f" (the stages and their tasks) {workers:.1f} s; the rest of the stack {sum(others.values()):.1f} s ("
            + ", ".join(f"{k} {v:.1f} s" for k, v in sorted(others.items(), key=lambda kv: -kv[1]))
            + ")",
        ]
    return "\n".join(lines)


def main() -> int:
    """Measure and write ``bench/results/<date>-scheduler.json`` and ``.md``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--unit", choices=["pg_5m", "pg_20m"], help="a bench unit of bench/sources.py")
    parser.add_argument("--stations", type=int, default=12, help="small scale: stations of a fresh unit")
    parser.add_argument("--days", type=int, default=7, help="small scale: days of a fresh unit")
    parser.add_argument("--shared-staging", action="store_true", help="one staging folder for both workers")
    parser.add_argument("--no-preload", action="store_true", help="workers do not import the engine before forking")
    parser.add_argument("--releases", type=int, default=3, help="whole releases measured one after another (median)")
    parser.add_argument("--out", default="scheduler", help="name of the result files under bench/results/")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("units").setLevel(logging.WARNING)
    import run as bench_run

    bench_run.QUIET["max_wait_s"] = float(os.environ.get("DATASHARE_BENCH_QUIET_WAIT_S", "10"))
    result = measure(
        unit=args.unit,
        stations=args.stations,
        days=args.days,
        shared_staging=args.shared_staging or None,
        preload=not args.no_preload,
        releases=args.releases,
    )
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"{dt.date.today().isoformat()}-{args.out}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    table = markdown(result)
    stem.with_suffix(".md").write_text(table + "\n")
    print(table)
    return 0 if result["state"] == "success" else 1


if __name__ == "__main__":
    raise SystemExit(main())
