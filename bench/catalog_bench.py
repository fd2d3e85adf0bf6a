"""Time the catalog's search and coverage: documents for many datasets, queries, and one large release's coverage.

Search: builds the index documents of ``--datasets`` copies of the repository's specs (each with
the provinces and years of a release) and times queries over them, as the catalog runs them on
every list request. Coverage: writes ``--rows`` air-quality-like rows to one Parquet file (row
groups of a million, as releases are written) and times reading its time range from the footers and
its distinct province codes, which the catalog does once per release version.

    .venv/bin/python bench/catalog_bench.py [--datasets 1000] [--rows 5000000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from datashare.catalog import coverage, search
from datashare.catalog.names import load_names
from datashare.spec import load_specs

REPO = Path(__file__).resolve().parents[1]
QUERIES = ("PM2.5 Hà Nội", "bui min", "Hồ Chí Minh 2026", "nước dưới đất", "zzz")


def bench_search(copies: int) -> None:
    specs, _ = load_specs(REPO / "dags" / "datasets")
    names = load_names(REPO / "config" / "units.yaml")
    ref = coverage.provinces()
    places = tuple(p for p in (ref.place(c, "pre_2025") for c in ("01", "79", "74", "30", "48")) if p)
    cover = coverage.Coverage(places=places, years=(2025, 2026))
    started = time.perf_counter()
    docs = [
        search.build_document(spec.model_copy(update={"id": f"{spec.id[:40]}_{i}"}), names, cover)
        for i in range(copies // len(specs) + 1)
        for spec in specs.values()
    ][:copies]
    built = time.perf_counter() - started
    print(f"search: {len(docs)} documents built in {built:.2f} s ({1000 * built / len(docs):.2f} ms each)")
    for q in QUERIES:
        started = time.perf_counter()
        result = search.run(docs, q, search.Filters())
        took = time.perf_counter() - started
        print(f"search: {q!r}: {len(result.ranked)} hits over {len(docs)} datasets in {1000 * took:.1f} ms")


def bench_coverage(rows: int) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from datashare.spec import load_spec

    spec = load_spec(REPO / "dags" / "datasets" / "air_quality_hourly.yaml")
    rng = np.random.default_rng(2026)
    codes = np.array(["01", "79", "31", "48", "92", "46", "22", "56", "27", "74"])
    start = np.datetime64("2024-01-01T00:00:00", "s")
    table = pa.table(
        {
            "province_code": pa.array(codes[rng.integers(0, len(codes), rows)]),
            "observed_at": pa.array(
                (start + rng.integers(0, 3 * 365 * 24, rows).astype("timedelta64[h]")).astype("datetime64[s]")
            ),
            "pm25": pa.array(rng.random(rows) * 100),
        }
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "part-00000.parquet"
        pq.write_table(table, path, row_group_size=1_000_000, compression="zstd")
        started = time.perf_counter()
        low, high = coverage._min_max([path], coverage.time_column(spec) or "observed_at")
        footers = time.perf_counter() - started
        started = time.perf_counter()
        found = coverage._codes([path], "province_code")
        distinct = time.perf_counter() - started
    print(f"coverage: {rows:,} rows: time range {low} .. {high} from footers in {1000 * footers:.1f} ms")
    print(f"coverage: {len(found)} distinct province codes read in {1000 * distinct:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--datasets", type=int, default=1000)
    parser.add_argument("--rows", type=int, default=5_000_000)
    args = parser.parse_args()
    bench_search(args.datasets)
    bench_coverage(args.rows)


if __name__ == "__main__":
    main()
