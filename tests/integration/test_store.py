"""The release store on every backend (local folder, S3): commit protocol, verification, concurrency, key safety.

Each test runs once per backend through the ``site``/``backend`` fixtures of ``conftest.py``; tampering
goes around the backend (file writes, or raw boto3 calls), as an intruder's would.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datashare.exceptions import ReleaseError
from datashare.source.typemap import arrow_schema
from datashare.spec import DatasetSpec, load_spec
from datashare.store import CommitResult, DataFile, ReleaseStore, dumps, sha256_bytes
from datashare.store.backends import Backend
from datashare.store.manifest import build_manifest, content_sha256

REAL = Path(__file__).resolve().parents[2] / "dags" / "datasets" / "air_quality_hourly.yaml"
DS = "air_quality_hourly"
PART = "part-00000.parquet"
# fork starts a worker in milliseconds; each worker makes its own backend (and S3 client), never pyarrow.
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


def test_first_commit_writes_files_manifest_and_record(site, backend: Backend, tmp_path: Path, spec) -> None:
    store = ReleaseStore(backend)
    staged = stage(spec, tmp_path / "stage", seed=1, run_key="r1")

    result = commit(store, staged)

    assert result.created
    assert result.version == 1
    assert store.versions(DS) == [1]
    assert store.datasets() == [DS]
    data_key = f"{DS}/v1/data/{PART}"
    source = staged["files"][0]
    assert data_key in site.keys(f"{DS}/v1/data")
    data = site.read(data_key)
    assert sha256_bytes(data) == source.sha256
    assert len(data) == source.bytes
    record_bytes = site.read(f"{DS}/_log/1.json")
    manifest_bytes = site.read(f"{DS}/v1/datapackage.json")
    record = json.loads(record_bytes)
    assert record["version"] == 1
    assert record["run"] == "r1"
    assert record["previous"] is None
    assert record["content_sha256"] == staged["content_sha256"]
    assert record["manifest_sha256"] == sha256_bytes(manifest_bytes)
    manifest = json.loads(manifest_bytes)
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


def test_same_content_makes_no_new_version(site, backend: Backend, tmp_path: Path, spec) -> None:
    store = ReleaseStore(backend)
    commit(store, stage(spec, tmp_path / "a", seed=1, run_key="r1"))

    again = commit(store, stage(spec, tmp_path / "b", seed=1, run_key="r2"))

    assert not again.created
    assert again.version == 1
    assert store.versions(DS) == [1]
    assert site.keys(f"{DS}/v2") == []


def test_new_content_makes_v2_chained_to_v1(site, backend: Backend, tmp_path: Path, spec) -> None:
    store = ReleaseStore(backend)
    first = commit(store, stage(spec, tmp_path / "a", seed=1, run_key="r1"))
    assert first.release is not None

    second = commit(store, stage(spec, tmp_path / "b", seed=2, run_key="r2"))

    assert second.created
    assert second.version == 2
    assert store.versions(DS) == [1, 2]
    v1_record_sha = sha256_bytes(site.read(f"{DS}/_log/1.json"))
    expected = {
        "version": 1,
        "manifest_sha256": first.release.record["manifest_sha256"],
        "record_sha256": v1_record_sha,
    }
    assert store.record(DS, 2)["previous"] == expected
    assert store.release(DS, 2).manifest["datashare"]["previous"] == expected
    assert store.verify(DS, 1) == []
    assert store.verify(DS, 2) == []


def test_missing_release_is_an_error(backend: Backend) -> None:
    store = ReleaseStore(backend)
    assert store.latest(DS) is None
    with pytest.raises(ReleaseError, match="no release v3"):
        store.release(DS, 3)


# -- verification ---------------------------------------------------------------------------


@pytest.fixture
def two_releases(site, backend: Backend, tmp_path: Path, spec: DatasetSpec) -> tuple[ReleaseStore, Any]:
    store = ReleaseStore(backend)
    commit(store, stage(spec, tmp_path / "a", seed=1, run_key="r1"))
    commit(store, stage(spec, tmp_path / "b", seed=2, run_key="r2"))
    assert store.verify(DS, 1) == []
    assert store.verify(DS, 2) == []
    return store, site


def test_verify_flipped_byte(two_releases) -> None:
    store, site = two_releases
    key = f"{DS}/v2/data/{PART}"
    raw = bytearray(site.read(key))
    raw[len(raw) // 2] ^= 0x01
    site.write(key, bytes(raw))

    findings = [str(f) for f in store.verify(DS, 2)]

    assert len(findings) == 1
    assert f"{DS} v2: data/{PART} sha256" in findings[0]
    assert store.verify(DS, 1) == []


def test_verify_edited_manifest(two_releases) -> None:
    store, site = two_releases
    key = f"{DS}/v1/datapackage.json"
    manifest = json.loads(site.read(key))
    manifest["datashare"]["rows"] = 999
    site.write(key, dumps(manifest))

    findings = [str(f) for f in store.verify(DS, 1)]

    assert findings == [f"{DS} v1: datapackage.json was edited after commit (sha256 differs)"]


def test_verify_deleted_data_file(two_releases) -> None:
    store, site = two_releases
    site.delete(f"{DS}/v1/data/{PART}")

    findings = [str(f) for f in store.verify(DS, 1)]

    assert findings == [f"{DS} v1: data/{PART} is missing"]


def test_verify_rewritten_previous_record_is_reported_on_next_version(two_releases) -> None:
    store, site = two_releases
    key = f"{DS}/_log/1.json"
    record = json.loads(site.read(key))
    record["run"] = "someone_else"  # manifest_sha256 unchanged: v1 on its own still looks intact
    site.write(key, dumps(record))

    findings = [str(f) for f in store.verify(DS, 2)]

    assert findings == [f"{DS} v2: commit record of v1 was rewritten"]


def test_verify_missing_commit_record(two_releases) -> None:
    store, _site = two_releases
    findings = store.verify(DS, 7)
    assert len(findings) == 1
    assert "_log/7.json" in str(findings[0])


# -- keys -----------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["../outside", "a/../../outside", "/etc/passwd", "a//b", "./a", "", "a\\b"])
def test_unsafe_keys_are_refused(site, backend: Backend, key: str) -> None:
    with pytest.raises(ReleaseError, match="invalid store key"):
        backend.put_bytes(key, b"x")
    with pytest.raises(ReleaseError, match="invalid store key"):
        backend.put_if_absent(key, b"x")
    with pytest.raises(ReleaseError, match="invalid store key"):
        backend.get_bytes(key)
    assert site.everything() == []  # nothing written, inside the root or outside it


def test_unsafe_names_through_the_store_are_refused(site, backend: Backend) -> None:
    store = ReleaseStore(backend)
    with pytest.raises(ReleaseError, match="invalid store key"):
        store.save_run(DS, "../../escaped", {"finished_at": "x"})
    with pytest.raises(ReleaseError, match="invalid store key"):
        store.save_run("..", "r1", {"finished_at": "x"})
    assert [k for k in site.everything() if k.endswith(".json")] == []


def test_save_run_round_trip(backend: Backend) -> None:
    store = ReleaseStore(backend)
    later = {"run": "r2", "finished_at": "2025-01-02T00:00:00Z", "rows": 5, "station": "Hà Nội"}
    earlier = {"run": "r1", "finished_at": "2025-01-01T00:00:00Z", "rows": 3}

    key = store.save_run(DS, "r2", later)
    store.save_run(DS, "r1", earlier)

    assert key == f"{DS}/_runs/r2.json"
    assert store.runs(DS) == [earlier, later]
    assert store.runs("other") == []


# -- concurrency ----------------------------------------------------------------------------
# One worker process per writer, each with a backend (and S3 client) of its own, released together.


def _ready(make: Callable[[], Backend]) -> Backend:
    """A worker's own backend, its connection made before the start line so the race is tight."""
    backend = make()
    backend.exists("_warmup")
    return backend


def _race_put_if_absent(make: Callable[[], Backend], key: str, payload: bytes, barrier: Any, results: Any) -> None:
    backend = _ready(make)
    barrier.wait(timeout=JOIN_TIMEOUT)
    try:
        results.put((payload, backend.put_if_absent(key, payload)))
    except Exception as exc:  # reported to the parent, which fails the test with it
        results.put((payload, repr(exc)))


def _race_commit(make: Callable[[], Backend], staged: dict[str, Any], barrier: Any, results: Any) -> None:
    store = ReleaseStore(_ready(make))
    barrier.wait(timeout=JOIN_TIMEOUT)
    try:
        result = store.commit(DS, **staged)
    except Exception as exc:  # reported to the parent, which fails the test with it, traceback included
        import traceback

        results.put((staged["run_key"], "error", f"{exc!r}\n{traceback.format_exc()}"))
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


def test_put_if_absent_has_exactly_one_winner(site) -> None:
    key = "ds/_log/1.json"
    payloads = [f"writer {i} ".encode() * (i + 1) for i in range(8)]

    results = _run_all(_race_put_if_absent, [(site.make, key, p) for p in payloads])

    assert all(isinstance(won, bool) for _payload, won in results), results
    winners = [payload for payload, won in results if won]
    assert len(winners) == 1
    assert site.make().get_bytes(key) == winners[0]
    assert site.keys("ds/_log") == [key]  # no temporary files left


@pytest.mark.parametrize("writers", [2, 4, 8])
def test_racing_writers_of_different_content_make_versions_1_to_n_chained(
    site, tmp_path: Path, spec: DatasetSpec, writers: int
) -> None:
    staged = [stage(spec, tmp_path / f"s{i}", seed=i, run_key=f"run{i}") for i in range(writers)]

    results = _run_all(_race_commit, [(site.make, s) for s in staged])

    assert all(r[1] != "error" for r in results), results
    assert sorted(r[1] for r in results) == list(range(1, writers + 1))
    assert all(r[2] is True for r in results)
    store = ReleaseStore(site.make())
    assert store.versions(DS) == list(range(1, writers + 1))
    by_version = {r[1]: r[0] for r in results}
    for version in store.versions(DS):
        assert store.verify(DS, version) == []
        release = store.release(DS, version)
        assert release.record["run"] == by_version[version]
        assert release.manifest["datashare"]["run"] == release.record["run"]
        assert (release.record["previous"] or {}).get("version") == (version - 1 or None)
    committed = [e.body["version"] for e in store.ledger.entries(DS) if e.body["event"] == "release_committed"]
    assert sorted(committed) == list(range(1, writers + 1))  # each release has exactly one ledger entry


@pytest.mark.parametrize("writers", [2, 4, 8])
def test_racing_writers_of_the_same_content_make_one_version(
    site, tmp_path: Path, spec: DatasetSpec, writers: int
) -> None:
    staged = [stage(spec, tmp_path / f"s{i}", seed=7, run_key=f"run{i}") for i in range(writers)]

    results = _run_all(_race_commit, [(site.make, s) for s in staged])

    assert all(r[1] != "error" for r in results), results
    store = ReleaseStore(site.make())
    assert store.versions(DS) == [1]
    assert sorted(r[2] for r in results) == [False] * (writers - 1) + [True]
    assert {r[1] for r in results} == {1}
    assert store.verify(DS, 1) == []
    assert site.keys(f"{DS}/v2") == []  # the losers wrote nothing


class PausedBackend:
    """Any backend whose writer stops just before its commit record, as a slow writer would."""

    def __init__(self, inner: Backend, *, renew: bool = True) -> None:
        self.inner = inner
        self.renew = renew
        self.paused = threading.Event()
        self.resume = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def put_bytes(self, key: str, data: bytes) -> None:
        if "/_claims/" in key and not self.renew:
            raise OSError("frozen: this writer's lease is not renewed")
        self.inner.put_bytes(key, data)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        if "/_log/" in key and not self.paused.is_set():
            self.paused.set()
            assert self.resume.wait(JOIN_TIMEOUT)
        return self.inner.put_if_absent(key, data)


def _overtake(
    site: Any,
    tmp_path: Path,
    spec: DatasetSpec,
    seed_a: int,
    seed_b: int,
    *,
    lease_s: float = 60.0,
    pause: float = 0.5,
    renew: bool = True,
) -> tuple[ReleaseStore, dict[str, CommitResult | Exception]]:
    """Writer A stops before its commit record of v1; writer B commits meanwhile; after ``pause`` s A goes on."""
    slow = PausedBackend(site.make(), renew=renew)
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

    a = threading.Thread(target=run, args=("a", ReleaseStore(slow, lease_s=lease_s)))
    a.start()
    assert slow.paused.wait(JOIN_TIMEOUT)
    b = threading.Thread(target=run, args=("b", ReleaseStore(site.make(), lease_s=lease_s)))
    b.start()
    b.join(timeout=pause)  # B waits for A (or, once A's lease ran out, closes v1 and goes on)
    slow.resume.set()
    a.join(timeout=JOIN_TIMEOUT)
    b.join(timeout=JOIN_TIMEOUT)
    assert not a.is_alive()
    assert not b.is_alive()
    return ReleaseStore(site.make()), results


def test_a_writer_waits_for_a_pending_commit_of_the_same_content(site, tmp_path: Path, spec: DatasetSpec) -> None:
    store, results = _overtake(site, tmp_path, spec, seed_a=1, seed_b=1)

    a, b = results["a"], results["b"]
    assert isinstance(a, CommitResult)
    assert isinstance(b, CommitResult)
    assert (a.version, a.created) == (1, True)
    assert (b.version, b.created) == (1, False)
    assert store.versions(DS) == [1]


def test_a_writer_waits_for_a_pending_commit_and_chains_to_it(site, tmp_path: Path, spec: DatasetSpec) -> None:
    store, results = _overtake(site, tmp_path, spec, seed_a=1, seed_b=2)

    a, b = results["a"], results["b"]
    assert isinstance(a, CommitResult)
    assert isinstance(b, CommitResult)
    assert (a.version, b.version) == (1, 2)
    assert store.record(DS, 2)["previous"]["version"] == 1
    assert store.verify(DS, 2) == []


def test_a_slow_writer_that_renews_its_lease_is_never_taken_over(site, tmp_path: Path, spec: DatasetSpec) -> None:
    """A pauses for ten leases; its lease thread keeps the claim alive, so B waits instead of closing v1."""
    store, results = _overtake(site, tmp_path, spec, seed_a=1, seed_b=2, lease_s=0.4, pause=4.0)

    a, b = results["a"], results["b"]
    assert isinstance(a, CommitResult) and isinstance(b, CommitResult)
    assert (a.version, b.version) == (1, 2)
    assert store.versions(DS) == [1, 2]


def test_a_frozen_writer_is_fenced_off_not_forked(site, tmp_path: Path, spec: DatasetSpec) -> None:
    """A stops renewing (frozen); B closes v1 once the lease runs out and commits v2; A then cannot commit v1."""
    store, results = _overtake(site, tmp_path, spec, seed_a=1, seed_b=2, lease_s=0.3, pause=JOIN_TIMEOUT, renew=False)

    a, b = results["a"], results["b"]
    assert isinstance(b, CommitResult) and b.version == 2
    assert isinstance(a, CommitResult) and a.version == 3  # A planned again on top of v2
    assert store.versions(DS) == [2, 3]
    assert store.record(DS, 1)["skipped"] is True
    links = [(store.record(DS, v)["previous"] or {}).get("version") for v in store.versions(DS)]
    assert links == [None, 2]
    assert all(store.verify(DS, v) == [] for v in store.versions(DS))


class InterleavedBackend:
    """Any backend that lets another writer commit right before its ``n``-th claim."""

    def __init__(self, inner: Backend, n: int, interject: Callable[[], object]) -> None:
        self.inner = inner
        self.n = n
        self.interject = interject
        self.claims = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        if "/_claims/" in key:
            self.claims += 1
            if self.claims == self.n:
                self.interject()
        return self.inner.put_if_absent(key, data)


def test_a_commit_landing_between_planning_and_claiming_is_chained_to(site, tmp_path: Path, spec) -> None:
    """Deterministic form of a race the concurrent-commit tests hit now and then (wider windows on S3)."""
    commit(ReleaseStore(site.make()), stage(spec, tmp_path / "v1", seed=1, run_key="r1"))
    other = stage(spec, tmp_path / "other", seed=2, run_key="other")
    racing = InterleavedBackend(site.make(), 1, lambda: commit(ReleaseStore(site.make()), other))

    result = commit(ReleaseStore(racing), stage(spec, tmp_path / "mine", seed=3, run_key="mine"))

    store = ReleaseStore(site.make())
    assert store.versions(DS) == [1, 2, 3]
    assert result.version == 3
    links = {v: (store.record(DS, v)["previous"] or {}).get("version") for v in store.versions(DS)}
    assert links == {1: None, 2: 1, 3: 2}
    assert store.verify(DS, 3) == []


def test_a_writer_that_lost_the_race_with_the_same_rows_publishes_nothing(site, tmp_path: Path, spec) -> None:
    """The winner commits what this writer planned; on its next plan the content is equal: no new version."""
    commit(ReleaseStore(site.make()), stage(spec, tmp_path / "v1", seed=1, run_key="r1"))
    same = stage(spec, tmp_path / "same", seed=2, run_key="winner")
    racing = InterleavedBackend(site.make(), 1, lambda: commit(ReleaseStore(site.make()), same))

    result = commit(ReleaseStore(racing), stage(spec, tmp_path / "mine", seed=2, run_key="loser"))

    store = ReleaseStore(site.make())
    assert store.versions(DS) == [1, 2]
    assert (result.version, result.created) == (2, False)
    assert store.record(DS, 2)["run"] == "winner"


# -- interrupted commits --------------------------------------------------------------------


def _dead_pid() -> int:
    """The pid of a process of this machine that has exited."""
    proc = CTX.Process(target=int)
    proc.start()
    proc.join()
    return int(proc.pid or 0)


def _leave_claim(site: Any, version: int, run_key: str, **identity: Any) -> None:
    """What a writer killed between claiming and committing leaves: its claim and a partial data file."""
    from datashare.store.releases import _machine

    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    claim = {"run": run_key, "attempt": "dead", "claimed_at": now, "renewed_at": now, "lease_s": 60.0, **_machine()}
    claim.update(identity)
    site.write(f"{DS}/_claims/{version}.json", dumps(claim))
    site.write(f"{DS}/v{version}/data/{PART}", b"PAR1 truncated")


def test_a_claim_whose_process_is_gone_is_closed_at_once(site, backend: Backend, tmp_path: Path, spec) -> None:
    _leave_claim(site, 1, "dead", pid=_dead_pid())
    store = ReleaseStore(backend)
    assert store.versions(DS) == []

    started = time.monotonic()
    result = commit(store, stage(spec, tmp_path / "s", seed=1, run_key="next"))

    assert time.monotonic() - started < 30  # not the claim's 60 s lease: the writer is shown dead
    assert (result.version, result.created) == (2, True)
    assert store.versions(DS) == [2]
    assert store.record(DS, 1)["skipped"] is True and store.record(DS, 1)["claimed_by"] == "dead"
    latest = store.latest(DS)
    assert latest is not None and latest.version == 2 and latest.record["previous"] is None
    assert store.verify(DS, 2) == []
    assert site.keys(f"{DS}/v1") == []  # the dead writer's partial files were swept


def test_a_claim_from_another_machine_is_waited_for_until_its_lease_runs_out(
    site, backend: Backend, tmp_path: Path, spec
) -> None:
    _leave_claim(site, 1, "elsewhere", boot_id="another-machine", lease_s=0.6)
    store = ReleaseStore(backend)

    started = time.monotonic()
    result = commit(store, stage(spec, tmp_path / "s", seed=1, run_key="next"))

    assert time.monotonic() - started >= 0.4  # the lease had to run out first
    assert (result.version, result.created) == (2, True)
    assert store.versions(DS) == [2]


def test_a_committed_claim_is_never_taken_back(backend: Backend, tmp_path: Path, spec: DatasetSpec) -> None:
    """The same run committing new content again moves on to v2 instead of rewriting v1."""
    store = ReleaseStore(backend)
    commit(store, stage(spec, tmp_path / "a", seed=1, run_key="r1"))

    result = commit(store, stage(spec, tmp_path / "b", seed=2, run_key="r1"))

    assert result.version == 2
    assert store.verify(DS, 1) == []
    assert store.verify(DS, 2) == []


def test_a_tombstone_without_its_head_update_is_read_as_a_closed_number(site, backend: Backend, tmp_path, spec) -> None:
    """Killed right after writing a tombstone: readers still see no release there, and a stale head is corrected."""
    store = ReleaseStore(backend)
    commit(store, stage(spec, tmp_path / "a", seed=1, run_key="r1"))
    site.write(f"{DS}/_log/2.json", dumps({"dataset_id": DS, "version": 2, "skipped": True, "claimed_by": "x"}))

    assert ReleaseStore(site.make()).versions(DS) == [1]
    assert ReleaseStore(site.make()).latest(DS).version == 1  # type: ignore[union-attr]
    result = commit(store, stage(spec, tmp_path / "b", seed=2, run_key="r2"))
    assert result.version == 3 and store.versions(DS) == [1, 3]
    assert store.record(DS, 3)["previous"]["version"] == 1


def test_a_head_ahead_of_or_behind_the_log_is_corrected(site, backend: Backend, tmp_path, spec) -> None:
    store = ReleaseStore(backend)
    commit(store, stage(spec, tmp_path / "a", seed=1, run_key="r1"))
    commit(store, stage(spec, tmp_path / "b", seed=2, run_key="r2"))
    site.write(f"{DS}/_head.json", dumps({"top": 9, "skipped": [], "ledgered": {}}))
    assert ReleaseStore(site.make()).versions(DS) == [1, 2]
    site.write(f"{DS}/_head.json", dumps({"top": 0, "skipped": [], "ledgered": {}}))
    assert ReleaseStore(site.make()).versions(DS) == [1, 2]
    site.write(f"{DS}/_head.json", b"\xff not json")
    assert ReleaseStore(site.make()).versions(DS) == [1, 2]
