"""The release diff engine on tiny inline releases: every kind of change, the schema, the cache, bad keys."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datashare.exceptions import ChangesError
from datashare.releases import changes
from datashare.releases.changes import ChangeSet, compare
from datashare.store import DataFile, Release, ReleaseStore

DATASET = "parcels_demo"
TYPES = {pa.int64(): "integer", pa.float64(): "number", pa.string(): "string", pa.timestamp("us"): "datetime"}


def _commit(
    store: ReleaseStore, tmp: Path, run: str, tables: list[pa.Table], key: tuple[str, ...] = ("id",)
) -> Release:
    """Commit a release whose data files hold ``tables`` (one file each), with a minimal manifest."""
    files = []
    for i, table in enumerate(tables):
        path = tmp / run / f"part-{i:05d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path, compression="zstd")
        files.append(DataFile.from_path(path, path.name, table.num_rows))
    schema = {"fields": [{"name": f.name, "type": TYPES[f.type]} for f in tables[0].schema], "primaryKey": list(key)}
    manifest = {
        "resources": [{"path": f"data/{f.name}", "schema": schema} for f in files],
        "datashare": {
            "dataset_id": DATASET,
            "rows": sum(t.num_rows for t in tables),
            "files": [{"path": f"data/{f.name}", "bytes": f.bytes, "sha256": f.sha256, "rows": f.rows} for f in files],
            "key": list(key),
        },
    }
    result = store.commit(DATASET, run_key=run, files=files, manifest=manifest, validation_dir=None, content_sha256=run)
    assert result.release is not None
    return result.release


def _table(rows: list[dict[str, Any]], schema: pa.Schema | None = None) -> pa.Table:
    schema = schema or pa.schema([("id", pa.int64()), ("area", pa.float64()), ("owner", pa.string())])
    return pa.Table.from_pylist(rows, schema=schema)


def _rows(store: ReleaseStore, result: ChangeSet) -> list[dict[str, Any]]:
    return pq.read_table(store.backend.local_path(result.file_key)).to_pylist()


@pytest.fixture
def store(tmp_path: Path) -> ReleaseStore:
    return ReleaseStore.local(tmp_path / "store")


def test_inserts_deletes_and_updates_by_key_with_before_and_after(store: ReleaseStore, tmp_path: Path) -> None:
    v1 = _commit(
        store,
        tmp_path,
        "r1",
        [
            _table(
                [
                    {"id": 1, "area": 10.0, "owner": "A"},
                    {"id": 2, "area": 20.0, "owner": "B"},
                    {"id": 3, "area": 30.0, "owner": None},
                    {"id": 4, "area": 40.0, "owner": "D"},
                ]
            )
        ],
    )
    v2 = _commit(
        store,
        tmp_path,
        "r2",
        [
            _table(
                [
                    {"id": 1, "area": 10.0, "owner": "A"},
                    {"id": 3, "area": 30.0, "owner": "C"},
                    {"id": 4, "area": 41.5, "owner": "D"},
                    {"id": 5, "area": 50.0, "owner": "E"},
                ]
            )
        ],
    )

    result = compare(store, v1, v2)

    assert (result.added, result.removed, result.changed, result.unchanged) == (1, 1, 2, 1)
    assert (result.rows_before, result.rows_after, result.key) == (4, 4, ("id",))
    assert result.compared_columns == ("area", "owner")
    assert result.schema_changes == ()
    assert _rows(store, result) == [
        {"id": 2, "area": 20.0, "owner": "B", "_change_type": "delete"},
        {"id": 3, "area": 30.0, "owner": None, "_change_type": "update_preimage"},  # null → value is a change
        {"id": 3, "area": 30.0, "owner": "C", "_change_type": "update_postimage"},
        {"id": 4, "area": 40.0, "owner": "D", "_change_type": "update_preimage"},
        {"id": 4, "area": 41.5, "owner": "D", "_change_type": "update_postimage"},
        {"id": 5, "area": 50.0, "owner": "E", "_change_type": "insert"},
    ]
    assert result.change_rows == 6
    # The change file keeps the release's column types and is cached outside the sealed release folders.
    assert pq.read_schema(store.backend.local_path(result.file_key)).field("id").type == pa.int64()
    assert result.file_key.startswith(f"{DATASET}/_changes/v1-v2/changes-")
    assert store.verify(DATASET, 1) == [] and store.verify(DATASET, 2) == []


def test_identical_releases_have_no_changes_and_an_empty_change_file(store: ReleaseStore, tmp_path: Path) -> None:
    rows = [{"id": i, "area": float(i), "owner": None} for i in range(5)]
    v1 = _commit(store, tmp_path, "r1", [_table(rows)])
    v2 = _commit(store, tmp_path, "r2", [_table(list(reversed(rows)))])  # same rows, another order

    result = compare(store, v1, v2)

    assert (result.added, result.removed, result.changed, result.unchanged) == (0, 0, 0, 5)
    assert _rows(store, result) == []
    assert "_change_type" in pq.read_schema(store.backend.local_path(result.file_key)).names


def test_files_carried_over_with_the_same_digest_are_not_read(
    store: ReleaseStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = _table([{"id": i, "area": 1.0, "owner": "x"} for i in range(100)])
    late = _table([{"id": 100, "area": 2.0, "owner": "y"}, {"id": 101, "area": 3.0, "owner": "z"}])
    v1 = _commit(store, tmp_path, "r1", [old, late])
    newer = _table([{"id": 101, "area": 3.5, "owner": "z"}, {"id": 102, "area": 4.0, "owner": "w"}])
    v2 = _commit(store, tmp_path, "r2", [old, _table([{"id": 100, "area": 2.0, "owner": "y"}]), newer])
    opened: list[tuple[int, str]] = []
    real = changes._local

    def spy(store_: ReleaseStore, release: Release, path: str, scratch: Path) -> Path:
        opened.append((release.version, path))
        return real(store_, release, path, scratch)

    monkeypatch.setattr(changes, "_local", spy)

    result = compare(store, v1, v2)

    assert result.files_skipped == 1
    assert (1, "data/part-00000.parquet") not in opened and (2, "data/part-00000.parquet") not in opened
    assert (result.added, result.removed, result.changed) == (1, 0, 1)
    assert [(r["id"], r["_change_type"]) for r in _rows(store, result)] == [
        (101, "update_preimage"),
        (101, "update_postimage"),
        (102, "insert"),
    ]


def test_schema_changes_are_reported_and_rows_compared_on_common_columns(store: ReleaseStore, tmp_path: Path) -> None:
    before = pa.schema([("id", pa.int64()), ("area", pa.int64()), ("owner", pa.string()), ("old", pa.string())])
    after = pa.schema(
        [("id", pa.int64()), ("area", pa.float64()), ("owner", pa.string()), ("seen", pa.timestamp("us"))]
    )
    v1 = _commit(
        store,
        tmp_path,
        "r1",
        [
            _table(
                [{"id": 1, "area": 10, "owner": "A", "old": "gone"}, {"id": 2, "area": 20, "owner": "B", "old": "x"}],
                before,
            )
        ],
    )
    seen = dt.datetime(2026, 11, 2, 8, 30)
    v2 = _commit(
        store,
        tmp_path,
        "r2",
        [
            _table(
                [
                    {"id": 1, "area": 10.0, "owner": "A", "seen": seen},
                    {"id": 2, "area": 20.5, "owner": "B", "seen": None},
                ],
                after,
            )
        ],
    )

    result = compare(store, v1, v2)

    assert {(c.column, c.change, c.before, c.after) for c in result.schema_changes} == {
        ("area", "retyped", "integer", "number"),
        ("seen", "added", None, "datetime"),
        ("old", "removed", "string", None),
    }
    assert result.compared_columns == ("area", "owner")
    # The retyped column is compared in its new type: 10 → 10.0 is no change, 20 → 20.5 is; the added
    # column (seen) and the removed one (old) do not make every row a change.
    assert (result.added, result.removed, result.changed) == (0, 0, 1)
    assert _rows(store, result) == [  # the newer release's columns; the older row cast into them
        {"id": 2, "area": 20.0, "owner": "B", "seen": None, "_change_type": "update_preimage"},
        {"id": 2, "area": 20.5, "owner": "B", "seen": None, "_change_type": "update_postimage"},
    ]


def test_a_repeated_key_is_refused_with_its_value(store: ReleaseStore, tmp_path: Path) -> None:
    v1 = _commit(store, tmp_path, "r1", [_table([{"id": 1, "area": 1.0, "owner": "a"}])])
    v2 = _commit(
        store, tmp_path, "r2", [_table([{"id": 7, "area": 1.0, "owner": "a"}, {"id": 7, "area": 2.0, "owner": "b"}])]
    )

    with pytest.raises(ChangesError, match=r"parcels_demo v2: key \(id=7\) appears 2 times"):
        compare(store, v1, v2)


def test_a_key_column_missing_from_the_data_is_named(store: ReleaseStore, tmp_path: Path) -> None:
    v1 = _commit(store, tmp_path, "r1", [_table([{"id": 1, "area": 1.0, "owner": "a"}])])
    v2 = _commit(store, tmp_path, "r2", [_table([{"id": 2, "area": 1.0, "owner": "a"}])])

    with pytest.raises(ChangesError, match=r"v1: key column.s. parcel_no missing"):
        compare(store, v1, v2, key=["parcel_no"])


def test_releases_must_be_given_older_first(store: ReleaseStore, tmp_path: Path) -> None:
    v1 = _commit(store, tmp_path, "r1", [_table([{"id": 1, "area": 1.0, "owner": "a"}])])
    v2 = _commit(store, tmp_path, "r2", [_table([{"id": 2, "area": 1.0, "owner": "a"}])])

    with pytest.raises(ChangesError, match=r"older release with a newer one \(got v2 → v1\)"):
        compare(store, v2, v1)


def test_compound_keys(store: ReleaseStore, tmp_path: Path) -> None:
    schema = pa.schema([("station", pa.string()), ("at", pa.timestamp("us")), ("pm25", pa.float64())])
    t0 = dt.datetime(2026, 11, 1, 0)
    t1 = dt.datetime(2026, 11, 1, 1)
    v1 = _commit(
        store,
        tmp_path,
        "r1",
        [_table([{"station": "HN1", "at": t0, "pm25": 30.0}, {"station": "HN2", "at": t0, "pm25": 40.0}], schema)],
        key=("station", "at"),
    )
    v2 = _commit(
        store,
        tmp_path,
        "r2",
        [
            _table(
                [
                    {"station": "HN1", "at": t0, "pm25": 31.0},
                    {"station": "HN2", "at": t0, "pm25": 40.0},
                    {"station": "HN1", "at": t1, "pm25": 35.0},
                ],
                schema,
            )
        ],
        key=("station", "at"),
    )

    result = compare(store, v1, v2)

    assert result.key == ("station", "at")
    assert [(r["station"], r["at"], r["pm25"], r["_change_type"]) for r in _rows(store, result)] == [
        ("HN1", t0, 30.0, "update_preimage"),
        ("HN1", t0, 31.0, "update_postimage"),
        ("HN1", t1, 35.0, "insert"),
    ]


def test_a_comparison_is_made_once_then_read_from_the_cache(
    store: ReleaseStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    v1 = _commit(store, tmp_path, "r1", [_table([{"id": 1, "area": 1.0, "owner": "a"}])])
    v2 = _commit(store, tmp_path, "r2", [_table([{"id": 1, "area": 2.0, "owner": "a"}])])
    first = compare(store, v1, v2)

    def fail(*args: Any) -> None:
        raise AssertionError("recomputed although cached")

    monkeypatch.setattr(changes, "_compute", fail)
    assert compare(store, v1, v2) == first

    # A summary that does not match the releases (tampered, or of another store) is not trusted.
    summary = f"{DATASET}/_changes/v1-v2/summary.json"
    doctored = json.loads(store.backend.get_bytes(summary))
    doctored["manifests"]["to"] = "0" * 64
    doctored["changed"] = 0
    store.backend.put_bytes(summary, json.dumps(doctored).encode())
    monkeypatch.undo()
    again = compare(store, v1, v2)
    assert again.changed == 1
    assert json.loads(store.backend.get_bytes(summary))["manifests"] == first.manifests
