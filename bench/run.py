"""``make bench``: the release pipeline against the naive path and the databases' own floors.

Makes (or reuses) the air-quality unit at about 5 M and 20 M observation rows in the machine's
PostgreSQL and 1 M rows in its MariaDB (:mod:`bench.sources`), then measures, each in a child process
(:mod:`bench.tasks`) or an external client:

* our pipeline, stage by stage (extract, transform, validate, commit, publish_sql, record), a full
  release, an incremental one with about 1% new rows, and a run with nothing new;
* the naive path (``pandas.read_sql``, GX on the DataFrame, ``to_parquet``, ``to_sql`` measured on a
  subset and extrapolated), at 5 M rows only: at 20 M it needs about 20 GiB;
* DAG parsing at 10, 200 and 1,000 specs: the dags folder and one task's start-up (:mod:`bench.parse_bench`,
  also runnable alone);
* the floors: ``COPY (query) TO STDOUT (FORMAT binary)`` into nothing (psycopg and psql, the faster
  counts), a bare pyarrow write of the released table, ``COPY ... FROM STDIN (FORMAT binary)`` of the
  same rows into an empty table (psql); for MariaDB, the faster of connectorx's Arrow stream and
  ``mariadb --quick`` into nothing.

Writes ``bench/results/<date>.json``, ``<date>.png``, ``<date>.md`` and refreshes ``performance.png``
(the chart the README shows). Medians of ``--repeat`` runs; the naive path and the incremental run
are measured once. Then the OData section (:mod:`bench.odata_bench`: a 1 M-row release queried and
paged through the catalog) writes ``<date>-odata.{json,md}``; ``--odata-only`` runs it alone.

    .venv/bin/python bench/run.py [--scales 5m,20m] [--repeat 3] [--no-naive] [--no-mariadb] [--no-odata | --odata-only]
        [--no-scheduler] [--no-sharing] [--no-parse]

The 5 M-row release also runs through Airflow's real scheduler with two Celery workers and S3 staging, per
task (:mod:`scheduler`, about 3 minutes; ``--no-scheduler`` skips it). The Delta Sharing section
(:mod:`bench.sharing_bench`) also runs alone: ``bench/sharing_bench.py``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import sqlalchemy as sa
from parse_bench import measure as measure_parsing
from report import targets, write_chart, write_markdown
from sources import INCREMENT_DAYS, POSTGRES_ADMIN, UNITS, Unit, append_increment, ensure, trim

from datashare.source.connections import connection_env_value

log = logging.getLogger("bench")
REPO = Path(__file__).resolve().parents[1]
WORK = Path(os.environ.get("DATASHARE_BENCH_DIR", Path(tempfile.gettempdir()) / "datashare-bench"))
"""Scratch (releases, dumps, logs): outside the checkout, whose var/ the demo may wipe at any time."""
RESULTS = REPO / "bench" / "results"
SHARE_DB = "bench_share"
TO_SQL_ROWS = 250_000


def _libpq(url: str) -> str:
    return sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


QUIET = {"busy_below": 0.15, "max_wait_s": 60.0}
"""Before each measurement, flush pending writes, then wait (up to max_wait_s) for a second with the
CPUs less than 15% busy."""
NOISE: dict[str, int] = {"measurements": 0, "started_busy": 0}


def _cpu_times() -> tuple[int, int]:
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def _flush() -> None:
    """Finish the writes earlier measurements left behind: PostgreSQL's checkpoint, then the page cache.

    A 20 M-row load leaves gigabytes of dirty pages and a checkpoint spread over minutes; without this,
    their writeback lands in whatever is measured next (I/O wait, which the CPU check below counts as idle).
    """
    import psycopg

    try:
        with psycopg.connect(_libpq(POSTGRES_ADMIN), autocommit=True) as conn:
            conn.execute("CHECKPOINT")
    except psycopg.Error as exc:
        log.warning("CHECKPOINT failed (%s); measuring without it", exc)
    os.sync()


def wait_quiet() -> None:
    """Let other work on the machine (another test run, a writeback) pass before measuring."""
    NOISE["measurements"] += 1
    _flush()
    deadline = time.monotonic() + QUIET["max_wait_s"]
    while True:
        busy0, total0 = _cpu_times()
        time.sleep(1.0)
        busy1, total1 = _cpu_times()
        if (busy1 - busy0) / max(1, total1 - total0) < QUIET["busy_below"]:
            return
        if time.monotonic() > deadline:
            NOISE["started_busy"] += 1
            log.warning("the machine stayed busy for %.0f s; measuring anyway", QUIET["max_wait_s"])
            return


def _wait(proc: subprocess.Popen, started: float) -> tuple[float, float, int]:
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - started, usage.ru_maxrss / 1024, proc.returncode


def child(task: str, args: dict[str, Any], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run a :mod:`bench.tasks` measurement in a fresh interpreter; adds the whole process's time and memory."""
    WORK.mkdir(parents=True, exist_ok=True)
    out, arg_file = WORK / "child.out", WORK / "child.args.json"
    arg_file.write_text(json.dumps(args))
    if task != "stage":  # the stages of one release follow each other as in a real run
        wait_quiet()
    with out.open("w") as stdout, (WORK / "children.log").open("a") as stderr:
        stderr.write(f"\n=== {task} {json.dumps(args)[:500]}\n")
        stderr.flush()
        started = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, str(REPO / "bench" / "tasks.py"), task, f"@{arg_file}"],
            stdout=stdout,
            stderr=stderr,
            env={**os.environ, **(env or {})},
        )
        wall, rss, code = _wait(proc, started)
    lines = [line for line in out.read_text().splitlines() if line.startswith("RESULT ")]
    if code != 0 or not lines:
        raise RuntimeError(f"bench task {task} failed (exit {code}); see {WORK / 'children.log'}")
    result = json.loads(lines[-1].removeprefix("RESULT "))
    result.update(process_s=round(wall, 3), process_peak_rss_mib=round(rss, 1))
    return result


def external(name: str, cmd: list[str], stdout: Any = subprocess.DEVNULL) -> dict[str, Any]:
    """Time a client program (psql, mariadb); its peak memory comes from ``wait4``."""
    wait_quiet()
    with (WORK / "children.log").open("a") as stderr:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=stdout, stderr=stderr)
        wall, rss, code = _wait(proc, started)
    if code != 0:
        raise RuntimeError(f"{name} failed (exit {code}): {' '.join(cmd)[:300]}")
    return {
        "stages": {name: {"wall_s": round(wall, 3), "peak_rss_mib": round(rss, 1)}},
        "wall_s": round(wall, 3),
        "peak_rss_mib": round(rss, 1),
    }


DATASET = "air_quality_hourly"
STAGES = ("extract", "transform", "validate", "commit", "publish_sql", "record")


def release(env: dict[str, str], run_id: str) -> dict[str, Any]:
    """One run of the dataset as Airflow runs it: a process per stage, references passed along.

    ``wall_s`` sums the stages as timed inside their processes (libraries already imported);
    ``process_s`` sums the whole processes; ``peak_rss_mib`` is the largest process's peak.
    """
    refs: dict[str, Any] = {}
    stages: dict[str, dict[str, float]] = {}
    wait_quiet()
    for name in STAGES:
        r = child("stage", {"stage": name, "run_id": run_id, "refs": refs}, env)
        refs[name] = r["ref"]
        stages[name] = {
            "wall_s": r["wall_s"],
            "peak_rss_mib": r["process_peak_rss_mib"],
            "process_s": r["process_s"],
            "imports_s": r["imports_s"],
        }
    return {
        "stages": stages,
        "wall_s": round(sum(s["wall_s"] for s in stages.values()), 3),
        "process_s": round(sum(s["process_s"] for s in stages.values()), 3),
        "peak_rss_mib": max(s["peak_rss_mib"] for s in stages.values()),
        "rows": refs["record"]["rows"],
        "extracted_rows": refs["extract"]["rows"],
        "version": refs["record"]["version"],
        "created": refs["record"]["created"],
    }


def cli_run(env: dict[str, str]) -> dict[str, Any]:
    """``datashare run`` as a user types it: the whole program's time and peak memory, imports and exit included."""
    wait_quiet()
    program = str(Path(sys.executable).with_name("datashare"))
    with (WORK / "children.log").open("a") as log_file:
        log_file.write(f"\n=== datashare run {DATASET}\n")
        log_file.flush()
        started = time.perf_counter()
        proc = subprocess.Popen([program, "run", DATASET], stdout=log_file, stderr=log_file, env={**os.environ, **env})
        wall, rss, code = _wait(proc, started)
    if code != 0:
        raise RuntimeError(f"datashare run {DATASET} failed (exit {code}); see {WORK / 'children.log'}")
    return {"wall_s": round(wall, 3), "peak_rss_mib": round(rss, 1)}


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median total time, with every run's total kept beside it."""
    ordered = sorted(runs, key=lambda r: r["wall_s"])
    chosen = dict(ordered[(len(ordered) - 1) // 2])
    chosen["runs_wall_s"] = [r["wall_s"] for r in runs]
    if "stages" in chosen and len(runs) > 1:
        chosen["runs_stages_wall_s"] = {s: [r["stages"][s]["wall_s"] for r in runs] for s in chosen["stages"]}
    return chosen


def _query_sql(backend: str) -> str:
    sys.path.insert(0, str(REPO / "bench"))
    from tasks import _query

    return _query(backend)


def _share_url() -> str:
    admin = sa.create_engine(POSTGRES_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if not conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": SHARE_DB}).first():
            conn.execute(sa.text(f'CREATE DATABASE "{SHARE_DB}"'))
    admin.dispose()
    return sa.make_url(POSTGRES_ADMIN).set(database=SHARE_DB).render_as_string(hide_password=False)


def _sql(url: str, statement: str) -> None:
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(statement))
    engine.dispose()


def _pipeline_env(unit: Unit, root: Path, share_url: str, schema: str, *, days_added: int = 0) -> dict[str, str]:
    """The environment of one run; its "now" is the end of the unit's data, so the freshness rule holds."""
    local_end = unit.end + dt.timedelta(days=days_added)  # sources keep naive Vietnam time (UTC+7)
    return {
        "DATASHARE_NOW": (local_end - dt.timedelta(hours=7)).replace(tzinfo=dt.UTC).isoformat(),
        "DATASHARE_HOME": str(REPO),
        "DATASHARE_RELEASE_ROOT": str(root),
        "AIRFLOW_CONN_MONRE_MONITORING": connection_env_value(unit.url),
        "AIRFLOW_CONN_DATASHARE_SHARE": connection_env_value(share_url),
        "DATASHARE_SHARE_SCHEMA": schema,
        "GX_ANALYTICS_ENABLED": "false",
    }


def _fresh(root: Path, share_url: str, schema: str) -> None:
    shutil.rmtree(root, ignore_errors=True)
    _sql(share_url, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def measure_postgres(key: str, unit: Unit, rows: int, repeat: int, naive: bool, share_url: str) -> dict[str, Any]:
    """Floors, our full / incremental / nothing-new releases and (optionally) the naive path at one scale."""
    work = WORK / key
    work.mkdir(parents=True, exist_ok=True)
    root, schema = work / "releases", f"bench_{key}"
    env = _pipeline_env(unit, root, share_url, schema)
    uri, sql = _libpq(unit.url), _query_sql("postgresql")
    psql_out = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", uri, "-c", f"COPY ({sql}) TO STDOUT (FORMAT binary)"]
    log.info("%s: warming the caches", key)
    child("floor_copy_out", {"uri": uri})
    copy_py, copy_psql, ours = [], [], []
    for i in range(repeat):
        log.info("%s: floors and a full release, run %s of %s", key, i + 1, repeat)
        copy_py.append(child("floor_copy_out", {"uri": uri}))
        copy_psql.append(external("copy_out", psql_out))
        _fresh(root, share_url, schema)
        ours.append(release(env, f"bench-full-{i}"))
    release_files = sorted((root / "air_quality_hourly" / "v1" / "data").glob("*.parquet"))
    writes = [
        child("floor_parquet_write", {"paths": [str(p) for p in release_files], "target": str(work / "floor.parquet")})
        for _ in range(repeat)
    ]
    copy_in = _floor_copy_in(uri, share_url, schema, work, repeat)
    log.info("%s: incremental release (+%s days) and runs with nothing new", key, INCREMENT_DAYS)
    added = append_increment(unit)
    try:
        later = _pipeline_env(unit, root, share_url, schema, days_added=INCREMENT_DAYS)
        incremental = release(later, "bench-incremental")
        nothing = median_run([release(later, f"bench-nothing-{i}") for i in range(repeat)])
    finally:
        trim(unit)
    log.info("%s: the same release by `datashare run` in one process, then nothing new", key)
    full_runs, nothing_runs = [], []
    for _ in range(repeat):
        _fresh(root, share_url, schema)
        full_runs.append(cli_run(env))
        nothing_runs.append(cli_run(env))
    cli = {"full": median_run(full_runs), "nothing_new": median_run(nothing_runs)}
    result: dict[str, Any] = {
        "rows_source": rows,
        "floors": {
            "copy_out_psycopg": median_run(copy_py),
            "copy_out_psql": median_run(copy_psql),
            "parquet_write": median_run(writes),
            "copy_in_psql": copy_in,
        },
        "ours": {"full": median_run(ours), "incremental": {**incremental, "rows_added": added}, "nothing_new": nothing},
        "cli": cli,
    }
    if naive:
        log.info("%s: the naive path (read_sql, GX on pandas, to_parquet, to_sql on %s rows)", key, TO_SQL_ROWS)
        args = {
            "url": unit.url,
            "share_url": share_url,
            "schema": "bench_naive",
            "to_sql_rows": TO_SQL_ROWS,
            "target": str(work / "naive.parquet"),
        }
        _sql(share_url, 'CREATE SCHEMA IF NOT EXISTS "bench_naive"')
        result["naive"] = child("naive", args)
    shutil.rmtree(root, ignore_errors=True)
    return result


def _floor_copy_in(uri: str, share_url: str, schema: str, work: Path, repeat: int) -> dict[str, Any]:
    """psql ``COPY ... FROM`` of the released rows (binary, dumped beforehand) into a new table, one transaction."""
    share_uri = _libpq(share_url)
    dump = work / "share.bin"
    source = f'"{schema}"."air_quality_hourly__v1"'
    subprocess.run(
        ["psql", "-X", "-q", share_uri, "-c", f"\\copy (SELECT * FROM {source}) TO '{dump}' (FORMAT binary)"],
        check=True,
    )
    script = work / "copy_in.sql"
    script.write_text(
        "BEGIN;\nDROP TABLE IF EXISTS public.bench_floor_in;\n"
        f"CREATE TABLE public.bench_floor_in (LIKE {source});\n"
        f"\\copy public.bench_floor_in FROM '{dump}' (FORMAT binary)\nCOMMIT;\n"
    )
    runs = [
        external("copy_in", ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", share_uri, "-f", str(script)])
        for _ in range(repeat)
    ]
    _sql(share_url, "DROP TABLE IF EXISTS public.bench_floor_in")
    dump.unlink()
    return median_run(runs)


def measure_mariadb(unit: Unit, rows: int, repeat: int, naive: bool) -> dict[str, Any]:
    """Extraction from MariaDB: our stage against connectorx and the mariadb client reading into nothing."""
    url = sa.make_url(unit.url)
    cx_uri = url.set(drivername="mysql", query={}).render_as_string(hide_password=False)
    sql = _query_sql("mysql")
    client = [
        "mariadb",
        "--quick",
        "-h",
        url.host or "127.0.0.1",
        "-P",
        str(url.port or 3306),
        "-u",
        url.username or "root",
        url.database or "",
        "-e",
        sql,
    ]
    env = {"AIRFLOW_CONN_MONRE_MONITORING": connection_env_value(unit.url), "DATASHARE_HOME": str(REPO)}
    target = str(WORK / "maria_extract.parquet")
    child("floor_connectorx", {"uri": cx_uri})  # warm the caches
    cx, cli, ours = [], [], []
    for i in range(repeat):
        log.info("mariadb: floors and our extraction, run %s of %s", i + 1, repeat)
        cx.append(child("floor_connectorx", {"uri": cx_uri}))
        cli.append(external("mariadb_client", client))
        ours.append(child("extract_only", {"target": target}, env))
    plain = child("extract_only", {"target": target}, {**env, "DATASHARE_EXTRACT_PATH": "plain"})
    result: dict[str, Any] = {
        "rows_source": rows,
        "floors": {"connectorx": median_run(cx), "mariadb_client": median_run(cli)},
        "ours": {"extract": median_run(ours), "extract_plain": plain},
    }
    if naive:
        result["naive"] = child("naive", {"url": unit.url, "read_only": True})
    return result


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    from importlib.metadata import version

    def server(cmd: list[str]) -> str:
        return subprocess.run(cmd, capture_output=True, text=True, check=False).stdout.strip()

    memory = next(line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
    return {
        "cpus": os.cpu_count(),
        "memory": memory.split(":", 1)[1].strip(),
        "python": platform.python_version(),
        "postgresql": server(["psql", "-X", "-At", _libpq(POSTGRES_ADMIN), "-c", "SHOW server_version"]),
        "mariadb": server(["mariadb", "-h", "127.0.0.1", "-u", "root", "-N", "-e", "SELECT version()"]),
        "packages": {
            p: version(p)
            for p in (
                "pyarrow",
                "adbc-driver-postgresql",
                "connectorx",
                "duckdb",
                "great-expectations",
                "pandas",
                "sqlalchemy",
            )
        },
    }


def main() -> int:
    """Measure, then write the JSON, the chart and the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", default="5m,20m", help="PostgreSQL units to measure: 5m, 20m")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (medians)")
    parser.add_argument("--no-naive", action="store_true", help="skip the naive path")
    parser.add_argument("--no-mariadb", action="store_true", help="skip MariaDB")
    parser.add_argument("--no-odata", action="store_true", help="skip the OData section")
    parser.add_argument("--odata-only", action="store_true", help="run only the OData section")
    parser.add_argument(
        "--no-scheduler",
        action="store_true",
        help="skip the 5 M-row release through Airflow's real scheduler (two Celery workers, S3 staging)",
    )
    parser.add_argument("--scheduler", action="store_true", help=argparse.SUPPRESS)  # the default now; kept for scripts
    parser.add_argument(
        "--no-sharing", action="store_true", help="skip Delta Sharing and release changes (bench/sharing_bench.py)"
    )
    parser.add_argument("--no-parse", action="store_true", help="skip DAG parsing at 10, 200 and 1,000 specs")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("units").setLevel(logging.WARNING)
    if args.odata_only:
        return odata_section(args.repeat)
    started = time.perf_counter()
    WORK.mkdir(parents=True, exist_ok=True)
    (WORK / "children.log").write_text("")
    share_url = _share_url()
    results: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "method": __doc__,
        "postgresql": {},
        "mariadb": None,
    }
    scales = [s.strip() for s in args.scales.split(",") if s.strip()]
    for scale in scales:
        unit = UNITS[f"pg_{scale}"]
        rows = ensure(unit)
        results["postgresql"][scale] = measure_postgres(
            scale, unit, rows, args.repeat, naive=not args.no_naive and scale == "5m", share_url=share_url
        )
    if not args.no_mariadb:
        unit = UNITS["maria_1m"]
        results["mariadb"] = measure_mariadb(unit, ensure(unit), args.repeat, naive=not args.no_naive)
    if not args.no_scheduler and "5m" in scales:
        from scheduler import markdown as scheduler_markdown
        from scheduler import measure as measure_scheduler

        log.info("the 5 M-row release through Airflow's real scheduler (bench/scheduler.py)")
        results["scheduler"] = measure_scheduler(unit="pg_5m", stations=0, days=0)
        log.info("%s", scheduler_markdown(results["scheduler"]))
    if not args.no_sharing:
        from sharing_bench import measure as measure_sharing

        log.info("Delta Sharing and release changes (5m)")
        results["sharing"] = measure_sharing("5m", args.repeat, WORK / "sharing-5m")
    if not args.no_parse:
        wait_quiet()
        results["dag_parsing"] = measure_parsing([10, 200, 1000], args.repeat, WORK)
    results["targets"] = targets(results)
    results["noise"] = {**NOISE, **QUIET}
    results["bench_s"] = round(time.perf_counter() - started, 1)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = RESULTS / dt.date.today().isoformat()
    stem.with_suffix(".json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    write_chart(results, stem.with_suffix(".png"))
    shutil.copyfile(stem.with_suffix(".png"), RESULTS / "performance.png")
    table = write_markdown(results, stem.with_suffix(".md"))
    print(table)
    log.info("wrote %s.{json,png,md} in %.0f s", stem, results["bench_s"])
    for t in results["targets"]:
        if not t["met"]:
            log.warning("target missed: %s = %.3f (limit %s)", t["target"], t["value"], t["limit"])
    return 0 if args.no_odata else odata_section(args.repeat)


def odata_section(repeat: int) -> int:
    """The OData section: ``bench/results/<date>-odata.{json,md}``."""
    import odata_bench

    wait_quiet()
    return odata_bench.write(odata_bench.measure(repeat))


if __name__ == "__main__":
    raise SystemExit(main())
