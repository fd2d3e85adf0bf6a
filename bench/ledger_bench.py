"""What a long history costs: a run with nothing new and catalog pages at 100, 10,000 and 100,000 ledger entries.

The ledger only grows (every validation, commit, publication, grant...). Readers that need one
dataset's state read its commit log, head and withdrawal markers, never the chain, so their cost
must not grow with it. For each size this script builds a store with one real release of
``air_quality_hourly`` (a small SQLite unit), fills the ledger up to the size with a realistic mix of
entries (chained, as appends write them), then measures in fresh processes, medians of ``--repeat``:

- ``datashare run air_quality_hourly`` with nothing new (the whole process, imports included);
- the catalog's list page, dataset page and release page, and the JSON list (first request of a
  fresh process: cold caches, the worst case), and warm requests in one process;
- one append to the ledger (the cost every event pays);
- ``datashare verify`` (the one reader that walks the whole chain; it grows, by design).

Usage: ``python bench/ledger_bench.py [--sizes 100,10000,100000] [--repeat 3]``; results go to
``bench/results/ledger-<date>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
DATASET = "air_quality_hourly"
EVENTS = ("validation_passed", "sql_published", "recipient_granted", "validation_failed", "recipient_revoked")

PAGES_SCRIPT = """
import json, statistics, sys, time
t0 = time.perf_counter()
from fastapi.testclient import TestClient
from datashare.catalog.app import create_app
client = TestClient(create_app())
imported = time.perf_counter() - t0
out = {"imports_s": imported}
for name, path in [("list", "/"), ("dataset", "/datasets/air_quality_hourly"),
                   ("release", "/datasets/air_quality_hourly/v/1"), ("api_list", "/api/v1/datasets")]:
    t = time.perf_counter()
    r = client.get(path)
    assert r.status_code == 200, (path, r.status_code)
    cold = time.perf_counter() - t
    warm = []
    for _ in range(10):
        t = time.perf_counter()
        client.get(path)
        warm.append(time.perf_counter() - t)
    out[name] = {"cold_s": cold, "warm_s": statistics.median(warm)}
t = time.perf_counter()
from datashare.settings import Settings
from datashare.store import ReleaseStore
ReleaseStore.open(Settings.from_env().release_uri).ledger.append("bench_append", dataset_id="bench")
out["append_s"] = time.perf_counter() - t
print(json.dumps(out))
"""


def _env(work: Path) -> dict[str, str]:
    from datashare.source.connections import connection_env_value

    return {
        **os.environ,
        "DATASHARE_HOME": str(REPO),
        "DATASHARE_RELEASE_ROOT": str(work / "releases"),
        "AIRFLOW_CONN_MONRE_MONITORING": connection_env_value(f"sqlite:///{work / 'unit.sqlite'}"),
        "AIRFLOW_CONN_DATASHARE_SHARE": connection_env_value(f"sqlite:///{work / 'share.sqlite'}"),
        "GX_ANALYTICS_ENABLED": "false",
        "DATASHARE_NOW": "2026-11-03T12:00:00+00:00",
    }


def _cli(env: dict[str, str], *args: str) -> float:
    started = time.perf_counter()
    subprocess.run([str(Path(sys.executable).with_name("datashare")), *args], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    return time.perf_counter() - started


def _fill(root: Path, size: int) -> None:
    """Chain entries after the existing ones until the ledger holds ``size`` entries (written as appends write)."""
    from datashare.store import Ledger, LocalBackend, dumps, sha256_bytes
    from datashare.store.ledger import HEAD, _key

    backend = LocalBackend(root)
    ledger = Ledger(backend)
    seq = ledger.tip()
    prev = sha256_bytes(backend.get_bytes(_key(seq))) if seq else "0" * 64
    folder = root / "_ledger"
    started = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    while seq < size:
        seq += 1
        body = {
            "seq": seq,
            "at": (started + dt.timedelta(minutes=seq)).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "event": EVENTS[seq % len(EVENTS)],
            "dataset_id": f"dataset_{seq % 97}",
            "version": seq % 50 or None,
            "previous_sha256": prev,
            "run": f"scheduled__{seq}",
        }
        data = dumps(body)
        (folder / f"{seq:012d}.json").write_bytes(data)
        prev = sha256_bytes(data)
    backend.put_bytes(HEAD, dumps({"seq": seq, "sha256": prev}))


def measure(size: int, repeat: int) -> dict[str, Any]:
    """Build a store with ``size`` ledger entries and time what readers and writers pay."""
    from units import monitoring

    with tempfile.TemporaryDirectory(prefix=f"ledger-{size}-") as tmp:
        work = Path(tmp)
        monitoring.generate(f"sqlite:///{work / 'unit.sqlite'}", stations=4, days=2)
        env = _env(work)
        _cli(env, "run", DATASET)
        _fill(work / "releases", size)
        nothing = [_cli(env, "run", DATASET) for _ in range(repeat)]
        pages = []
        for _ in range(repeat):
            out = subprocess.run([sys.executable, "-c", PAGES_SCRIPT], env=env, check=True, capture_output=True)
            pages.append(json.loads(out.stdout.decode().strip().splitlines()[-1]))
        verify = _cli(env, "verify")
    result: dict[str, Any] = {
        "entries": size,
        "nothing_new_s": statistics.median(nothing),
        "nothing_new_runs_s": [round(x, 3) for x in nothing],
        "append_s": statistics.median(p["append_s"] for p in pages),
        "verify_s": verify,
    }
    for name in ("list", "dataset", "release", "api_list"):
        result[f"{name}_cold_s"] = statistics.median(p[name]["cold_s"] for p in pages)
        result[f"{name}_warm_s"] = statistics.median(p[name]["warm_s"] for p in pages)
    return result


def write_markdown(rows: list[dict[str, Any]], path: Path) -> str:
    """The table of the results, with the ratio of the largest size to the smallest."""
    cols = [
        ("nothing new (process)", "nothing_new_s"),
        ("dataset page, cold", "dataset_cold_s"),
        ("dataset page, warm", "dataset_warm_s"),
        ("list page, cold", "list_cold_s"),
        ("release page, cold", "release_cold_s"),
        ("one append", "append_s"),
        ("verify (walks the chain)", "verify_s"),
    ]
    lines = ["| ledger entries | " + " | ".join(c for c, _ in cols) + " |", "|---:|" + "---:|" * len(cols)]
    for r in rows:
        lines.append(f"| {r['entries']:,} | " + " | ".join(f"{r[k]:.3f} s" for _, k in cols) + " |")
    first, last = rows[0], rows[-1]
    lines.append(
        f"| ratio {last['entries']:,} / {first['entries']:,} | "
        + " | ".join(f"{last[k] / first[k]:.2f}" for _, k in cols)
        + " |"
    )
    text = "\n".join(lines) + "\n"
    path.write_text(text)
    return text


def main() -> int:
    """Measure every size, then write the JSON and the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,10000,100000")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    rows = [measure(int(s), args.repeat) for s in args.sizes.split(",")]
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = RESULTS / f"ledger-{dt.date.today().isoformat()}"
    stem.with_suffix(".json").write_text(json.dumps(rows, indent=2) + "\n")
    print(write_markdown(rows, stem.with_suffix(".md")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
