"""One measurement per child process: ``python bench/tasks.py <task> '<json args>'`` (or ``@args.json``).

A fresh process per measurement keeps one path's memory and caches out of the next one's figures. A
release runs as Airflow runs it: one process per stage, references passed between them as JSON. Each
task imports what it needs first and reports that time apart (``imports_s``): stages are timed as a
worker that has imported its libraries runs them; the parent also records each whole process's time
and peak memory (``wait4``). Peak resident memory inside a task is read from ``VmHWM``, reset before
each stage through ``/proc/self/clear_refs``. The last line of stdout is ``RESULT <json>``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DATASET = "air_quality_hourly"
TASKS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {}


def task(fn: Callable[[dict[str, Any]], dict[str, Any]]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Register a measurement under its function name."""
    TASKS[fn.__name__] = fn
    return fn


def peak_rss_mib() -> float:
    """Peak resident memory of this process since the last reset, MiB."""
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024  # type: ignore[union-attr]


def reset_peak() -> None:
    """Start a new peak-memory window (Linux: writing 5 to clear_refs resets VmHWM)."""
    Path("/proc/self/clear_refs").write_text("5")


class Meter:
    """Wall time and peak memory of named stages, plus the whole."""

    def __init__(self) -> None:
        self.stages: dict[str, dict[str, float]] = {}
        self.peak = 0.0

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        reset_peak()
        started = time.perf_counter()
        yield
        wall = time.perf_counter() - started
        rss = peak_rss_mib()
        self.peak = max(self.peak, rss)
        self.stages[name] = {"wall_s": round(wall, 3), "peak_rss_mib": round(rss, 1)}

    def result(self, **extra: Any) -> dict[str, Any]:
        total = sum(s["wall_s"] for s in self.stages.values())
        return {"stages": self.stages, "wall_s": round(total, 3), "peak_rss_mib": round(self.peak, 1), **extra}


def _query(backend: str) -> str:
    """The SELECT the pipeline issues for the dataset (same ordering), for floors and the naive path."""
    import sqlalchemy as sa

    from datashare.settings import Settings
    from datashare.source.extract import build_query
    from datashare.spec import load_spec

    spec = load_spec(Settings.from_env().datasets_dir / f"{DATASET}.yaml")
    url = "postgresql+psycopg://x@h/db" if backend == "postgresql" else "mysql+pymysql://x@h/db"
    return build_query(spec, sa.create_engine(url).dialect, incremental_from=False)


@task
def floor_copy_out(args: dict[str, Any]) -> dict[str, Any]:
    """PostgreSQL's ``COPY (query) TO STDOUT (FORMAT binary)`` read by psycopg into nothing."""
    import psycopg

    sql = _query("postgresql")
    meter = Meter()
    size = 0
    with (
        meter.stage("copy_out"),
        psycopg.connect(args["uri"]) as conn,
        conn.cursor() as cur,
        cur.copy(f"COPY ({sql}) TO STDOUT (FORMAT binary)") as copy,
    ):
        for block in copy:
            size += len(block)
    return meter.result(bytes=size)


@task
def floor_connectorx(args: dict[str, Any]) -> dict[str, Any]:
    """connectorx's Arrow stream of the query, read into nothing: the bare streaming read of MariaDB."""
    import connectorx as cx

    sql = _query("mysql")
    meter = Meter()
    rows = 0
    with meter.stage("read"):
        stream = cx.read_sql(args["uri"], sql, return_type="arrow_stream", batch_size=100_000)
        for batch in stream:
            rows += batch.num_rows
    return meter.result(rows=rows)


@task
def floor_parquet_write(args: dict[str, Any]) -> dict[str, Any]:
    """A bare pyarrow write of the released table (already in memory, not timed) with the release settings."""
    import pyarrow.parquet as pq

    from datashare.parquet import COMPRESSION, ROW_GROUP_ROWS

    table = pq.read_table(args["paths"])
    target = Path(args["target"])
    meter = Meter()
    with meter.stage("parquet_write"):
        pq.write_table(table, target, compression=COMPRESSION, row_group_size=ROW_GROUP_ROWS)
    target.unlink()
    return meter.result(rows=table.num_rows)


_STAGE_IMPORTS = {
    "extract": [
        "adbc_driver_postgresql.dbapi", "connectorx", "psycopg", "sqlalchemy.dialects.postgresql.psycopg",
        "sqlalchemy.dialects.mysql.pymysql", "datashare.source.extract", "datashare.source.fastextract",
    ],
    "transform": ["datashare.pipeline.transform", "transforms.text", "transforms.values"],
    "validate": ["duckdb", "duckdb_engine", "pandas", "datashare.quality.validation", "datashare.quality.duckdb_gx"],
    "commit": ["datashare.store.manifest", "pyarrow.parquet", "pyarrow.dataset"],
    "publish_sql": [
        "adbc_driver_postgresql.dbapi", "psycopg",
        "datashare.share.sqlshare", "datashare.share.sqlshare_pg", "datashare.share.sqlroles",
    ],
    "record": [],
}  # fmt: skip


def _preload(stage: str) -> float:
    """Import what the worker running ``stage`` loads anyway (as an Airflow task would); returns the seconds."""
    import importlib

    started = time.perf_counter()
    importlib.import_module("datashare.pipeline.stages")
    for name in _STAGE_IMPORTS[stage]:
        importlib.import_module(name)
    if stage == "validate":
        importlib.import_module("datashare.quality.validation")._import_gx()
        importlib.import_module("datashare.quality.duckdb_gx").register()
    if stage == "transform":
        import pyarrow as pa

        pa.array([1])  # pyarrow imports pandas on its first conversion of a Python list
    return time.perf_counter() - started


@task
def stage(args: dict[str, Any]) -> dict[str, Any]:
    """One stage of a run in its own process, as an Airflow task runs it; references in and out as JSON."""
    name, refs = args["stage"], args.get("refs", {})
    imports = _preload(name)
    from datashare.pipeline import stages as p

    ctx = p.RunContext.create(DATASET, args["run_id"])
    calls = {
        "extract": lambda: p.stage_extract(ctx),
        "transform": lambda: p.stage_transform(ctx, refs["extract"]),
        "validate": lambda: p.stage_validate(ctx, refs["transform"]),
        "commit": lambda: p.stage_commit(ctx, refs["extract"], refs["transform"], refs["validate"]),
        "publish_sql": lambda: p.stage_publish_sql(ctx, refs["commit"]),
        "record": lambda: p.stage_record(ctx, refs["commit"], refs["publish_sql"]),
    }
    from datashare.pipeline.refs import Ref

    meter = Meter()
    with meter.stage(name):
        ref = calls[name]()
    # references travel as JSON between the processes, as XCom carries them between Airflow's tasks
    return meter.result(imports_s=round(imports, 3), ref=ref.to_json() if isinstance(ref, Ref) else ref)


@task
def extract_only(args: dict[str, Any]) -> dict[str, Any]:
    """The extract stage alone (fast or plain as ``DATASHARE_EXTRACT_PATH`` says), into a scratch file."""
    imports = _preload("extract")
    from datashare.settings import Settings
    from datashare.source.connections import get_connection
    from datashare.source.extract import extract
    from datashare.spec import load_spec

    spec = load_spec(Settings.from_env().datasets_dir / f"{DATASET}.yaml")
    target = Path(args["target"])
    meter = Meter()
    with meter.stage("extract"):
        result = extract(spec, get_connection(spec.source.conn_id), target)  # type: ignore[arg-type]
    target.unlink()
    return meter.result(imports_s=round(imports, 3), rows=result.rows)


@task
def naive(args: dict[str, Any]) -> dict[str, Any]:
    """What a user writes first: ``read_sql``, GX on the DataFrame, ``to_parquet``, ``to_sql``.

    ``to_sql`` runs on the first ``to_sql_rows`` rows only and is extrapolated linearly.
    """
    started = time.perf_counter()
    import pandas as pd
    import sqlalchemy as sa

    from datashare.quality.validation import _import_gx, load_suite

    gx = _import_gx()
    imports = time.perf_counter() - started
    backend = sa.make_url(args["url"]).get_backend_name()
    engine = sa.create_engine(args["url"])
    meter = Meter()
    with meter.stage("extract"):
        frame = pd.read_sql(sa.text(_query(backend)), engine)
    engine.dispose()
    result: dict[str, Any] = {"rows": len(frame), "imports_s": round(imports, 3)}
    if args.get("read_only"):
        return meter.result(**result)
    with meter.stage("validate"):
        context = gx.get_context(mode="ephemeral")
        suite = context.suites.add(load_suite(REPO / "expectations" / f"{DATASET}.json"))
        batch = (
            context.data_sources.add_pandas("naive")
            .add_dataframe_asset(DATASET)
            .add_batch_definition_whole_dataframe("whole")
            .get_batch(batch_parameters={"dataframe": frame})
        )
        params = {"freshness_min": dt.datetime(2000, 1, 1), "min_rows": 1, "max_rows": None}  # run-time bounds
        result["validation_success"] = bool(batch.validate(suite, expectation_parameters=params).success)
    with meter.stage("parquet_write"):
        frame.to_parquet(args["target"])
    Path(args["target"]).unlink()
    subset = frame.iloc[: args["to_sql_rows"]]
    share = sa.create_engine(args["share_url"])
    with meter.stage("publish_sql"):
        subset.to_sql("naive_load", share, schema=args["schema"], if_exists="replace", index=False)
    share.dispose()
    measured = meter.stages["publish_sql"]["wall_s"]
    meter.stages["publish_sql"]["wall_s"] = round(measured * len(frame) / len(subset), 3)
    result.update(to_sql_measured_rows=len(subset), to_sql_measured_s=measured)
    return meter.result(**result)


def main() -> None:
    """Run the task named on the command line and print its result."""
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    name, raw = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "{}"
    args = json.loads(Path(raw[1:]).read_text() if raw.startswith("@") else raw)
    result = TASKS[name](args)
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
