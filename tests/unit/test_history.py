"""The validation history pages: every run from the ledger, newest first, paged, offline, escaped, one ledger pass."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

from datashare.quality.history import build_history, history_rows, page_name, render_history
from datashare.store import ReleaseStore
from datashare.store.backends import LocalBackend
from datashare.store.ledger import Ledger

DATASET = "air_quality_hourly"
PM25_RULE = "expect_column_values_to_be_between:pm25"
HOSTILE = '<script>alert("x")</script>'
EXTERNAL = re.compile(r"(?:https?:)?//[^\s\"'<>]|<(?:script|link|img|iframe)\b|url\(|@import", re.I)


def summary(*, ok: bool, rows: int = 100, quarantined: int | None = None) -> dict:
    return {
        "success": ok,
        "rows": rows,
        "evaluated": 12,
        "passed": 12 if ok else 10,
        "failed": 0 if ok else 2,
        "failed_rules": [] if ok else [PM25_RULE, "expect_table_row_count_to_be_between"],
        "quarantine": None if quarantined is None else {"rows": quarantined, "share": 0.01, "threshold": 0.05},
    }


def validated(ledger: Ledger, run: str, *, ok: bool, dataset: str = DATASET, **kw) -> None:
    event = "validation_passed" if ok else "validation_failed"
    report = f"{dataset}/_validation/{run}/report.html"
    ledger.append(event, dataset_id=dataset, run=run, report=report, summary=summary(ok=ok, **kw))


@pytest.fixture
def store(tmp_path: Path) -> ReleaseStore:
    """Three runs: a release, a failure, a quarantined release that was later withdrawn; plus another dataset."""
    store = ReleaseStore(LocalBackend(tmp_path))
    ledger = Ledger(store.backend)
    validated(ledger, "run-1", ok=True, rows=1200)
    ledger.append("release_committed", dataset_id=DATASET, version=1, run="run-1", manifest_sha256="a" * 64)
    validated(ledger, "run-2", ok=False, rows=1300)
    validated(ledger, "other-run", ok=False, dataset="water_levels")
    validated(ledger, "run-3", ok=True, rows=1290, quarantined=10)
    ledger.append("release_committed", dataset_id=DATASET, version=2, run="run-3", manifest_sha256="b" * 64)
    ledger.append("release_withdrawn", dataset_id=DATASET, version=2, reason="sai đơn vị đo", manifest_sha256="b" * 64)
    return store


def runs_in(page: str) -> list[str]:
    return re.findall(r"<td><code>([^<]*)</code></td>", page)


def test_rows_come_from_the_ledger_newest_first(store: ReleaseStore) -> None:
    rows = history_rows([e.body for e in Ledger(store.backend).entries()], DATASET)

    assert [r.run for r in rows] == ["run-3", "run-2", "run-1"]
    assert [r.passed for r in rows] == [True, False, True]
    assert [r.version for r in rows] == [2, None, 1]
    assert [r.rows for r in rows] == [1290, 1300, 1200]
    assert [r.quarantined for r in rows] == [10, None, None]
    assert rows[1].failed_rules == (PM25_RULE, "expect_table_row_count_to_be_between")
    assert rows[0].withdrawn == "sai đơn vị đo" and rows[2].withdrawn is None


def test_index_page_lists_every_run_with_verdict_counts_and_links(store: ReleaseStore) -> None:
    result = build_history(store, DATASET)

    assert result.index_key == f"{DATASET}/_history/index.html"
    assert (result.runs, result.passed, result.failed) == (3, 2, 1)
    page = (Path(store.backend.describe()) / result.index_key).read_text(encoding="utf-8")
    assert runs_in(page) == ["run-3", "run-2", "run-1"]
    assert "other-run" not in page  # another dataset's run
    assert page.index("Lịch sử kiểm tra dữ liệu") < page.index("Validation history")  # Vietnamese first
    assert page.count("Không đạt / Failed</span>") == 1 and page.count("Đạt / Passed</span>") == 2
    assert "1,290" in page and "expect_table_row_count_to_be_between" in page
    assert ">v1</a>" in page and ">v2</a>" in page and "sai đơn vị đo" in page
    hrefs = [unquote(h) for h in re.findall(r'href="([^"]+)"', page)]
    assert "../_validation/run-2/report.html" in hrefs and "../_validation/run-2/result.json" in hrefs
    assert "../v1/datapackage.json" in hrefs
    history_dir = Path(store.backend.describe(f"{DATASET}/_history"))
    for href in hrefs:  # every link stays inside the store, relative to the page
        assert (history_dir / href).resolve().is_relative_to(Path(store.backend.describe()))


def test_pages_hold_page_size_runs_each_newest_first(tmp_path: Path) -> None:
    store = ReleaseStore(LocalBackend(tmp_path))
    ledger = Ledger(store.backend)
    for i in range(1, 121):
        validated(ledger, f"run-{i:03d}", ok=i % 7 != 0)

    result = build_history(store, DATASET, page_size=50)

    assert [k.rsplit("/", 1)[1] for k in result.pages] == ["index.html", "page-2.html", "page-3.html"]
    pages = [(tmp_path / k).read_text(encoding="utf-8") for k in result.pages]
    listed = [run for page in pages for run in runs_in(page)]
    assert listed == [f"run-{i:03d}" for i in range(120, 0, -1)]  # each once, newest first across pages
    assert [len(runs_in(p)) for p in pages] == [50, 50, 20]
    assert 'href="page-2.html" rel="next"' in pages[0] and 'rel="prev"' not in pages[0]
    assert 'href="index.html" rel="prev"' in pages[1] and 'href="page-3.html" rel="next"' in pages[1]
    assert 'rel="next"' not in pages[2] and "3 / 3" in pages[2]


def test_pages_are_offline_escaped_and_deterministic(tmp_path: Path) -> None:
    store = ReleaseStore(LocalBackend(tmp_path))
    ledger = Ledger(store.backend)
    validated(ledger, HOSTILE, ok=True)
    ledger.append("release_committed", dataset_id=DATASET, version=1, run=HOSTILE, manifest_sha256="a" * 64)
    ledger.append("release_withdrawn", dataset_id=DATASET, version=1, reason=HOSTILE, manifest_sha256="a" * 64)

    first = render_history(DATASET, [e.body for e in ledger.entries()])
    second = render_history(DATASET, [e.body for e in ledger.entries()])

    assert first == second
    page = first[0][1]
    assert HOSTILE not in page and "&lt;script&gt;" in page
    assert not EXTERNAL.search(page), EXTERNAL.search(page)


def test_no_run_yet_gives_one_page_saying_so(tmp_path: Path) -> None:
    pages = render_history(DATASET, [])
    assert [name for name, _ in pages] == ["index.html"]
    assert "Chưa có lần kiểm tra nào" in pages[0][1] and "No validation run yet" in pages[0][1]
    with pytest.raises(ValueError, match="page_size"):
        render_history(DATASET, [], page_size=0)
    assert page_name(1) == "index.html" and page_name(7) == "page-7.html"


def test_pages_inline_the_one_stylesheet() -> None:
    """The audit pages carry datashare.display's stylesheet, the catalog's too, and select their rules by class."""
    from datashare.display import STYLESHEET, stylesheet

    [(_, page)] = render_history(DATASET, [])
    assert f"<style>{stylesheet()}</style>" in page and page.count("<style") == 1
    assert '<body class="audit">' in page
    engine = STYLESHEET.parents[1]  # plugins/datashare
    assert [p.relative_to(engine).as_posix() for p in engine.rglob("*.css")] == ["display/datashare.css"]


class CountingBackend(LocalBackend):
    """A local backend that counts reads, to prove the history reads each ledger entry once."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.reads: dict[str, int] = {}

    def get_bytes(self, key: str) -> bytes:
        self.reads[key] = self.reads.get(key, 0) + 1
        return super().get_bytes(key)


def test_ledger_is_read_once_however_many_pages(tmp_path: Path) -> None:
    backend = CountingBackend(tmp_path)
    ledger = Ledger(backend)
    for i in range(30):
        validated(ledger, f"run-{i}", ok=True)
    backend.reads = {}

    result = build_history(ReleaseStore(backend), DATASET, page_size=5)

    assert len(result.pages) == 6
    assert len(backend.reads) == 30 and set(backend.reads.values()) == {1}
