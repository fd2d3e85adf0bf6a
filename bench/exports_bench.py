"""Time and peak memory of making a release's CSV, XLSX and zip, each in its own process.

Writes a synthetic air-quality release (the real schema: codes, Vietnamese station names, hourly
times, six pollutants with some nulls, the AQI) of ``--rows`` rows in Parquet parts of 500,000 rows
into a temporary local store, then makes each export with :class:`datashare.releases.exports.Exporter` in a
child process and reports its wall time (imports excluded) and the child's peak resident memory.

    .venv/bin/python bench/exports_bench.py [--rows 1000000] [--formats csv,xlsx,zip]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PART_ROWS = 500_000


def make_release(root: Path, rows: int) -> None:
    """A committed-looking release ``air_quality_hourly`` v1 under ``root`` (files, manifest, record)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from datashare.store import dumps, sha256_bytes
    from datashare.store.backends import sha256_file

    rng = np.random.default_rng(2026)
    names = np.array(["Hà Nội - 556 Nguyễn Văn Cừ", "TP Hồ Chí Minh - Thảo Cầm Viên", "Đà Nẵng - Sơn Trà"])
    files = []
    data = root / "air_quality_hourly" / "v1" / "data"
    data.mkdir(parents=True)
    for i, start in enumerate(range(0, rows, PART_ROWS)):
        n = min(PART_ROWS, rows - start)
        station = rng.integers(0, 3, n)
        values = {p: rng.gamma(2.0, 20.0, n) for p in ("pm25", "pm10", "no2", "so2", "co", "o3")}
        table = pa.table(
            {
                "station_code": pa.array(np.char.add("AQ01", station.astype(str))),
                "station_name": pa.array(names[station]),
                "province_code": pa.array(np.where(station == 0, "01", "79")),
                "observed_at": pa.array(
                    (np.datetime64("2026-01-01T00:00") + np.arange(start, start + n).astype("timedelta64[h]")).astype(
                        "datetime64[us]"
                    ),
                    pa.timestamp("us"),
                ),
                **{p: pa.array(v, mask=rng.random(n) < 0.01) for p, v in values.items()},
                "aqi": pa.array(rng.integers(0, 300, n)),
            }
        )
        path = data / f"part-{i:05d}.parquet"
        pq.write_table(table, path, compression="zstd", row_group_size=PART_ROWS)
        files.append(
            {"path": f"data/{path.name}", "rows": n, "bytes": path.stat().st_size, "sha256": sha256_file(path)}
        )
    manifest = {
        "licenses": [{"name": "CC-BY-4.0"}],
        "resources": [{"schema": {"fields": [{"name": n, "type": "string"} for n in table.column_names]}}],
        "datashare": {"title": {"vi": "Không khí", "en": "Air"}, "rows": rows, "files": files},
    }
    body = dumps(manifest)
    (root / "air_quality_hourly" / "v1" / "datapackage.json").write_bytes(body)
    record = {"committed_at": "2026-11-01T00:00:00Z", "manifest_sha256": sha256_bytes(body)}
    (root / "bench_record.json").write_text(json.dumps(record))


def export_one(root: Path, fmt: str) -> None:
    """Make one export (in this process) and print its seconds and size as JSON."""
    from datashare.releases.exports import Exporter
    from datashare.store import Release, ReleaseStore

    manifest = json.loads((root / "air_quality_hourly" / "v1" / "datapackage.json").read_text())
    record = json.loads((root / "bench_record.json").read_text())
    release = Release("air_quality_hourly", 1, record, manifest)
    started = time.perf_counter()
    made = Exporter(ReleaseStore.open(str(root))).get(release, fmt)
    seconds = round(time.perf_counter() - started, 2)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "bytes": made.bytes, "peak_mib": round(peak_mib)}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--formats", default="csv,xlsx,zip")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--make", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        export_one(args.root, args.one)
        return 0
    if args.make:
        make_release(args.root, args.rows)
        return 0
    # Linux keeps a process's peak RSS across execve: this parent stays small (the release is written by a
    # child of its own), so each export child's peak is its own.
    with tempfile.TemporaryDirectory(prefix="datashare-exports-bench-") as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        make = [sys.executable, __file__, "--make", "--rows", str(args.rows), "--root", str(root)]
        subprocess.run(make, check=True)
        print(f"{args.rows:,} rows written in {time.perf_counter() - started:.1f} s")
        for fmt in args.formats.split(","):
            out = subprocess.run(
                [sys.executable, __file__, "--one", fmt, "--root", str(root)],
                capture_output=True,
                text=True,
                check=True,
            )
            result = json.loads(out.stdout.strip().splitlines()[-1])
            size = result["bytes"] / 2**20
            print(f"{fmt:<5} {result['seconds']:>8.2f} s  {size:>9.1f} MiB file  peak {result['peak_mib']:,} MiB")
    print(f"measured {dt.datetime.now(dt.UTC):%Y-%m-%d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
