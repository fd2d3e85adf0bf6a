"""The OData service on a 1 M-row air-quality release: one province-month, and paging through every row.

Makes (or reuses) the air-quality unit at about 1 M rows in the machine's PostgreSQL
(:data:`sources.UNITS` ``pg_1m``) and its release by a real pipeline run (reused while the unit is
unchanged), then starts the catalog (``uvicorn``, one process) with an empty OData cache and measures
from a client in this process:

* the first query of the release, which builds its sorted copy (:mod:`datashare.catalog.odata.cache`);
* one province-month (``province_code eq '01'`` and one month of ``observed_at``), every page followed;
* paging through every row in key order, following ``@odata.nextLink`` to the end, at 5 000,
  20 000 and the default 50 000 rows a page (after one warm-up pass; medians of ``--repeat``);
  rows/s counts the entities received.

The server's resident memory (RSS, sampled every 20 ms with psutil) is reported at the quarter
points of the full paging, and its peak; flat means the peak after 1 M rows is close to the peak
after the first 10%. The client reads raw bytes (no JSON parsing) so the figures are the server's.
Medians of ``--repeat`` runs.

    .venv/bin/python bench/odata_bench.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sources import UNITS, Unit, ensure

from datashare.catalog.odata.router import PAGE_SIZE
from datashare.source.connections import connection_env_value

log = logging.getLogger("bench.odata")
REPO = Path(__file__).resolve().parents[1]
WORK = Path(os.environ.get("DATASHARE_BENCH_DIR", Path(tempfile.gettempdir()) / "datashare-bench")) / "odata"
RESULTS = REPO / "bench" / "results"
DATASET = "air_quality_hourly"
PROVINCE_MONTH = (
    "province_code%20eq%20'01'%20and%20observed_at%20ge%202024-03-01T00:00:00%2B07:00"
    "%20and%20observed_at%20lt%202024-04-01T00:00:00%2B07:00"
)


def _release(unit: Unit, rows: int) -> Path:
    """The release root holding v1 of the unit's rows (made by ``run_dataset`` in a child process, then reused)."""
    root = WORK / "releases"
    marker = WORK / "release.json"
    wanted = {"unit": unit.params(), "rows": rows}
    if marker.exists() and json.loads(marker.read_text()) == wanted and (root / DATASET / "_log" / "1.json").exists():
        log.info("reusing the release in %s", root)
        return root
    import shutil

    shutil.rmtree(root, ignore_errors=True)
    env = {
        **os.environ,
        "DATASHARE_NOW": (unit.end - dt.timedelta(hours=7)).replace(tzinfo=dt.UTC).isoformat(),
        "DATASHARE_HOME": str(REPO),
        "DATASHARE_RELEASE_ROOT": str(root),
        "AIRFLOW_CONN_MONRE_MONITORING": connection_env_value(unit.url),
        "AIRFLOW_CONN_DATASHARE_SHARE": connection_env_value(f"sqlite:///{WORK / 'share.sqlite'}"),
        "GX_ANALYTICS_ENABLED": "false",
    }
    log.info("releasing %s rows with the pipeline", f"{rows:,}")
    code = (
        f"from datashare.pipeline.stages import run_dataset; import json; print(json.dumps(run_dataset({DATASET!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"the pipeline failed: {out.stderr[-3000:]}")
    marker.write_text(json.dumps(wanted))
    return root


def _die_with_parent() -> None:
    """In the server child: end with the bench process, even if it is killed (Linux ``PR_SET_PDEATHSIG``)."""
    import ctypes
    import signal

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


class Server:
    """The catalog in a child process, with its RSS sampled in a thread."""

    def __init__(self, root: Path, cache: Path) -> None:
        import psutil

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        env = {
            **os.environ,
            "DATASHARE_HOME": str(REPO),
            "DATASHARE_RELEASE_ROOT": str(root),
            "DATASHARE_ODATA_CACHE_DIR": str(cache),
        }
        code = (
            "import uvicorn; from datashare.catalog.app import create_app; "
            f"uvicorn.run(create_app(), host='127.0.0.1', port={self.port}, log_level='warning')"
        )
        self.proc = subprocess.Popen([sys.executable, "-c", code], env=env, preexec_fn=_die_with_parent)
        self.ps = psutil.Process(self.proc.pid)
        self.url = f"http://127.0.0.1:{self.port}/odata/"
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(self.url, timeout=2).read()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the catalog did not start") from None
                time.sleep(0.1)
        self.rss_mib = self.ps.memory_info().rss / 2**20
        self.peak_mib = self.rss_mib
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.is_set():
            try:
                rss = self.ps.memory_info().rss / 2**20
            except Exception:  # the process ended
                return
            self.rss_mib = rss
            self.peak_mib = max(self.peak_mib, rss)
            time.sleep(0.02)

    def reset_peak(self) -> None:
        """Start a new peak from the current RSS."""
        self.peak_mib = self.ps.memory_info().rss / 2**20

    def stop(self) -> None:
        """End the child process (only the one this object started)."""
        self._stop.set()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


NEXT = re.compile(rb'"@odata\.nextLink":"([^"]+)"\}$')


def page_through(server: Server, path: str, page: int | None, checkpoints: list[int] | None = None) -> dict[str, Any]:
    """Follow next links from ``path`` to the end; RSS at the given row counts."""
    url: str | None = server.url + path
    headers = {"Prefer": f"odata.maxpagesize={page}"} if page else {}
    rows = pages = 0
    marks: list[dict[str, float]] = []
    pending = sorted(checkpoints or [])
    started = time.perf_counter()
    while url:
        request = urllib.request.Request(url, headers=headers)
        with urllib.request.urlopen(request, timeout=600) as response:
            body = response.read()
        value = body[body.index(b'"value":[') + 9 :]
        if not value.startswith(b"]"):
            rows += value.count(b'},{"') + 1
        pages += 1
        match = NEXT.search(body[-4096:])
        url = match.group(1).decode() if match else None
        while pending and rows >= pending[0]:
            marks.append({"rows": rows, "rss_mib": round(server.rss_mib, 1), "peak_mib": round(server.peak_mib, 1)})
            pending.pop(0)
    seconds = time.perf_counter() - started
    return {
        "rows": rows,
        "pages": pages,
        "seconds": round(seconds, 3),
        "rows_per_s": round(rows / seconds) if seconds else None,
        "checkpoints": marks,
    }


def measure(repeat: int = 3) -> dict[str, Any]:
    """Every OData figure, as a JSON-able dict."""
    WORK.mkdir(parents=True, exist_ok=True)
    unit = UNITS["pg_1m"]
    rows = ensure(unit)
    root = _release(unit, rows)
    cache = WORK / "cache"
    import shutil

    shutil.rmtree(cache, ignore_errors=True)
    server = Server(root, cache)
    try:
        idle = server.rss_mib
        started = time.perf_counter()
        with urllib.request.urlopen(server.url + f"{DATASET}/$count", timeout=600) as response:
            total = int(response.read())
        first = time.perf_counter() - started
        log.info("first query (builds the sorted copy of %s rows): %.2f s", f"{total:,}", first)
        build_peak = server.peak_mib
        runs = [page_through(server, f"{DATASET}?$filter={PROVINCE_MONTH}", None) for _ in range(repeat)]
        province = sorted(runs, key=lambda r: r["seconds"])[(len(runs) - 1) // 2]
        log.info("province-month: %s rows in %.3f s", province["rows"], province["seconds"])
        page_through(server, DATASET, None)  # warm-up: the first pass reads the copy from disk
        quarter = [total // 10, total // 4, total // 2, 3 * total // 4, total]
        sizes: dict[str, Any] = {}
        full: dict[str, Any] = {}
        for size in (5000, 20000, PAGE_SIZE):
            passes = []
            for _ in range(repeat):
                server.reset_peak()
                passes.append(page_through(server, DATASET, size, quarter))
            median = sorted(passes, key=lambda r: r["seconds"])[(len(passes) - 1) // 2]
            sizes[str(size)] = {**median, "runs_rows_per_s": [r["rows_per_s"] for r in passes]}
            log.info("page size %s: %s rows/s (median of %s)", size, f"{median['rows_per_s']:,}", repeat)
            if size == PAGE_SIZE:
                full = median
        if full["rows"] != total:
            raise RuntimeError(f"paging returned {full['rows']} rows, the release has {total}")
        first_tenth = full["checkpoints"][0]["peak_mib"]
        return {
            "load_average_1min": round(os.getloadavg()[0], 1),
            "rows": total,
            "server_idle_rss_mib": round(idle, 1),
            "first_query_s": round(first, 3),
            "first_query_peak_rss_mib": round(build_peak, 1),
            "province_month": {**province, "runs_s": [r["seconds"] for r in runs], "filter": PROVINCE_MONTH},
            "paging": full,
            "paging_peak_rss_mib": round(full["checkpoints"][-1]["peak_mib"], 1),
            "paging_peak_growth_after_first_tenth_mib": round(full["checkpoints"][-1]["peak_mib"] - first_tenth, 1),
            "page_sizes": {k: v for k, v in sizes.items() if k != str(PAGE_SIZE)},
            "default_page_size": PAGE_SIZE,
            "cache_file_mib": round(sum(p.stat().st_size for p in cache.glob("*/*.parquet")) / 2**20, 1),
        }
    finally:
        server.stop()


def markdown(result: dict[str, Any]) -> str:
    """The section's table."""
    paging = result["paging"]
    lines = [
        f"OData on a {result['rows']:,}-row air-quality release (one uvicorn process, 2 cores; "
        f"load average {result['load_average_1min']} at the end)",
        "",
        "| measurement | value |",
        "|---|---|",
        f"| first query (builds the sorted copy) | {result['first_query_s']:.2f} s, peak RSS "
        f"{result['first_query_peak_rss_mib']:.0f} MiB |",
        f"| one province-month ({result['province_month']['rows']:,} rows) | "
        f"{result['province_month']['seconds'] * 1000:.0f} ms |",
        f"| paging every row, {result['default_page_size']:,} a page ({paging['pages']} pages) | "
        f"{paging['seconds']:.1f} s, {paging['rows_per_s']:,} rows/s |",
    ]
    for size, run in result["page_sizes"].items():
        lines.append(
            f"| paging every row, {int(size):,} a page | {run['seconds']:.1f} s, {run['rows_per_s']:,} rows/s |"
        )
    marks = ", ".join(f"{m['rows']:,}: {m['peak_mib']:.0f}" for m in paging["checkpoints"])
    lines += [
        f"| server RSS idle / peak while paging | {result['server_idle_rss_mib']:.0f} / "
        f"{result['paging_peak_rss_mib']:.0f} MiB |",
        f"| peak RSS (MiB) after N rows paged | {marks} |",
        f"| sorted copy on disk | {result['cache_file_mib']:.0f} MiB |",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    """Measure and write ``bench/results/<date>-odata.{json,md}``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs of the province-month query (median)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("units").setLevel(logging.WARNING)
    return write(measure(args.repeat))


def write(result: dict[str, Any]) -> int:
    """Write ``bench/results/<date>-odata.{json,md}`` and print the table."""
    result["date"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = RESULTS / f"{dt.date.today().isoformat()}-odata"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    table = markdown(result)
    stem.with_suffix(".md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
