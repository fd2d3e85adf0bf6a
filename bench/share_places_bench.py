"""Time the SQL share's placement checks: what a run pays to know where a dataset lives.

On a throwaway database of the machine's PostgreSQL, publishes a 1,000-row open dataset, then times
(medians) ``list_versions`` / ``share_state`` and a publish, with no recipient database, then with
``--agencies`` recipient databases made by restricted datasets. Drops what it made.

    .venv/bin/python bench/share_places_bench.py [--agencies 5] [--repeat 7]
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import tempfile
import time
from collections.abc import Callable
from itertools import count
from pathlib import Path

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq

from datashare.share.sqlshare import publish_release, share_state

ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def median_ms(action: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return round(statistics.median(times) * 1000, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agencies", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    database = f"bench_places_{secrets.token_hex(4)}"
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{database}"
    versions = count(1)
    with psycopg.connect(ADMIN, autocommit=True) as admin, tempfile.TemporaryDirectory() as tmp:
        admin.execute(f'CREATE DATABASE "{database}"')
        try:
            path = Path(tmp) / "part.parquet"
            pq.write_table(pa.table({"code": [f"x{i}" for i in range(1000)]}), path)

            def publish_open() -> None:
                publish_release(dataset_id="open_data", version=next(versions), parquet_paths=[path], target_url=url)

            def state_open() -> None:
                share_state(dataset_id="open_data", target_url=url)

            publish_open()
            print(f"no recipient database: share_state {median_ms(state_open, args.repeat)} ms, "
                  f"publish {median_ms(publish_open, args.repeat)} ms")  # fmt: skip
            for i in range(args.agencies):
                publish_release(
                    dataset_id=f"restricted_{i}", version=1, parquet_paths=[path], target_url=url, readers=(f"a{i}",)
                )

            def publish_restricted() -> None:
                publish_release(
                    dataset_id="restricted_0", version=next(versions), parquet_paths=[path], target_url=url,
                    readers=("a0",),
                )  # fmt: skip

            def state_restricted() -> None:
                share_state(dataset_id="restricted_0", target_url=url, readers=("a0",))

            print(f"{args.agencies} recipient databases: open share_state {median_ms(state_open, args.repeat)} ms, "
                  f"publish {median_ms(publish_open, args.repeat)} ms; restricted share_state "
                  f"{median_ms(state_restricted, args.repeat)} ms, publish "
                  f"{median_ms(publish_restricted, args.repeat)} ms")  # fmt: skip
        finally:
            made = admin.execute("SELECT datname FROM pg_database WHERE starts_with(datname, %s)", (database,))
            for (name,) in made.fetchall():
                admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
                admin.execute(f'DROP DATABASE "{name}"')


if __name__ == "__main__":
    main()
