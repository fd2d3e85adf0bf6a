"""The release store on a local directory: commit protocol, verification, concurrency and key safety."""

from __future__ import annotations

import json
import multiprocessing as mp
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datashare.backends import LocalBackend, sha256_file
from datashare.exceptions import ReleaseError
from datashare.manifest import build_manifest, content_sha256
from datashare.spec import DatasetSpec, load_spec
from datashare.store import CommitResult, DataFile, ReleaseStore, dumps, sha256_bytes
from datashare.typemap import arrow_schema

REAL = Path(__file__).resolve().parents[2] / "dags" / "datasets" / "air_quality_hourly.yaml"
DS = "air_quality_hourly"
PART = "part-00000.parquet"
# fork starts a worker in milliseconds; the workers touch only files, never pyarrow.
CTX = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
JOIN_TIMEOUT = 30


@pytest.fixture(scope="module")
def spec() -> DatasetSpec:
    return load_spec(REAL)


def stage(spec: DatasetSpec, folder: Path, seed: int, run_key: str = "run") -> dict[str, Any]:
    """Stage one small Parquet file whose content depends on ``seed``; returns commit() keyword arguments."""
    folder.mkdir(parents=True, exist_ok=True)
    n = 3
    table = pa.table(
        {
            "station_code": [f"S{seed:03d}-{i}" for i in range(n)],
            "station_name": ["Hà Nội"] * n,
            "province_code": ["01"] * n,
            "observed_at": [datetime(2025, 1, 1, i) for i in range(n)],
            "pm25": [float(seed + i) for i in range(n)],
            "pm10": [None] * n,
            "no2": [1.0] * n,
            "so2": [2.0] * n,
            "co": [3.0] * n,
            "o3": [4.0] * n,
            "aqi": [seed] * n,
        },
        schema=arrow_schema(spec),
    )
    path = folder / f"seed-{seed}.parquet"
    pq.write_table(table, path)
    files = [DataFile.from_path(path, PART, table.num_rows)]
    manifest = build_manifest(
        spec,
        files,
        run_key=run_key,
        created="2025-01-02T00:00:00Z",
        data_interval={"start": "2025-01-01T00:00:00Z", "end": "2025-01-02T00:00:00Z"},
        source_cursor=None,
        validation={"success": True},
        stats={},
        code="test",
    )
    return {
        "run_key": run_key,
        "files": files,
        "manifest": manifest,
        "validation_dir": None,
        "content_sha256": content_sha256(spec, files),
    }


def commit(store: ReleaseStore, staged: dict[str, Any]) -> CommitResult:
    return store.commit(DS, **staged)


# -- sequential protocol --------------------------------------------------------------------


def test_first_commit_writes_files_manifest_and_record(tmp_path: Path, spec: DatasetSpec) -> None:
    root = tmp_path / "store"
    store = ReleaseStore.local(root)
    staged = stage(spec, tmp_path / "stage", seed=1, run_key="r1")

    result = commit(store, staged)

    assert result.created
    assert result.version == 1
    assert store.versions(DS) == [1]
    assert store.datasets() == [DS]
    data = root / DS / "v1" / "data" / PART
    source = staged["files"][0]
    assert data.is_file()
    assert sha256_file(data) == source.sha256
    assert data.stat().st_size == source.bytes
    record_path = root / DS / "_log" / "1.json"
    manifest_path = root / DS / "v1" / "datapackage.json"
    record = json.loads(record_path.read_bytes())
    assert record["version"] == 1
    assert record["run"] == "r1"
    assert record["previous"] is None
    assert record["content_sha256"] == staged["content_sha256"]
    assert record["manifest_sha256"] == sha256_bytes(manifest_path.read_bytes())
    manifest = json.loads(manifest_path.read_bytes())
    assert manifest["version"] == "1"
    assert manifest["datashare"]["version"] == 1
    assert manifest["datashare"]["previous"] is None
    assert manifest["datashare"]["files"] == [
        {"path": f"data/{PART}", "bytes": source.bytes, "sha256": source.sha256, "rows": 3}
    ]
    release = store.latest(DS)
    assert release is not None
    assert release.version == 1
    assert release.rows == 3
    assert store.verify(DS, 1) == []


def test_same_content_makes_no_new_version(tmp_path: Path, spec: DatasetSpec) -> None:
    root = tmp_path / "store"
    store = ReleaseStore.local(root)
    commit(store, stage(spec, tmp_path / "a", seed=1, run_key="r1"))

    again = commit(store, stage(spec, tmp_path / "b", seed=1, run_key="r2"))

    assert not again.created
    assert again.version == 1
    assert store.versions(DS) == [1]
    assert not (root / DS / "v2").exists()


def test_new_content_makes_v2_chained_to_v1(tmp_path: Path, spec: DatasetSpec) -> None:
    root = tmp_path / "store"
    store = ReleaseStore.local(root)
    first = commit(store, stage(spec, tmp_path / "a", seed=1, run_key="r1"))
    assert first.release is not None

    second = commit(store, stage(spec, tmp_path / "b", seed=2, run_key="r2"))

    assert second.created
    assert second.version == 2
    assert store.versions(DS) == [1, 2]
    v1_record_sha = sha256_bytes((root / DS / "_log" / "1.json").read_bytes())
    expected = {
        "version": 1,
        "manifest_sha256": first.release.record["manifest_sha256"],
        "record_sha256": v1_record_sha,
    }
    assert store.record(DS, 2)["previous"] == expected
    assert store.release(DS, 2).manifest["datashare"]["previous"] == expected
    assert store.verify(DS, 1) == []
    assert store.verify(DS, 2) == []


def test_missing_release_is_an_error(tmp_path: Path) -> None:
    store = ReleaseStore.local(tmp_path)
    assert store.latest(DS) is None
    with pytest.raises(ReleaseError, match="no release v3"):
        store.release(DS, 3)


# -- verification ---------------------------------------------------------------------------


@pytest.fixture
def two_releases(tmp_path: Path, spec: DatasetSpec) -> tuple[ReleaseStore, Path]:
    root = tmp_path / "store"
    store = ReleaseStore.local(root)
    commit(store, stage(spec, tmp_path / "a", seed=1, run_key="r1"))
    commit(store, stage(spec, tmp_path / "b", seed=2, run_key="r2"))
    assert store.verify(DS, 1) == []
    assert store.verify(DS, 2) == []
    return store, root / DS


def test_verify_flipped_byte(two_releases: tuple[ReleaseStore, Path]) -> None:
    store, base = two_releases
    data = base / "v2" / "data" / PART
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    data.write_bytes(bytes(raw))

    findings = [str(f) for f in store.verify(DS, 2)]

    assert len(findings) == 1
    assert f"{DS} v2: data/{PART} sha256" in findings[0]
    assert store.verify(DS, 1) == []


def test_verify_edited_manifest(two_releases: tuple[ReleaseStore, Path]) -> None:
    store, base = two_releases
    path = base / "v1" / "datapackage.json"
    manifest = json.loads(path.read_bytes())
    manifest["datashare"]["rows"] = 999
    path.write_bytes(dumps(manifest))

    findings = [str(f) for f in store.verify(DS, 1)]

    assert findings == [f"{DS} v1: datapackage.json was edited after commit (sha256 differs)"]


def test_verify_deleted_data_file(two_releases: tuple[ReleaseStore, Path]) -> None:
    store, base = two_releases
    (base / "v1" / "data" / PART).unlink()

    findings = [str(f) for f in store.verify(DS, 1)]

    assert findings == [f"{DS} v1: data/{PART} is missing"]


def test_verify_rewritten_previous_record_is_reported_on_next_version(two_releases: tuple[ReleaseStore, Path]) -> None:
    store, base = two_releases
    path = base / "_log" / "1.json"
    record = json.loads(path.read_bytes())
    record["run"] = "someone_else"  # manifest_sha256 unchanged: v1 on its own still looks intact
    path.write_bytes(dumps(record))

    findings = [str(f) for f in store.verify(DS, 2)]

    assert findings == [f"{DS} v2: commit record of v1 was rewritten"]


def test_verify_missing_commit_record(two_releases: tuple[ReleaseStore, Path]) -> None:
    store, _base = two_releases
    findings = store.verify(DS, 7)
    assert len(findings) == 1
    assert "_log/7.json" in str(findings[0])


# -- keys -----------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["../outside", "a/../../outside", "/etc/passwd", "a//b", "./a", "", "a\\b"])
def test_unsafe_keys_are_refused(tmp_path: Path, key: str) -> None:
    backend = LocalBackend(tmp_path / "store")
    with pytest.raises(ReleaseError, match="invalid store key"):
        backend.put_bytes(key, b"x")
    with pytest.raises(ReleaseError, match="invalid store key"):
        backend.put_if_absent(key, b"x")
    with pytest.raises(ReleaseError, match="invalid store key"):
        backend.get_bytes(key)
    assert not (tmp_path / "outside").exists()


def test_unsafe_names_through_the_store_are_refused(tmp_path: Path) -> None:
    store = ReleaseStore.local(tmp_path / "store")
    with pytest.raises(ReleaseError, match="invalid store key"):
        store.save_run(DS, "../../escaped", {"finished_at": "x"})
    with pytest.raises(ReleaseError, match="invalid store key"):
        store.save_run("..", "r1", {"finished_at": "x"})
    assert list(tmp_path.rglob("*.json")) == []


def test_save_run_round_trip(tmp_path: Path) -> None:
    store = ReleaseStore.local(tmp_path)
    later = {"run": "r2", "finished_at": "2025-01-02T00:00:00Z", "rows": 5, "station": "Hà Nội"}
    earlier = {"run": "r1", "finished_at": "2025-01-01T00:00:00Z", "rows": 3}

    key = store.save_run(DS, "r2", later)
    store.save_run(DS, "r1", earlier)

    assert key == f"{DS}/_runs/r2.json"
    assert store.runs(DS) == [earlier, later]
    assert store.runs("other") == []


# -- concurrency ----------------------------------------------------------------------------


def _race_put_if_absent(root: str, key: str, payload: bytes, barrier: Any, results: Any) -> None:
    backend = LocalBackend(Path(root))
    barrier.wait(timeout=JOIN_TIMEOUT)
    results.put((payload, backend.put_if_absent(key, payload)))


def _race_commit(root: str, staged: dict[str, Any], barrier: Any, results: Any) -> None:
    store = ReleaseStore.local(Path(root))
    barrier.wait(timeout=JOIN_TIMEOUT)
    try:
        result = store.commit(DS, **staged)
    except Exception as exc:  # reported to the parent, which fails the test with it
        results.put((staged["run_key"], "error", repr(exc)))
    else:
        results.put((staged["run_key"], result.version, result.created))


def _run_all(target: Any, arglists: list[tuple[Any, ...]]) -> list[Any]:
    """Start one process per argument tuple behind a barrier; return what each put on the queue."""
    barrier = CTX.Barrier(len(arglists))
    results = CTX.Queue()
    procs = [CTX.Process(target=target, args=(*args, barrier, results)) for args in arglists]
    for p in procs:
        p.start()
    out = [results.get(timeout=JOIN_TIMEOUT) for _ in procs]
    for p in procs:
        p.join(timeout=JOIN_TIMEOUT)
        assert p.exitcode == 0
    return out


def test_put_if_absent_has_exactly_one_winner(tmp_path: Path) -> None:
    root = tmp_path / "store"
    key = "ds/_log/1.json"
    payloads = [f"writer {i} ".encode() * (i + 1) for i in range(8)]

    results = _run_all(_race_put_if_absent, [(str(root), key, p) for p in payloads])

    winners = [payload for payload, won in results if won]
    assert len(winners) == 1
    assert LocalBackend(root).get_bytes(key) == winners[0]
    assert [p.name for p in (root / "ds" / "_log").iterdir()] == ["1.json"]  # no temporary files left


def test_concurrent_commits_of_different_content(tmp_path: Path, spec: DatasetSpec) -> None:
    root = tmp_path / "store"
    staged = [stage(spec, tmp_path / f"s{i}", seed=i, run_key=f"run{i}") for i in range(4)]

    results = _run_all(_race_commit, [(str(root), s) for s in staged])

    assert all(r[1] != "error" for r in results), results
    assert sorted(r[1] for r in results) == [1, 2, 3, 4]
    assert all(r[2] is True for r in results)
    store = ReleaseStore.local(root)
    assert store.versions(DS) == [1, 2, 3, 4]
    by_version = {r[1]: r[0] for r in results}
    for version in (1, 2, 3, 4):
        assert store.verify(DS, version) == []
        release = store.release(DS, version)
        assert release.record["run"] == by_version[version]
        assert release.manifest["datashare"]["run"] == release.record["run"]


def test_concurrent_commits_of_same_content_make_one_version(tmp_path: Path, spec: DatasetSpec) -> None:
    root = tmp_path / "store"
    staged = [stage(spec, tmp_path / f"s{i}", seed=7, run_key=f"run{i}") for i in range(2)]

    results = _run_all(_race_commit, [(str(root), s) for s in staged])

    assert all(r[1] != "error" for r in results), results
    store = ReleaseStore.local(root)
    assert store.versions(DS) == [1]
    assert sorted(r[2] for r in results) == [False, True]
    assert store.verify(DS, 1) == []


def test_concurrent_commits_chain_each_version_to_the_one_before(tmp_path: Path, spec: DatasetSpec) -> None:
    root = tmp_path / "store"
    staged = [stage(spec, tmp_path / f"s{i}", seed=i, run_key=f"run{i}") for i in range(4)]

    _run_all(_race_commit, [(str(root), s) for s in staged])

    store = ReleaseStore.local(root)
    links = {v: (store.record(DS, v)["previous"] or {}).get("version") for v in store.versions(DS)}
    assert links == {1: None, 2: 1, 3: 2, 4: 3}


class PausedBackend(LocalBackend):
    """A local backend whose writer stops just before its commit record, as a slow writer would."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.paused = threading.Event()
        self.resume = threading.Event()

    def put_if_absent(self, key: str, data: bytes) -> bool:
        if "/_log/" in key:
            self.paused.set()
            assert self.resume.wait(JOIN_TIMEOUT)
        return super().put_if_absent(key, data)


def _overtake(
    tmp_path: Path, spec: DatasetSpec, seed_a: int, seed_b: int, *, claim_timeout_s: float = 60.0, pause: float = 0.5
) -> tuple[ReleaseStore, dict[str, CommitResult | Exception]]:
    """Writer A stops before its commit record of v1; writer B commits meanwhile; after ``pause`` s A goes on."""
    root = tmp_path / "store"
    slow = PausedBackend(root)
    staged = {
        "a": stage(spec, tmp_path / "a", seed=seed_a, run_key="a"),
        "b": stage(spec, tmp_path / "b", seed=seed_b, run_key="b"),
    }
    results: dict[str, CommitResult | Exception] = {}

    def run(name: str, store: ReleaseStore) -> None:
        try:
            results[name] = store.commit(DS, **staged[name])
        except Exception as exc:  # checked by the test
            results[name] = exc

    a = threading.Thread(target=run, args=("a", ReleaseStore(slow, claim_timeout_s=claim_timeout_s)))
    a.start()
    assert slow.paused.wait(JOIN_TIMEOUT)
    b = threading.Thread(target=run, args=("b", ReleaseStore(LocalBackend(root), claim_timeout_s=claim_timeout_s)))
    b.start()
    b.join(timeout=pause)  # B waits for A (or, past the claim timeout, goes on without it)
    slow.resume.set()
    a.join(timeout=JOIN_TIMEOUT)
    b.join(timeout=JOIN_TIMEOUT)
    assert not a.is_alive()
    assert not b.is_alive()
    return ReleaseStore.local(root), results


def test_a_writer_waits_for_a_pending_commit_of_the_same_content(tmp_path: Path, spec: DatasetSpec) -> None:
    store, results = _overtake(tmp_path, spec, seed_a=1, seed_b=1)

    a, b = results["a"], results["b"]
    assert isinstance(a, CommitResult)
    assert isinstance(b, CommitResult)
    assert (a.version, a.created) == (1, True)
    assert (b.version, b.created) == (1, False)
    assert store.versions(DS) == [1]


def test_a_writer_waits_for_a_pending_commit_and_chains_to_it(tmp_path: Path, spec: DatasetSpec) -> None:
    store, results = _overtake(tmp_path, spec, seed_a=1, seed_b=2)

    a, b = results["a"], results["b"]
    assert isinstance(a, CommitResult)
    assert isinstance(b, CommitResult)
    assert (a.version, b.version) == (1, 2)
    assert store.record(DS, 2)["previous"]["version"] == 1
    assert store.verify(DS, 2) == []


def test_a_writer_slower_than_the_claim_timeout_does_not_fork_the_chain(tmp_path: Path, spec: DatasetSpec) -> None:
    """A (claim 0.2 s old, upload still going) is taken for dead by B, which commits v2; A must not commit v1 then."""
    store, results = _overtake(tmp_path, spec, seed_a=1, seed_b=2, claim_timeout_s=0.2, pause=JOIN_TIMEOUT)

    assert isinstance(results["b"], CommitResult)
    assert results["b"].version == 2
    versions = store.versions(DS)
    links = [(store.record(DS, v)["previous"] or {}).get("version") for v in versions]
    assert links == [None, *versions[:-1]], f"versions {versions} link to {links}"


# -- interrupted commits --------------------------------------------------------------------


def _leave_claim(root: Path, version: int, run_key: str, claimed_at: str = "2025-01-01T00:00:00Z") -> None:
    """What a run killed between claiming and committing leaves: a claim and a partial data file."""
    folder = root / DS / f"v{version}"
    (folder / "data").mkdir(parents=True)
    (folder / "_claim.json").write_bytes(dumps({"run": run_key, "claimed_at": claimed_at}))
    (folder / "data" / PART).write_bytes(b"PAR1 truncated")


def _just_now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def test_commit_after_a_killed_run_skips_its_version(tmp_path: Path, spec: DatasetSpec) -> None:
    root = tmp_path / "store"
    _leave_claim(root, 1, "dead")
    store = ReleaseStore.local(root)
    assert store.versions(DS) == []

    result = commit(store, stage(spec, tmp_path / "s", seed=1, run_key="next"))

    assert result.created
    assert result.version == 2
    assert store.versions(DS) == [2]
    latest = store.latest(DS)
    assert latest is not None
    assert latest.version == 2
    assert latest.record["previous"] is None
    assert store.verify(DS, 2) == []
    assert json.loads((root / DS / "v1" / "_claim.json").read_bytes())["run"] == "dead"


def test_a_fresh_claim_is_waited_for_until_the_claim_timeout(tmp_path: Path, spec: DatasetSpec) -> None:
    root = tmp_path / "store"
    _leave_claim(root, 1, "dead", claimed_at=_just_now())
    store = ReleaseStore(LocalBackend(root), claim_timeout_s=0.5)
    staged = stage(spec, tmp_path / "s", seed=1, run_key="next")

    started = time.monotonic()
    result = commit(store, staged)

    assert time.monotonic() - started >= 0.4  # waited for the claim to age past the timeout
    assert (result.version, result.created) == (2, True)
    assert store.versions(DS) == [2]


def test_retry_of_the_same_run_takes_back_its_claim(tmp_path: Path, spec: DatasetSpec) -> None:
    root = tmp_path / "store"
    _leave_claim(root, 1, "r1", claimed_at=_just_now())  # an Airflow retry comes well within the claim timeout
    store = ReleaseStore.local(root)

    result = commit(store, stage(spec, tmp_path / "s", seed=1, run_key="r1"))

    assert result.created
    assert result.version == 1
    assert store.versions(DS) == [1]
    assert store.verify(DS, 1) == []  # the partial file was replaced


def test_a_committed_claim_is_never_taken_back(tmp_path: Path, spec: DatasetSpec) -> None:
    """The same run committing new content again moves on to v2 instead of rewriting v1."""
    root = tmp_path / "store"
    store = ReleaseStore.local(root)
    commit(store, stage(spec, tmp_path / "a", seed=1, run_key="r1"))

    result = commit(store, stage(spec, tmp_path / "b", seed=2, run_key="r1"))

    assert result.version == 2
    assert store.verify(DS, 1) == []
    assert store.verify(DS, 2) == []
