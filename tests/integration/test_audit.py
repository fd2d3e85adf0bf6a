"""Auditing real releases: each kind of tampering is named by audit(), withdrawal, history and the CLI.

The releases are made once per module by the real pipeline from a SQLite unit (v1; v2 with one
quarantined row; a third run that fails validation), then each test tampers with its own copy.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
import sqlalchemy as sa

from datashare.exceptions import ReleaseError, ValidationFailed
from datashare.pipeline.stages import run_dataset
from datashare.quality.history import build_history, history_rows
from datashare.source.connections import connection_env_value
from datashare.store import DataFile, ReleaseStore, dumps, sha256_bytes
from datashare.store.audit import audit, repair
from datashare.store.ledger import Ledger
from datashare.store.withdrawals import withdraw, withdrawn_versions
from datashare.tools.cli import main
from units import monitoring

REPO = Path(__file__).resolve().parents[2]
DATASET = "air_quality_hourly"
EXTERNAL = re.compile(r"(?:https?:)?//[^\s\"'<>]|<(?:script|link|img|iframe)\b|url\(|@import", re.I)


def _dirty_newest_day(unit: str, rows: int) -> None:
    """Give ``rows`` observations of the newest day an impossible PM2.5 (a row-level rule breaks)."""
    engine = sa.create_engine(unit)
    with engine.begin() as conn:
        ids = conn.execute(sa.text(f"SELECT id FROM air_observations ORDER BY observed_at DESC, id LIMIT {rows}"))
        for (row_id,) in ids.all():
            conn.execute(sa.text("UPDATE air_observations SET pm25 = 5000 WHERE id = :i"), {"i": row_id})
    engine.dispose()


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A release store made by the pipeline: v1, v2 (one row quarantined), then a run that failed validation."""
    base = tmp_path_factory.mktemp("audit")
    unit = f"sqlite:///{base / 'unit.sqlite'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DATASHARE_HOME", str(REPO))
        mp.setenv("DATASHARE_RELEASE_ROOT", str(base / "releases"))
        mp.setenv("AIRFLOW_CONN_DATASHARE_SHARE", connection_env_value(f"sqlite:///{base / 'share.sqlite'}"))
        mp.setenv("AIRFLOW_CONN_MONRE_MONITORING", connection_env_value(unit))
        monitoring.generate(unit, stations=10, days=2)
        assert run_dataset(DATASET, run_id="first")["version"] == 1
        monitoring.append_day(unit)
        _dirty_newest_day(unit, 1)  # 1 of 240 rows: within the spec's 1% quarantine threshold
        assert run_dataset(DATASET, run_id="second")["version"] == 2
        monitoring.append_day(unit)
        _dirty_newest_day(unit, 24)  # 10%: over the threshold, the run fails and publishes nothing
        with pytest.raises(ValidationFailed):
            run_dataset(DATASET, run_id="third")
    return base / "releases"


@pytest.fixture
def store(template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ReleaseStore]:
    """This test's own copy of the releases, also where the CLI looks."""
    root = tmp_path / "releases"
    shutil.copytree(template, root)
    monkeypatch.setenv("DATASHARE_HOME", str(REPO))
    monkeypatch.setenv("DATASHARE_RELEASE_ROOT", str(root))
    yield ReleaseStore.local(root)


def entry_path(store: ReleaseStore, seq: int) -> Path:
    return Path(store.backend.describe(f"_ledger/{seq:012d}.json"))


def seq_of(store: ReleaseStore, event: str, version: int) -> int:
    return next(
        e.seq for e in Ledger(store.backend).entries() if e.body["event"] == event and e.body["version"] == version
    )


def test_intact_store_has_no_finding(store: ReleaseStore) -> None:
    events = [e.body["event"] for e in Ledger(store.backend).entries()]
    assert events == [
        "validation_passed", "release_committed", "sql_published",
        "validation_passed", "release_committed", "sql_published",
        "validation_failed",
    ]  # fmt: skip
    assert store.versions(DATASET) == [1, 2]
    assert audit(store) == []


def test_changed_byte_in_a_parquet_file(store: ReleaseStore) -> None:
    path = Path(store.backend.describe(f"{DATASET}/v1/data/part-00000.parquet"))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))

    [finding] = audit(store)
    assert re.fullmatch(
        rf"{DATASET} v1: data/part-00000\.parquet sha256 [0-9a-f]{{64}} != manifest [0-9a-f]{{64}}", finding
    )


def test_edited_manifest(store: ReleaseStore) -> None:
    path = Path(store.backend.describe(f"{DATASET}/v2/datapackage.json"))
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest["datashare"]["rows"] += 1
    path.write_bytes(dumps(manifest))

    assert audit(store) == [f"{DATASET} v2: datapackage.json was edited after commit (sha256 differs)"]


def test_manifest_and_commit_record_rewritten_together(store: ReleaseStore) -> None:
    """Consistent with each other, so only the ledger's copy of the manifest hash can tell."""
    path = Path(store.backend.describe(f"{DATASET}/v2/datapackage.json"))
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest["datashare"]["rows"] += 1
    path.write_bytes(dumps(manifest))
    record_path = Path(store.backend.describe(f"{DATASET}/_log/2.json"))
    record = json.loads(record_path.read_text(encoding="utf-8"))
    original, record["manifest_sha256"] = record["manifest_sha256"], sha256_bytes(dumps(manifest))
    record_path.write_bytes(dumps(record))

    seq = seq_of(store, "release_committed", 2)
    assert audit(store) == [
        f"{DATASET} v2: ledger entry {seq} records manifest sha256 {original}, "
        f"but the commit record says {record['manifest_sha256']}"
    ]


def test_deleted_ledger_entry(store: ReleaseStore) -> None:
    seq = seq_of(store, "release_committed", 1)
    entry_path(store, seq).unlink()

    findings = audit(store)
    assert f"ledger: entry {seq} is missing (next is {seq + 1})" in findings
    assert f"ledger: entry {seq + 1} does not chain to entry {seq - 1} (entries in between are missing)" in findings
    assert f"{DATASET} v1: release with no ledger entry (no release_committed entry records it)" in findings


def test_edited_ledger_entry(store: ReleaseStore) -> None:
    seq = seq_of(store, "release_committed", 1)
    body = json.loads(entry_path(store, seq).read_text(encoding="utf-8"))
    body["rows"] += 1000
    entry_path(store, seq).write_bytes(dumps(body))

    assert audit(store) == [
        f"ledger: entry {seq + 1} does not chain to entry {seq}: entry {seq} was edited, or entries were reordered"
    ]


def test_reordered_ledger_entries(store: ReleaseStore) -> None:
    a, b = entry_path(store, 2), entry_path(store, 3)
    first, second = a.read_bytes(), b.read_bytes()
    a.write_bytes(second)
    b.write_bytes(first)

    findings = audit(store)
    assert "ledger: entry 2 says it is entry 3" in findings and "ledger: entry 3 says it is entry 2" in findings
    assert any(f.startswith("ledger: entry 2 does not chain to entry 1") for f in findings)


class _KilledAfterRecord(ReleaseStore):
    """A writer killed right after its commit record: no ledger entry, no head update."""

    def _after_commit(self, dataset_id: str, release: Any, state: Any) -> None:
        pass


def test_release_with_no_ledger_entry_is_found_then_repaired(store: ReleaseStore, tmp_path: Path) -> None:
    v2 = store.release(DATASET, 2)
    data = tmp_path / "rogue.parquet"
    store.backend.download(f"{DATASET}/v2/data/part-00000.parquet", data)
    report = tmp_path / "validation"
    report.mkdir()
    store.backend.download(f"{DATASET}/v2/validation/report.html", report / "report.html")
    manifest = json.loads(json.dumps(v2.manifest))
    manifest["datashare"]["files"] = manifest["datashare"]["files"][:1]
    result = _KilledAfterRecord(store.backend).commit(
        DATASET,
        run_key="rogue",
        files=[DataFile.from_path(data, "part-00000.parquet", v2.files[0]["rows"])],
        manifest=manifest,
        validation_dir=report,
        content_sha256="rogue",
    )
    assert result.created and result.version == 3

    assert audit(store) == [f"{DATASET} v3: release with no ledger entry (no release_committed entry records it)"]
    repaired = repair(store)
    assert len(repaired) == 1 and repaired[0].startswith(f"{DATASET} v3: release_committed ledger entry was missing")
    assert audit(store) == []
    entry = Ledger(store.backend).entries(DATASET)[-1]
    assert entry.body["event"] == "release_committed" and entry.body["version"] == 3 and entry.body["repaired"]


def test_deleted_release_and_missing_report(store: ReleaseStore) -> None:
    Path(store.backend.describe(f"{DATASET}/_log/2.json")).unlink()
    Path(store.backend.describe(f"{DATASET}/v1/validation/report.html")).unlink()

    seq = seq_of(store, "release_committed", 2)
    assert audit(store) == [
        f"{DATASET}: the head says v2 exists, the commit log ends at 1",
        f"{DATASET} v1: validation/report.html is missing (auditors cannot see what was checked)",
        f"{DATASET} v2: ledger entry {seq} records this release, but the store has no commit record",
    ]


def test_withdrawal_is_a_ledger_entry_and_keeps_the_files(store: ReleaseStore) -> None:
    entry = withdraw(store, DATASET, 1, "  Sai  đơn vị đo PM2.5\n")

    body = json.loads(entry_path(store, entry.seq).read_text(encoding="utf-8"))
    assert body["event"] == "release_withdrawn" and body["version"] == 1
    assert body["reason"] == "Sai đơn vị đo PM2.5"
    assert body["manifest_sha256"] == store.record(DATASET, 1)["manifest_sha256"]
    assert withdrawn_versions(store, DATASET) == {1: "Sai đơn vị đo PM2.5"}
    for key in ("v1/data/part-00000.parquet", "v1/datapackage.json", "v1/validation/report.html", "_log/1.json"):
        assert store.backend.exists(f"{DATASET}/{key}"), key
    assert audit(store) == []

    with pytest.raises(ReleaseError, match=r"air_quality_hourly v1 is already withdrawn \(reason: Sai đơn vị đo"):
        withdraw(store, DATASET, 1, "again")
    with pytest.raises(ReleaseError, match="needs a reason"):
        withdraw(store, DATASET, 2, " \n ")
    with pytest.raises(ReleaseError, match="air_quality_hourly has no release v9"):
        withdraw(store, DATASET, 9, "no such thing")
    assert withdrawn_versions(store, DATASET) == {1: "Sai đơn vị đo PM2.5"}


def test_withdraw_command_requires_a_reason(store: ReleaseStore, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["withdraw", DATASET, "--version", "2"])
    assert exc.value.code == 2 and "--reason" in capsys.readouterr().err
    assert main(["withdraw", DATASET, "--version", "2", "--reason", "   "]) == 2
    assert "needs a reason" in capsys.readouterr().err
    assert main(["withdraw", DATASET, "--version", "2", "--reason", "nguồn gửi nhầm dữ liệu"]) == 0
    assert "Withdrew air_quality_hourly v2 (ledger entry 8): nguồn gửi nhầm dữ liệu" in capsys.readouterr().out
    assert withdrawn_versions(store, DATASET) == {2: "nguồn gửi nhầm dữ liệu"}


def test_verify_command_reports_findings_and_exit_code(store: ReleaseStore, capsys: pytest.CaptureFixture) -> None:
    assert main(["verify"]) == 0
    assert "verified 2 release(s) of 1 dataset(s) and the ledger: all intact" in capsys.readouterr().out
    Path(store.backend.describe(f"{DATASET}/_log/1.json")).write_text("{}", encoding="utf-8")
    assert main(["verify"]) == 1
    out = capsys.readouterr().out
    assert f"FAIL {DATASET} v1: datapackage.json was edited after commit" in out
    assert f"FAIL {DATASET} v2: commit record of v1 was rewritten" in out
    assert "finding(s)" in out


def test_verify_prints_the_ledger_head_and_checks_it_later(store: ReleaseStore, capsys: pytest.CaptureFixture) -> None:
    assert main(["verify"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("ledger head "))
    head = line.split()[2]
    seq = int(head.split(":")[0])
    assert main(["verify", "--anchor", head]) == 0
    capsys.readouterr()

    newest = entry_path(store, seq)
    body = json.loads(newest.read_text(encoding="utf-8"))
    body["summary"] = {"success": True}  # rewrite what the newest entry says
    newest.write_text(json.dumps(body, sort_keys=True), encoding="utf-8")
    assert main(["verify"]) == 1  # the ledger's head object still holds the entry's hash
    assert "records another hash for entry" in capsys.readouterr().out
    head_object = Path(store.backend.describe("_ledger/_head.json"))
    head_object.write_bytes(dumps({"seq": seq, "sha256": sha256_bytes(newest.read_bytes())}))
    assert main(["verify"]) == 0  # entry and head rewritten together: nothing after it holds its hash
    capsys.readouterr()
    assert main(["verify", "--anchor", head]) == 1
    out = capsys.readouterr().out
    assert f"FAIL ledger: entry {seq} differs from its hash anchored in --anchor" in out

    assert main(["verify", "--anchor", "12:abc"]) == 2
    assert "ledger anchor '12:abc' from --anchor: expected SEQ:SHA256" in capsys.readouterr().err


def test_rules_command_lists_every_rule_in_both_languages(store: ReleaseStore, capsys: pytest.CaptureFixture) -> None:
    assert main(["rules", DATASET]) == 0
    out = capsys.readouterr().out
    suite = json.loads((REPO / "expectations" / f"{DATASET}.json").read_text(encoding="utf-8"))
    assert out.startswith(f"{DATASET}: {len(suite['expectations'])} rules in expectations/{DATASET}.json")
    assert "Giá trị cột pm25" in out and "Values of column pm25" in out
    assert out.index("Giá trị cột pm25") < out.index("Values of column pm25")
    assert "[expect_column_values_to_be_between:pm25]" in out


def test_history_lists_failed_runs_too_and_every_page_is_offline(
    store: ReleaseStore, capsys: pytest.CaptureFixture
) -> None:
    assert main(["history", DATASET]) == 0
    out = capsys.readouterr().out
    assert "3 validation run(s) (2 passed, 1 failed) in 1 page(s)" in out
    index = Path(out.strip().splitlines()[-1])
    assert index.is_file() and index == Path(store.backend.describe(f"{DATASET}/_history/index.html"))
    page = index.read_text(encoding="utf-8")
    assert [m for m in re.findall(r"<td><code>([^<]*)</code></td>", page)] == ["third", "second", "first"]
    for href in re.findall(r'href="([^"]+)"', page):
        assert (index.parent / unquote(href)).is_file(), href  # report, result.json and manifest links resolve
    assert "../_validation/third/report.html" in page  # the failed run's report is reachable

    rows = history_rows([e.body for e in Ledger(store.backend).entries()], DATASET)
    assert [(r.run, r.passed, r.version, r.quarantined) for r in rows] == [
        ("third", False, None, 24),  # over the threshold: nothing set aside, the run failed
        ("second", True, 2, 1),
        ("first", True, 1, None),
    ]
    assert "expect_column_values_to_be_between:pm25" in rows[0].failed_rules
    assert rows[0].over_threshold and not rows[1].over_threshold
    assert "vượt ngưỡng" in page and "over threshold" in page

    result = build_history(store, DATASET)
    root = Path(store.backend.describe())
    html = [root / k for k in result.pages] + sorted(root.glob(f"{DATASET}/**/report.html"))
    assert len(html) == 6  # history, three run reports, two release reports
    for path in html:
        text = path.read_text(encoding="utf-8")
        assert not EXTERNAL.search(text), (path, EXTERNAL.search(text))
