"""Everything an auditor relies on is hashed (issue #12): an attacker's edits are findings, never a pass.

A store holds two releases of ``air_quality_hourly`` (each with its validation report and result) and
one of another dataset. Each case tampers with it around the backend, as an intruder would, then:

- ``audit()`` (and ``ReleaseStore.verify`` where the damage is in the release) names the dataset,
  the version and the file or field, and ``datashare verify`` prints the same ``FAIL`` line;
- readers of the other dataset are untouched, and readers of the tampered one answer the truth or a
  clear ``ReleaseError``;
- ``datashare verify --repair`` does not turn the tampering into a clean store.

The ``site`` fixture of ``conftest.py`` runs a representative subset on S3 too; symbolic links are
local only (object stores have none).
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datashare.exceptions import ReleaseError
from datashare.source.typemap import arrow_schema
from datashare.spec import DatasetSpec, load_spec
from datashare.store import DataFile, ReleaseStore, dumps, sha256_bytes
from datashare.store.audit import audit
from datashare.store.ledger import Ledger
from datashare.store.manifest import build_manifest, content_sha256
from datashare.store.withdrawals import withdraw
from datashare.tools.cli import main

REPO = Path(__file__).resolve().parents[2]
SPEC = REPO / "dags" / "datasets" / "air_quality_hourly.yaml"
DS = "air_quality_hourly"
OTHER = "water_quality_daily"
PART = "part-00000.parquet"


@pytest.fixture(scope="module")
def spec() -> DatasetSpec:
    return load_spec(SPEC)


def _stage(spec: DatasetSpec, folder: Path, seed: int, run_key: str) -> dict[str, Any]:
    """commit() keyword arguments for one small Parquet file and a validation report and result."""
    folder.mkdir(parents=True)
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
    path = folder / "data.parquet"
    pq.write_table(table, path)
    validation = folder / "validation"
    validation.mkdir()
    (validation / "report.html").write_text(f"<html><body>run {run_key}: 12 rules passed</body></html>\n")
    (validation / "result.json").write_text(json.dumps({"success": True, "run": run_key}) + "\n")
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
        "validation_dir": validation,
        "content_sha256": content_sha256(spec, files) + f"-{run_key}",
    }


@pytest.fixture
def store(site: Any, spec: DatasetSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ReleaseStore:
    """v1 and v2 of ``DS`` and v1 of ``OTHER``, intact; the CLI looks at the same store."""
    store = ReleaseStore(site.make())
    for dataset_id, seeds in ((DS, (1, 2)), (OTHER, (7,))):
        for seed in seeds:
            staged = _stage(spec, tmp_path / "stage" / f"{dataset_id}-{seed}", seed, f"{dataset_id}-{seed}")
            assert store.commit(dataset_id, **staged).created
    monkeypatch.setenv("DATASHARE_HOME", str(REPO))
    # main() calls logging.basicConfig: without this, it keeps an earlier test's (closed) captured stderr
    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    if site.kind == "local":
        monkeypatch.setenv("DATASHARE_RELEASE_ROOT", str(site.root))
    else:
        monkeypatch.setenv("DATASHARE_RELEASE_ROOT", f"s3://{site.bucket}/{site.prefix}")
        monkeypatch.setenv("DATASHARE_S3_ENDPOINT_URL", store.backend.endpoint_url)
    assert audit(store) == []
    return store


# -- tampering -------------------------------------------------------------------------------------


def _edit(site: Any, key: str, **changes: Any) -> dict[str, Any]:
    body = json.loads(site.read(key))
    body.update(changes)
    site.write(key, dumps(body))
    return body


def _seq(site: Any, event: str, dataset_id: str, version: int) -> int:
    for key in reversed(site.keys("_ledger")):
        if key.rsplit("/", 1)[-1][0].isdigit():
            body = json.loads(site.read(key))
            if (body["event"], body["dataset_id"], body["version"]) == (event, dataset_id, version):
                return int(body["seq"])
    raise AssertionError(f"no {event} entry for {dataset_id} v{version}")


def _ledger_key(seq: int) -> str:
    return f"_ledger/{seq:012d}.json"


def _tip(site: Any) -> int:
    return max(int(k.rsplit("/", 1)[-1][:12]) for k in site.keys("_ledger") if k.rsplit("/", 1)[-1][0].isdigit())


def _local(site: Any) -> Path:
    if site.kind != "local":
        pytest.skip("symbolic links exist only in a local store")
    return Path(site.root)


def _link_to_copy(site: Any, key: str, where: Path) -> None:
    """Replace a file or folder of the store by a symbolic link to an identical copy at ``where``."""
    path = _local(site) / key
    where.parent.mkdir(parents=True, exist_ok=True)
    if path.is_dir():
        shutil.copytree(path, where)
        shutil.rmtree(path)
    else:
        shutil.copy2(path, where)
        path.unlink()
    path.symlink_to(where)


@dataclass
class Case:
    tamper: Callable[[Any, Path], None]
    """What the attacker does (``site``, a scratch folder outside the store)."""
    expect: list[tuple[str | None, int | None, str]]
    """Findings that must be there: (dataset or None for the ledger, version or None, a substring)."""
    in_verify: bool = True
    """Whether ``ReleaseStore.verify`` of the first expected release names it too (not only the audit)."""
    versions: list[int] | None = field(default_factory=lambda: [1, 2])
    """What ``versions(DS)`` must answer (None: anything, but no other exception than ``ReleaseError``)."""
    hint: bool = False
    """A lie in a hint: once readers have rewritten it, it may be gone (ignored rather than found)."""
    repairable: bool = False
    """``verify --repair`` may legitimately clear it (a hint, or a genuine half-done withdrawal)."""


def _rec(field_name: str, value: Any, version: int = 2) -> Callable[[Any, Path], None]:
    return lambda site, _tmp: _edit(site, f"{DS}/_log/{version}.json", **{field_name: value}) and None


def _write(key: str, data: bytes) -> Callable[[Any, Path], None]:
    return lambda site, _tmp: site.write(key, data)


def _delete(*keys: str) -> Callable[[Any, Path], None]:
    def tamper(site: Any, _tmp: Path) -> None:
        for key in keys:
            site.delete(key)

    return tamper


def _add_copy(source: str, key: str) -> Callable[[Any, Path], None]:
    return lambda site, _tmp: site.write(key, site.read(source))


def _hide_newest(site: Any, _tmp: Path) -> None:
    """Turn v2 into a well-formed tombstone and make the head agree: consumers fall back to v1."""
    site.write(
        f"{DS}/_log/2.json",
        dumps({"dataset_id": DS, "version": 2, "skipped": True, "claimed_by": "x", "attempt": "y", "skipped_at": "z"}),
    )
    site.write(f"{DS}/_head.json", dumps({"top": 2, "skipped": [2], "ledgered": {}, "updated_at": "z"}))


def _reseal_bait(site: Any, _tmp: Path) -> None:
    """Edit v2's record, point its ledger tip past its entry and drop the head: repair must not re-seal it."""
    _edit(site, f"{DS}/_log/2.json", committed_at="2020-01-01T00:00:00.000Z", ledger_tip=_tip(site))
    site.delete(f"{DS}/_head.json")


def _reseal_edited_report(site: Any, _tmp: Path) -> None:
    """Delete v2's ledger entry (as if its writer was killed) and rewrite its report: no repair may seal that."""
    site.delete(_ledger_key(_seq(site, "release_committed", DS, 2)))
    site.write(f"{DS}/v2/validation/report.html", b"<html>all good</html>\n")
    site.delete(f"{DS}/_head.json")


def _garble_entry(site: Any, _tmp: Path) -> None:
    site.write(_ledger_key(_seq(site, "release_committed", DS, 2)), b"not json")
    site.delete(f"{DS}/_head.json")


def _stale_ledger_hint(site: Any, _tmp: Path) -> None:
    site.write("_ledger/_head.json", dumps({"seq": 1, "sha256": sha256_bytes(site.read(_ledger_key(1)))}))


def _marker(version: int, manifest_sha256: Any) -> Callable[[Any, Path], None]:
    body = {"version": version, "reason": "forged", "manifest_sha256": manifest_sha256, "at": "2025-01-01T00:00:00Z"}
    return _write(f"{DS}/_withdrawn/{version}.json", dumps(body))


def _marker_with_real_hash(site: Any, tmp: Path) -> None:
    digest = json.loads(site.read(f"{DS}/_log/2.json"))["manifest_sha256"]
    _marker(2, digest)(site, tmp)


def _link(key: str, inside: bool = False) -> Callable[[Any, Path], None]:
    def tamper(site: Any, tmp: Path) -> None:
        where = (_local(site) / "_copies" if inside else tmp / "elsewhere") / key
        _link_to_copy(site, key, where)

    return tamper


REC = f"{DS}/_log/2.json"
EDITED = "the commit record was edited after commit"
CASES: dict[str, Case] = {
    # 1. the commit records
    "record2-committed_at": Case(_rec("committed_at", "2024-01-01T00:00:00.000Z"), [(DS, 2, EDITED)], False),
    "record2-run": Case(_rec("run", "someone-else"), [(DS, 2, EDITED)], False),
    "record2-content_sha256": Case(_rec("content_sha256", "0" * 64), [(DS, 2, EDITED)], False),
    "record2-manifest_sha256": Case(
        _rec("manifest_sha256", "0" * 64),
        [(DS, 2, "datapackage.json was edited after commit"), (DS, 2, "but the commit record says " + "0" * 64)],
    ),
    "record2-previous": Case(_rec("previous", None), [(DS, 2, EDITED)], False),
    "record2-previous-hash": Case(
        _rec("previous", {"version": 1, "manifest_sha256": "0" * 64, "record_sha256": "0" * 64}),
        [(DS, 2, "commit record of v1 was rewritten"), (DS, 2, EDITED)],
    ),
    "record2-ledger_tip": Case(_rec("ledger_tip", 0), [(DS, 2, EDITED)], False),
    "record2-names-v3": Case(_rec("version", 3), [(DS, 2, "the commit record names air_quality_hourly v3")], False),
    "record2-made-a-tombstone": Case(_hide_newest, [(DS, 2, "tombstone")], False, versions=None),
    "record1-committed_at": Case(
        _rec("committed_at", "2024-01-01T00:00:00.000Z", 1),
        [(DS, 1, EDITED), (DS, 2, "commit record of v1 was rewritten")],
        False,
    ),
    "record1-manifest_sha256": Case(
        _rec("manifest_sha256", "0" * 64, 1),
        [(DS, 1, "datapackage.json was edited after commit"), (DS, 2, "commit record of v1 was rewritten")],
    ),
    # 2. files added to a release folder
    "added-data-part": Case(
        _add_copy(f"{DS}/v2/data/{PART}", f"{DS}/v2/data/part-99999.parquet"),
        [(DS, 2, "data/part-99999.parquet is in the release folder but not in its manifest")],
    ),
    "added-notes": Case(_write(f"{DS}/v2/notes.txt", b"hi\n"), [(DS, 2, "notes.txt is in the release folder")]),
    "added-validation-page": Case(
        _write(f"{DS}/v1/validation/extra.html", b"<p>ok</p>"), [(DS, 1, "validation/extra.html is in the release")]
    ),
    # 3. the evidence an auditor reads
    "report-rewritten": Case(
        _write(f"{DS}/v2/validation/report.html", b"<html>all 12 rules passed, nothing quarantined</html>\n"),
        [(DS, 2, "validation/report.html is ")],
    ),
    "report-same-size": Case(
        lambda site, _t: site.write(
            f"{DS}/v2/validation/report.html", site.read(f"{DS}/v2/validation/report.html").replace(b"12", b"99")
        ),
        [(DS, 2, "validation/report.html sha256")],
    ),
    "result-rewritten": Case(
        _write(f"{DS}/v2/validation/result.json", b'{"success": true}\n'), [(DS, 2, "validation/result.json is ")]
    ),
    # 5. unreadable objects
    "manifest-not-json": Case(_write(f"{DS}/v2/datapackage.json", b"{not json"), [(DS, 2, "datapackage.json is not")]),
    "manifest-a-list": Case(
        _write(f"{DS}/v2/datapackage.json", b"[1, 2]\n"), [(DS, 2, "datapackage.json is not a JSON object")]
    ),
    "manifest-empty": Case(_write(f"{DS}/v2/datapackage.json", b""), [(DS, 2, "datapackage.json is not valid JSON")]),
    "manifest-odd-object": Case(
        _write(f"{DS}/v2/datapackage.json", dumps({"datashare": {"files": {"path": 1}, "evidence": "x"}})),
        [(DS, 2, "datapackage.json was edited after commit"), (DS, 2, "does not list its files")],
    ),
    "record-not-utf8": Case(_write(REC, b"\xff\xfe{\x00\x00"), [(DS, 2, "_log/2.json is not UTF-8 text")]),
    "record-not-json": Case(_write(REC, b"{'version': 2}"), [(DS, 2, "_log/2.json is not valid JSON")]),
    "record-a-list": Case(_write(REC, b"[2]"), [(DS, 2, "_log/2.json is not a JSON object")]),
    "ledger-entry-not-json": Case(
        _garble_entry,
        [(None, None, "is not a JSON object"), (DS, 2, "release with no ledger entry")],
        False,
    ),
    # 6. deletions
    "deleted-data-file": Case(_delete(f"{DS}/v2/data/{PART}"), [(DS, 2, f"data/{PART} is missing")]),
    "deleted-report": Case(_delete(f"{DS}/v2/validation/report.html"), [(DS, 2, "validation/report.html is missing")]),
    "deleted-manifest": Case(_delete(f"{DS}/v2/datapackage.json"), [(DS, 2, "v2/datapackage.json")]),
    "deleted-older-record": Case(
        _delete(f"{DS}/_log/1.json"),
        [(DS, None, "commit record 1 is missing"), (DS, 2, "previous release v1 has no commit record")],
        False,
        versions=None,  # the head still counts v1; reading it is a clear ReleaseError
    ),
    # 7. hints that lie
    "head-top-too-high": Case(
        _write(f"{DS}/_head.json", dumps({"top": 9, "skipped": [], "ledgered": {}})),
        [(DS, None, "the head says v9 exists")],
        False,
        hint=True,
        repairable=True,
    ),
    "head-top-too-low": Case(
        _write(f"{DS}/_head.json", dumps({"top": 1, "skipped": [], "ledgered": {}})), [], False, hint=True
    ),
    "head-skips-newest": Case(
        _write(f"{DS}/_head.json", dumps({"top": 2, "skipped": [2], "ledgered": {"1": 2, "2": 4}})),
        [(DS, None, "the head lists closed numbers [2]")],
        False,
        hint=True,
        repairable=True,
    ),
    "head-skips-below-top": Case(
        _write(f"{DS}/_head.json", dumps({"top": 1, "skipped": [1, 2], "ledgered": {}})),
        [(DS, None, "the head lists closed numbers")],
        False,
        hint=True,
        repairable=True,
    ),
    "head-skipped-a-string": Case(
        _write(f"{DS}/_head.json", dumps({"top": 2, "skipped": "12", "ledgered": {}})), [], False, hint=True
    ),
    "head-ledgered-a-list": Case(
        _write(f"{DS}/_head.json", dumps({"top": 2, "skipped": [], "ledgered": ["x"]})), [], False, hint=True
    ),
    "head-not-json": Case(_write(f"{DS}/_head.json", b"\xff"), [], False, hint=True),
    "head-dropped-and-record-resealable": Case(_reseal_bait, [(DS, 2, EDITED)], False),
    "entry-deleted-and-report-rewritten": Case(
        _reseal_edited_report,
        [(DS, 2, "validation/report.html is "), (DS, 2, "release with no ledger entry")],
    ),
    "ledger-hint-too-high": Case(
        _write("_ledger/_head.json", dumps({"seq": 999, "sha256": "0" * 64})),
        [(None, None, "_ledger/_head.json names entry 999")],
        False,
    ),
    "ledger-hint-stale-but-consistent": Case(_stale_ledger_hint, [], False, hint=True),
    "ledger-hint-not-json": Case(
        _write("_ledger/_head.json", b"[]"), [(None, None, "_ledger/_head.json is not a JSON object")], False
    ),
    # 8. withdrawal markers
    "marker-for-no-release": Case(_marker(7, "0" * 64), [(DS, 7, "withdrawal marker")], False, versions=[1, 2]),
    "marker-with-wrong-hash": Case(_marker(2, "0" * 64), [(DS, 2, "withdrawal marker")], False),
    "marker-unreadable": Case(_write(f"{DS}/_withdrawn/2.json", b"nope"), [(DS, 2, "withdrawal marker")], False),
    "marker-like-a-killed-withdrawal": Case(
        _marker_with_real_hash, [(DS, 2, "no release_withdrawn ledger entry")], False, repairable=True
    ),
}

LINK_CASES: dict[str, Case] = {
    # 4. symbolic links to identical copies: the bytes are equal, the store no longer holds them
    "link-data-file": Case(_link(f"{DS}/v2/data/{PART}"), [(DS, 2, f"v2/data/{PART} is a symbolic link")]),
    "link-data-file-inside-root": Case(
        _link(f"{DS}/v2/data/{PART}", inside=True), [(DS, 2, f"v2/data/{PART} is a symbolic link")]
    ),
    "link-report": Case(
        _link(f"{DS}/v2/validation/report.html"), [(DS, 2, "v2/validation/report.html is a symbolic link")]
    ),
    "link-data-folder": Case(_link(f"{DS}/v2/data"), [(DS, 2, "v2/data is a symbolic link")]),
    "link-release-folder": Case(_link(f"{DS}/v2"), [(DS, 2, "v2 is a symbolic link")]),
    "link-release-folder-inside-root": Case(_link(f"{DS}/v2", inside=True), [(DS, 2, "v2 is a symbolic link")]),
    "link-record": Case(_link(REC, inside=True), [(DS, 2, "_log/2.json is a symbolic link")]),
    "link-log-folder": Case(_link(f"{DS}/_log", inside=True), [(DS, 2, "_log is a symbolic link")]),
    "link-dataset-folder": Case(_link(DS), [(DS, 2, f"{DS} is a symbolic link")], versions=None),
    "link-ledger-entry": Case(
        lambda site, tmp: _link(_ledger_key(_seq(site, "release_committed", DS, 2)), inside=True)(site, tmp),
        [(None, None, "is a symbolic link")],
        False,
    ),
}


# -- checking --------------------------------------------------------------------------------------


def _matches(finding: str, dataset_id: str | None, version: int | None, needle: str) -> bool:
    if dataset_id is None:
        where = "ledger: "
    else:
        where = f"{dataset_id} v{version}: " if version is not None else f"{dataset_id}: "
    return finding.startswith(where) and needle in finding


def _missing(findings: list[str], case: Case) -> list[tuple[str | None, int | None, str]]:
    return [e for e in case.expect if not any(_matches(f, *e) for f in findings)]


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    code = main(argv)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err, captured.err
    return code, [line.removeprefix("FAIL ") for line in captured.out.splitlines() if line.startswith("FAIL ")]


def _readers_answer(store: ReleaseStore, case: Case) -> None:
    """The other dataset reads as before; the tampered one answers the truth or a clear ReleaseError."""
    assert OTHER in store.datasets()
    latest = store.latest(OTHER)
    assert latest is not None and latest.version == 1 and latest.record["run"] == f"{OTHER}-7"
    assert store.verify(OTHER, 1) == []
    assert store.withdrawn(OTHER) == {}
    try:
        versions = store.versions(DS)
        if case.versions is not None:
            assert versions == case.versions
        newest = store.latest(DS)
        if case.versions is not None:
            assert newest is not None and newest.version == case.versions[-1]
    except ReleaseError as exc:
        assert DS in str(exc)


def check(store: ReleaseStore, site: Any, case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    case.tamper(site, tmp_path)

    findings = audit(store)
    if case.expect and not (case.hint and not findings):
        assert not _missing(findings, case), findings
        if case.in_verify:
            dataset_id, version, needle = case.expect[0]
            assert dataset_id is not None and version is not None
            assert any(needle in str(f) for f in store.verify(dataset_id, version)), store.verify(dataset_id, version)
    elif not case.expect:
        assert findings == [], findings  # a stale hint, correctly ignored
    _readers_answer(store, case)

    code, failed = _cli(["verify"], capsys)
    if case.expect and not case.hint:
        assert code == 1 and not _missing(failed, case), failed
    else:
        assert code == (1 if failed else 0) and (not failed or not _missing(failed, case)), failed

    code, failed = _cli(["verify", "--repair"], capsys)
    after = audit(store)
    if case.expect and not case.repairable and not case.hint:
        assert code == 1 and not _missing(failed, case), failed
        assert not _missing(after, case), after
    _readers_answer(store, case)
    assert not [f for f in after if f.startswith(f"{OTHER} ")], after


@pytest.mark.parametrize("site", ["local"], indirect=True)
@pytest.mark.parametrize("name", list(CASES))
def test_tampering_is_a_finding(
    name: str, store: ReleaseStore, site: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    check(store, site, CASES[name], tmp_path, capsys)


@pytest.mark.parametrize("site", ["local"], indirect=True)
@pytest.mark.parametrize("name", list(LINK_CASES))
def test_symbolic_link_to_an_identical_copy_is_a_finding(
    name: str, store: ReleaseStore, site: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    check(store, site, LINK_CASES[name], tmp_path, capsys)


S3_SUBSET = [
    "record2-committed_at",
    "record1-committed_at",
    "added-data-part",
    "report-same-size",
    "record-not-utf8",
    "manifest-empty",
    "deleted-manifest",
    "head-skips-newest",
    "head-dropped-and-record-resealable",
    "marker-for-no-release",
]


@pytest.mark.parametrize("site", ["s3"], indirect=True)
@pytest.mark.parametrize("name", S3_SUBSET)
def test_tampering_is_a_finding_on_s3(
    name: str, store: ReleaseStore, site: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    check(store, site, CASES[name], tmp_path, capsys)


@pytest.mark.parametrize("site", ["local"], indirect=True)
def test_the_report_and_result_are_sealed_by_the_manifest(store: ReleaseStore, site: Any) -> None:
    for version in (1, 2):
        release = store.release(DS, version)
        sealed = {e["path"]: e["sha256"] for e in release.evidence}
        assert sealed == {
            "validation/report.html": sha256_bytes(site.read(f"{DS}/v{version}/validation/report.html")),
            "validation/result.json": sha256_bytes(site.read(f"{DS}/v{version}/validation/result.json")),
        }
        record = store.record(DS, version)
        assert record["manifest_sha256"] == sha256_bytes(site.read(f"{DS}/v{version}/datapackage.json"))


@pytest.mark.parametrize("site", ["local"], indirect=True)
def test_a_genuine_withdrawal_stays_clean_and_repair_completes_a_killed_one(
    store: ReleaseStore, site: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    withdraw(store, DS, 1, "wrong unit")
    assert audit(store) == []
    seq = _seq(site, "release_withdrawn", DS, 1)
    site.delete(_ledger_key(seq))  # the newest entry: as if the writer was killed after the marker
    site.write("_ledger/_head.json", dumps({"seq": seq - 1, "sha256": sha256_bytes(site.read(_ledger_key(seq - 1)))}))
    assert audit(store) == [f"{DS} v1: withdrawn in the store, but no release_withdrawn ledger entry (repairable)"]
    code, _ = _cli(["verify", "--repair"], capsys)
    assert code == 0 and audit(store) == []
    assert [e.body["event"] for e in Ledger(store.backend).entries(DS)][-1] == "release_withdrawn"
