"""Time building a dataset's validation history from a ledger of 10,000 validation runs.

Writes the ledger entries straight into a temporary local store (one object per entry, chained like
the real ledger), one run in ten failing and one in three committing a release, then times
``datashare.quality.history.build_history``: read every entry once, render every page, write them.

    .venv/bin/python bench/history_bench.py [--runs 10000] [--page-size 50]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from datashare.quality.history import build_history
from datashare.store import ReleaseStore, dumps, sha256_bytes
from datashare.store.ledger import GENESIS, PREFIX

DATASET = "air_quality_hourly"


def fill_ledger(root: Path, runs: int) -> int:
    """Write the entries of ``runs`` validation runs (and their releases); returns the entry count."""
    folder = root / PREFIX
    folder.mkdir(parents=True)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    prev, seq, version = GENESIS, 0, 0
    for i in range(runs):
        failed = i % 10 == 9
        run = f"scheduled__{(start + timedelta(hours=i)).strftime('%Y-%m-%dT%H-%M-%S')}"
        bodies = [
            {
                "event": "validation_failed" if failed else "validation_passed",
                "run": run,
                "report": f"{DATASET}/_validation/{run}/report.html",
                "summary": {
                    "success": not failed,
                    "rows": 1000 + i,
                    "evaluated": 12,
                    "passed": 11 if failed else 12,
                    "failed": 1 if failed else 0,
                    "failed_rules": ["expect_column_values_to_be_between:pm25"] if failed else [],
                    "suite_name": DATASET,
                    "gx_version": "1.24.1",
                    "quarantine": {"rows": i % 5, "share": 0.001, "threshold": 0.01, "by_rule": {}} if i % 5 else None,
                },
            }
        ]
        if not failed and i % 3 == 0:
            version += 1
            bodies.append({"event": "release_committed", "run": run, "version": version, "manifest_sha256": "0" * 64})
        for extra in bodies:
            seq += 1
            at = (start + timedelta(hours=i)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            body = {"seq": seq, "at": at, "dataset_id": DATASET, "version": None, "previous_sha256": prev, **extra}
            data = dumps(body)
            (folder / f"{seq:012d}.json").write_bytes(data)
            prev = sha256_bytes(data)
    return seq


def main(argv: list[str] | None = None) -> int:
    """Fill a temporary ledger, build the history, print the timing."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--page-size", type=int, default=50)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="datashare-history-bench-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        entries = fill_ledger(root, args.runs)
        t1 = time.perf_counter()
        result = build_history(ReleaseStore.local(root), DATASET, page_size=args.page_size)
        t2 = time.perf_counter()
        size = sum((root / k).stat().st_size for k in result.pages)
        print(f"ledger: {entries:,} entries for {args.runs:,} runs written in {t1 - t0:.2f} s")
        print(
            f"history: {result.runs:,} runs ({result.failed:,} failed) in {len(result.pages)} pages "
            f"({size / 1e6:.1f} MB) built in {t2 - t1:.2f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
