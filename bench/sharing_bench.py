"""Delta Sharing and release changes at scale (issue 13's target; a section of ``make bench``, runnable alone).

Makes (or reuses) the air-quality unit in the machine's PostgreSQL (5 M rows, the same database as the
pipeline's measurement; or 1 M rows in a database of its own), releases it with ``datashare run``,
serves the catalog (``datashare serve``) on a loopback port, then measures, each in a fresh process
and after :func:`run.wait_quiet`:

* ``direct``: ``pyarrow.parquet.read_table(files).to_pandas()`` on the release's own files: the floor;
* ``sharing``: ``delta_sharing.load_as_pandas`` of the same release through the catalog (the official
  client: query, signed file URLs, HTTP range reads) into the same DataFrame;

target: ``sharing`` within 1.5 x ``direct``. Then it appends 10 days (about 1% new rows), releases v2
(incremental: v1's file carried over) and measures the diff engine, cache emptied first: as it runs
(carried files skipped) and with every file read (the worst case: two releases sharing no file),
plus the client's ``load_table_changes_as_pandas`` of v2. The unit is trimmed back afterwards.

    .venv/bin/python bench/sharing_bench.py [--scale 5m|1m] [--repeat 3]

Writes ``bench/results/sharing-<date>.json`` and prints a table. Times are inside the measuring
process (imports excluded); peak memory is that process's ``VmHWM``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

log = logging.getLogger("bench.sharing")
REPO = Path(__file__).resolve().parents[1]
DATASET = "air_quality_hourly"
RECIPIENT = "sonnmt_hanoi"
TARGET_RATIO = 1.5


def _unit(scale: str) -> Any:
    from sources import UNITS, Unit

    if scale == "5m":
        return UNITS["pg_5m"]
    if scale == "1m":
        return Unit("bench_aq_1m_pg", "postgresql", stations=40, days=1042)
    raise SystemExit(f"--scale must be 5m or 1m, got {scale!r}")


def _peak_mib() -> float:
    status = Path("/proc/self/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmHWM")).split()[1]) / 1024


# -- child measurements (a fresh interpreter each) ------------------------------------------------------


def child(args: dict[str, Any]) -> dict[str, Any]:
    """One measurement; runs in its own process, prints ``RESULT <json>``."""
    what = args["task"]
    if what == "direct":
        import pyarrow.parquet as pq

        started = time.perf_counter()
        frame = pq.read_table(args["paths"]).to_pandas()
        return {"wall_s": time.perf_counter() - started, "rows": len(frame), "peak_rss_mib": _peak_mib()}
    if what == "sharing":
        import delta_sharing

        started = time.perf_counter()
        frame = delta_sharing.load_as_pandas(args["url"])
        return {"wall_s": time.perf_counter() - started, "rows": len(frame), "peak_rss_mib": _peak_mib()}
    if what == "changes_feed":
        import delta_sharing

        started = time.perf_counter()
        frame = delta_sharing.load_table_changes_as_pandas(args["url"], starting_version=2, ending_version=2)
        return {"wall_s": time.perf_counter() - started, "rows": len(frame), "peak_rss_mib": _peak_mib()}
    if what in ("diff", "diff_every_file"):
        from datashare.releases import changes
        from datashare.store import ReleaseStore

        store = ReleaseStore.local(Path(args["root"]))
        before, after = store.release(DATASET, 1), store.release(DATASET, 2)
        if what == "diff_every_file":  # as if the releases shared no file: every row is compared
            changes._split = lambda a, b: ([f["path"] for f in a.files], [f["path"] for f in b.files], 0)
        started = time.perf_counter()
        result = changes.compare(store, before, after, workdir=Path(args["workdir"]))
        return {
            "wall_s": time.perf_counter() - started,
            "peak_rss_mib": _peak_mib(),
            "rows_compared": before.rows + after.rows,
            "added": result.added,
            "removed": result.removed,
            "changed": result.changed,
            "files_skipped": result.files_skipped,
        }
    raise SystemExit(f"unknown task {what!r}")


def _run_child(args: dict[str, Any], work: Path, quiet: bool = True) -> dict[str, Any]:
    from run import wait_quiet

    if quiet:
        wait_quiet()
    arg_file = work / "child.json"
    arg_file.write_text(json.dumps(args))
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, __file__, "--child", str(arg_file)], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"bench child {args['task']} failed: {proc.stderr[-3000:]}")
    line = next(x for x in reversed(proc.stdout.splitlines()) if x.startswith("RESULT "))
    result = json.loads(line.removeprefix("RESULT "))
    result["process_s"] = round(time.perf_counter() - started, 3)
    result["wall_s"] = round(result["wall_s"], 3)
    result["peak_rss_mib"] = round(result["peak_rss_mib"], 1)
    return result


# -- the release and the server ---------------------------------------------------------------------------


def _env(unit: Any, root: Path, days_added: int = 0) -> dict[str, str]:
    from run import _pipeline_env, _share_url

    return {**os.environ, **_pipeline_env(unit, root, _share_url(), "bench_sharing", days_added=days_added)}


def _release(unit: Any, root: Path, env: dict[str, str]) -> None:
    """``datashare run`` of the dataset into ``root`` (one process, as the CLI runs it)."""
    started = time.perf_counter()
    subprocess.run([str(REPO / ".venv" / "bin" / "datashare"), "run", DATASET], env=env, check=True)
    log.info("released %s into %s in %.0f s", DATASET, root, time.perf_counter() - started)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Catalog:
    """``datashare serve`` on a free loopback port, stopped by pid."""

    def __init__(self, root: Path, work: Path) -> None:
        self.port = _free_port()
        env = {**os.environ, "DATASHARE_HOME": str(REPO), "DATASHARE_RELEASE_ROOT": str(root)}
        self.log = (work / "catalog.log").open("w")
        self.proc = subprocess.Popen(
            [str(REPO / ".venv" / "bin" / "datashare"), "serve", "--port", str(self.port)],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the catalog did not start; see {work / 'catalog.log'}") from None
                time.sleep(0.2)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def _profile(root: Path, endpoint: str, path: Path) -> str:
    from datashare.access import Tokens, load_registry
    from datashare.store import ReleaseStore

    recipient = load_registry(REPO / "config" / "recipients.yaml").get(RECIPIENT)
    token = Tokens(ReleaseStore.local(root).backend).issue(recipient)
    path.write_text(json.dumps({"shareCredentialsVersion": 1, "endpoint": endpoint, "bearerToken": token}))
    path.chmod(0o600)
    return f"{path}#{RECIPIENT}.environment_monitoring.{DATASET}"


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ordered = sorted(runs, key=lambda r: r["wall_s"])
    chosen = dict(ordered[(len(ordered) - 1) // 2])
    chosen["runs_wall_s"] = [r["wall_s"] for r in runs]
    return chosen


def measure(scale: str, repeat: int, work: Path) -> dict[str, Any]:
    """Every measurement of this section at one scale; the unit is left as it was found."""
    from sources import append_increment, ensure, trim

    from datashare.store import ReleaseStore

    unit = _unit(scale)
    rows = ensure(unit)
    work.mkdir(parents=True, exist_ok=True)
    root = work / "releases"
    shutil.rmtree(root, ignore_errors=True)
    _release(unit, root, _env(unit, root))
    store = ReleaseStore.local(root)
    v1 = store.release(DATASET, 1)
    paths = [str(root / v1.prefix / f["path"]) for f in v1.files]
    catalog = Catalog(root, work)
    try:
        url = _profile(root, f"http://127.0.0.1:{catalog.port}/delta-sharing", work / "bench.share")
        _run_child({"task": "direct", "paths": paths}, work, quiet=False)  # warm the page cache
        direct, sharing = [], []
        for i in range(repeat):
            log.info("%s: direct read and Delta Sharing read, run %s of %s", scale, i + 1, repeat)
            direct.append(_run_child({"task": "direct", "paths": paths}, work))
            sharing.append(_run_child({"task": "sharing", "url": url}, work))
        log.info("%s: an incremental release (+10 days), then the diff engine", scale)
        added = append_increment(unit)
        try:
            _release(unit, root, _env(unit, root, days_added=10))
        finally:
            trim(unit)
        diffs = {}
        for what in ("diff", "diff_every_file"):
            runs = []
            for _ in range(repeat):
                shutil.rmtree(root / DATASET / "_changes", ignore_errors=True)
                runs.append(_run_child({"task": what, "root": str(root), "workdir": str(work / "diff")}, work))
            diffs[what] = _median(runs)
        feed = _median([_run_child({"task": "changes_feed", "url": url}, work) for _ in range(repeat)])
    finally:
        catalog.stop()
    d, s = _median(direct), _median(sharing)
    ratio = s["wall_s"] / d["wall_s"]
    result = {
        "scale": scale,
        "rows_source": rows,
        "release": {
            "rows": v1.rows,
            "files": len(v1.files),
            "bytes": sum(int(f["bytes"]) for f in v1.files),
        },
        "direct_pyarrow": d,
        "delta_sharing": s,
        "ratio": round(ratio, 3),
        "target": {"limit": TARGET_RATIO, "met": ratio <= TARGET_RATIO},
        "incremental_rows_added": added,
        "changes": diffs,
        "changes_feed": feed,
    }
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(work / "diff", ignore_errors=True)
    (work / "bench.share").unlink(missing_ok=True)  # holds a token of the (now deleted) store
    _drop_share_schema()
    return result


def _drop_share_schema() -> None:
    """The runs published into the PostgreSQL share under a schema of this section's own: drop it."""
    from run import _share_url, _sql

    _sql(_share_url(), 'DROP SCHEMA IF EXISTS "bench_sharing" CASCADE')


def table(result: dict[str, Any]) -> str:
    """The figures as a Markdown table."""
    d, s, c = result["direct_pyarrow"], result["delta_sharing"], result["changes"]
    rows = [
        ("pyarrow read_table + to_pandas (floor)", d["wall_s"], d["peak_rss_mib"], ""),
        ("delta_sharing.load_as_pandas", s["wall_s"], s["peak_rss_mib"], f"{result['ratio']:.2f} x the floor"),
        (
            "diff v1 → v2, carried files skipped",
            c["diff"]["wall_s"],
            c["diff"]["peak_rss_mib"],
            f"{c['diff']['added']:,} added, {c['diff']['files_skipped']} file(s) skipped",
        ),
        (
            "diff v1 → v2, every file read",
            c["diff_every_file"]["wall_s"],
            c["diff_every_file"]["peak_rss_mib"],
            f"{c['diff_every_file']['rows_compared']:,} rows compared",
        ),
        (
            "load_table_changes_as_pandas v2",
            result["changes_feed"]["wall_s"],
            result["changes_feed"]["peak_rss_mib"],
            f"{result['changes_feed']['rows']:,} rows",
        ),
    ]
    out = [
        f"Delta Sharing and changes, {result['release']['rows']:,} rows "
        f"({result['release']['bytes'] / 1e6:.1f} MB in {result['release']['files']} file(s)); medians",
        "",
        "| measurement | seconds | peak MiB | note |",
        "|---|---:|---:|---|",
    ]
    out += [f"| {name} | {wall:.2f} | {rss:.0f} | {note} |" for name, wall, rss, note in rows]
    verdict = "met" if result["target"]["met"] else "MISSED"
    out.append(f"\nTarget: Delta Sharing read ≤ {TARGET_RATIO} x direct pyarrow: {result['ratio']:.2f} ({verdict})")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """Measure at one scale, write the JSON, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="5m", help="5m (the pipeline bench's unit) or 1m")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        result = child(json.loads(Path(args.child).read_text()))
        print("RESULT " + json.dumps(result))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("units").setLevel(logging.WARNING)
    from run import WORK

    started = time.perf_counter()
    result = measure(args.scale, args.repeat, WORK / f"sharing-{args.scale}")
    result["date"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    result["bench_s"] = round(time.perf_counter() - started, 1)
    out = REPO / "bench" / "results" / f"sharing-{dt.date.today().isoformat()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(table(result))
    log.info("wrote %s in %.0f s", out, result["bench_s"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
