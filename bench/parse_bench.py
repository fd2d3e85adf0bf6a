"""DAG parsing at 10, 200 and 1,000 dataset specs: the dags folder as the DAG processor parses it, and one task's
start-up as a task process does it.

For each count, a temporary project holds the real ``dags/*.py`` files, that many copies of
``air_quality_hourly.yaml`` (ids ``aq_copy_NNNN``, each pointing its ``suite`` at the real suite) and the real
``expectations/``. Each measurement is a fresh Python process:

* **folder**: ``DagBag(dags folder)``, the object behind ``airflow dags report`` and the DAG processor's
  parse; its per-file ``dagbag_stats`` durations (what Airflow measures against ``dagbag_import_timeout``,
  30 s by default) are summed. The DAG processor then serializes every DAG: timed too, reported apart.
* **task start-up**: the parsing context set (``_AIRFLOW_PARSING_CONTEXT_DAG_ID``, as the task runner sets it),
  then ``BundleDagBag(dags/datashare_dags.py, safe_mode=False, load_op_links=False)`` and the task looked up,
  as ``airflow.sdk.execution_time.task_runner.parse`` does. Reported: the whole process (interpreter start,
  imports, parse) and the parse alone.

Medians of ``--repeat`` runs after one warm-up (byte-code compiled, files in the page cache). Targets (issue #10):
a task's start-up at 1,000 specs within 1.1 x its start-up at 10; the folder parsed in at most 10 s at 1,000.

    .venv/bin/python bench/parse_bench.py [--counts 10,200,1000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("bench.parse")
REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
SOURCE_SPEC = "air_quality_hourly"
TASK_RATIO_LIMIT = 1.1
FOLDER_LIMIT_S = 10.0

_FOLDER = r"""
import json, sys, time
t0 = time.perf_counter()
from airflow.dag_processing.dagbag import DagBag
from airflow.serialization.serialized_objects import DagSerialization
t1, c1 = time.perf_counter(), time.process_time()
bag = DagBag(dag_folder=sys.argv[1])
t2, c2 = time.perf_counter(), time.process_time()
for dag in bag.dags.values():
    DagSerialization.to_dict(dag)
t3, c3 = time.perf_counter(), time.process_time()
print("RESULT " + json.dumps({
    "import_s": t1 - t0, "dagbag_s": t2 - t1, "dagbag_cpu_s": c2 - c1, "serialize_s": t3 - t2,
    "serialize_cpu_s": c3 - c2, "dags": len(bag.dags),
    "import_errors": sorted(bag.import_errors),
    "files": {s.file: s.duration.total_seconds() for s in bag.dagbag_stats},
}))
"""

_TASK = r"""
import json, os, sys, time
t0 = time.perf_counter()
from airflow.dag_processing.dagbag import BundleDagBag
t1, c1 = time.perf_counter(), time.process_time()
dags, dag_id = sys.argv[1], sys.argv[2]
bag = BundleDagBag(dag_folder=os.path.join(dags, "datashare_dags.py"), safe_mode=False, load_op_links=False,
                   bundle_path=dags, bundle_name="dags-folder")
task = bag.dags[dag_id].task_dict["extract"]
t2, c2 = time.perf_counter(), time.process_time()
print("RESULT " + json.dumps({"import_s": t1 - t0, "parse_s": t2 - t1, "parse_cpu_s": c2 - c1, "dags": len(bag.dags)}))
"""


def make_project(root: Path, count: int, dags_from: Path = REPO / "dags") -> Path:
    """A DATASHARE_HOME with the real DAG files and suites, and ``count`` copies of the air-quality spec."""
    home = root / f"specs-{count}"
    datasets = home / "dags" / "datasets"
    datasets.mkdir(parents=True)
    for dag_file in dags_from.glob("*.py"):
        shutil.copy(dag_file, home / "dags")
    shutil.copytree(REPO / "expectations", home / "expectations")
    text = (REPO / "dags" / "datasets" / f"{SOURCE_SPEC}.yaml").read_text(encoding="utf-8")
    for i in range(count):
        copy = text.replace(f"id: {SOURCE_SPEC}\n", f"id: aq_copy_{i:04d}\nsuite: {SOURCE_SPEC}\n", 1)
        (datasets / f"aq_copy_{i:04d}.yaml").write_text(copy, encoding="utf-8")
    return home


def _env(home: Path, airflow_home: Path, dag_id: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "_AIRFLOW"))}
    env.update(
        {
            "AIRFLOW_HOME": str(airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            # Measure a slow parse rather than lose it to Airflow's 30 s import timeout (the target is 10 s).
            "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "600",
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(airflow_home / "plugins"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "ERROR",
            "DATASHARE_HOME": str(home),
            "GX_ANALYTICS_ENABLED": "false",
        }
    )
    if dag_id is not None:  # what the task runner sets around its parse (_airflow_parsing_context_manager)
        env["_AIRFLOW_PARSING_CONTEXT_DAG_ID"] = dag_id
        env["_AIRFLOW_PARSING_CONTEXT_TASK_ID"] = "extract"
    return env


def _child(code: str, args: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run one measurement in a fresh process: its wall time and its CPU time (user + system, load-proof)."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    with proc.stdout:  # type: ignore[union-attr]
        stdout = proc.stdout.read()  # type: ignore[union-attr]
    _, status, usage = os.wait4(proc.pid, 0)  # reaped here, with its resource usage
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"child failed ({proc.returncode}): {stdout[-2000:]}")
    return {**json.loads(lines[-1][7:]), "process_s": wall, "process_cpu_s": usage.ru_utime + usage.ru_stime}


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return round(statistics.median(r[key] for r in runs), 4)


def measure(
    counts: list[int], repeat: int, work: Path | None = None, dags_from: Path = REPO / "dags"
) -> dict[str, Any]:
    """Measure every count; returns figures and the targets' verdicts.

    ``dags_from`` (the DAG files) and ``PYTHONPATH`` (the engine) let the same bench measure another version.
    """
    root = Path(tempfile.mkdtemp(prefix="datashare-parse-", dir=work))
    airflow_home = root / "airflow"
    (airflow_home / "plugins").mkdir(parents=True)
    out: dict[str, Any] = {"counts": {}, "repeat": repeat, "load_before": os.getloadavg()}
    try:
        for count in counts:
            home = make_project(root, count, dags_from)
            dags = home / "dags"
            folder_env, dag_id = _env(home, airflow_home), f"aq_copy_{count // 2:04d}"
            task_env = _env(home, airflow_home, dag_id)
            _child(_FOLDER, [str(dags)], folder_env)  # warm-up: byte code, page cache
            _child(_TASK, [str(dags), dag_id], task_env)
            folder = [_child(_FOLDER, [str(dags)], folder_env) for _ in range(repeat)]
            task = [_child(_TASK, [str(dags), dag_id], task_env) for _ in range(repeat)]
            if folder[0]["dags"] <= count or folder[0]["import_errors"]:  # every copy, plus audit and webhooks
                raise RuntimeError(f"unexpected parse at {count} specs: {folder[0]} / {task[0]}")
            for run in folder:
                run["parse_s"] = sum(run["files"].values())
            per_file = {
                Path(name).name: round(statistics.median(r["files"][name] for r in folder), 4)
                for name in folder[0]["files"]
            }
            out["counts"][str(count)] = {
                "folder": {
                    "parse_s": _median(folder, "parse_s"),
                    "per_file_s": per_file,
                    "parse_cpu_s": _median(folder, "dagbag_cpu_s"),
                    "serialize_s": _median(folder, "serialize_s"),
                    "serialize_cpu_s": _median(folder, "serialize_cpu_s"),
                    "process_s": _median(folder, "process_s"),
                },
                "task": {
                    "startup_s": _median(task, "process_s"),
                    "startup_cpu_s": _median(task, "process_cpu_s"),
                    "parse_s": _median(task, "parse_s"),
                    "parse_cpu_s": _median(task, "parse_cpu_s"),
                    "import_s": _median(task, "import_s"),
                    "dags_built": task[0]["dags"],
                },
            }
            log.info("%5d specs: %s", count, json.dumps(out["counts"][str(count)]))
            shutil.rmtree(home)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    out["load_after"] = os.getloadavg()
    out["targets"] = targets(out)
    return out


def _target(name: str, value: float, limit: float, note: str = "") -> dict[str, Any]:
    return {
        "target": name,
        "value": round(value, 3),
        "limit": limit,
        "at_least": False,
        "met": value <= limit,
        "note": note,
    }


def targets(parse: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's two parse targets, where the run measured the counts they name."""
    c = parse["counts"]
    out = []
    if "10" in c and "1000" in c:
        small, large = c["10"]["task"], c["1000"]["task"]
        out.append(
            _target(
                "task start-up at 1,000 specs / at 10",
                large["startup_s"] / small["startup_s"],
                TASK_RATIO_LIMIT,
                note=f"CPU time {large['startup_cpu_s'] / small['startup_cpu_s']:.2f} x; parse alone "
                f"{large['parse_s'] * 1000:.0f} ms / {small['parse_s'] * 1000:.0f} ms",
            )
        )
    if "1000" in c:
        folder = c["1000"]["folder"]
        out.append(
            _target(
                "dags folder parsed at 1,000 specs (s)",
                folder["parse_s"],
                FOLDER_LIMIT_S,
                note=f"CPU time {folder['parse_cpu_s']:.2f} s",
            )
        )
    return out


def table(parse: dict[str, Any], *, with_targets: bool = True) -> list[str]:
    """Markdown rows of the parse figures (and of its targets)."""
    lines = [
        "",
        "| specs | folder parse (s) | datashare_dags.py (s) | spec check (s) | folder parse CPU (s) "
        "| serialize all (s) | task start-up (s) | task start-up CPU (s) | task parse (ms) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for count, r in parse["counts"].items():
        f, t = r["folder"], r["task"]
        lines.append(
            f"| {int(count):,} | {f['parse_s']:.2f} | {f['per_file_s'].get('datashare_dags.py', 0):.2f} "
            f"| {f['per_file_s'].get('datashare_spec_errors.py', 0):.2f} | {f['parse_cpu_s']:.2f} "
            f"| {f['serialize_s']:.2f} | {t['startup_s']:.2f} | {t['startup_cpu_s']:.2f} | {t['parse_s'] * 1000:.0f} |"
        )
    if not with_targets:
        return lines
    lines += ["", "| target | value | limit | met |", "|---|---:|---:|---|"]
    for t in parse["targets"]:
        lines.append(f"| {t['target']} | {t['value']} | {t['limit']} | {'yes' if t['met'] else 'NO'} ({t['note']}) |")
    return lines


def main(argv: list[str] | None = None) -> int:
    """Measure alone and write ``bench/results/<date>-parse.{json,md}``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", default="10,200,1000", help="numbers of specs (default 10,200,1000)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per measurement (medians)")
    parser.add_argument("--dags-from", type=Path, default=REPO / "dags", help="DAG files to measure (default: ours)")
    parser.add_argument("--out", default="parse", help="results file suffix: bench/results/<date>-<out>.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    counts = [int(c) for c in args.counts.split(",") if c.strip()]
    parse = measure(counts, args.repeat, dags_from=args.dags_from)
    parse["date"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = RESULTS / f"{dt.date.today().isoformat()}-{args.out}"
    stem.with_suffix(".json").write_text(json.dumps(parse, indent=2, sort_keys=True) + "\n")
    text = "\n".join(table(parse)).strip() + "\n"
    stem.with_suffix(".md").write_text(text)
    print(text)
    return 0 if all(t["met"] for t in parse["targets"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
