"""The validation history of a dataset: every run, passed or failed, as paged offline HTML for auditors.

The ledger is the source of truth: ``validation_passed`` / ``validation_failed`` entries give the run,
its verdict and summary and where its report is; ``release_committed`` entries give the version a
run released; ``release_withdrawn`` entries mark withdrawn versions. The ledger keeps one object per
entry, so the history is built in one pass: every entry is read once, then all pages are rendered
from memory and written to ``<id>/_history/index.html``, ``page-2.html``, ... (newest run first).

Pages use the report's template machinery and its one stylesheet (:mod:`datashare.quality.report`): no
script, no link to another host, bilingual with Vietnamese first, with landmarks (``header``,
``main``, labelled ``nav`` pagers) for screen readers. Links are relative, so the store can be copied or
served from anywhere. The pages depend only on the ledger: the same ledger gives the same bytes.
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from datashare.display import number, timestamp
from datashare.quality.report import _bi, _e, render_audit
from datashare.store import Ledger, ReleaseStore

log = logging.getLogger(__name__)

PAGE_SIZE = 50
FOLDER = "_history"
_PAGER_WINDOW = 3  # page links shown either side of the current one


@dataclass(frozen=True)
class HistoryRow:
    """One validation run as the history shows it."""

    seq: int
    at: str
    run: str
    passed: bool
    rows: int | None
    failed_rules: tuple[str, ...]
    quarantined: int | None
    """Rows breaking row-level rules; None when the summary does not say (older runs, no quarantine)."""
    over_threshold: bool
    """Those rows were over the spec's threshold: not set aside, the run failed instead."""
    report_key: str | None
    version: int | None
    """Release committed by this run, if any."""
    withdrawn: str | None
    """Reason, when that release was withdrawn."""


@dataclass(frozen=True)
class HistoryResult:
    """What :func:`build_history` wrote."""

    dataset_id: str
    index_key: str
    pages: tuple[str, ...]
    runs: int
    passed: int
    failed: int


def page_name(page: int) -> str:
    """File name of a page: ``index.html`` for the first (newest runs), ``page-<n>.html`` after."""
    return "index.html" if page == 1 else f"page-{page}.html"


def _quarantined(summary: Mapping[str, Any]) -> int | None:
    q = summary.get("quarantine")
    if isinstance(q, Mapping) and isinstance(q.get("rows"), int):
        return q["rows"]
    value = summary.get("quarantined_rows")
    return value if isinstance(value, int) else None


def history_rows(entries: Iterable[Mapping[str, Any]], dataset_id: str) -> list[HistoryRow]:
    """Validation runs of a dataset from ledger entry bodies (any order), newest first."""
    runs: list[Mapping[str, Any]] = []
    version_of_run: dict[str, int] = {}
    withdrawn: dict[int, str] = {}
    for body in entries:
        if body.get("dataset_id") != dataset_id:
            continue
        event = body.get("event")
        if event in ("validation_passed", "validation_failed"):
            runs.append(body)
        elif event == "release_committed" and isinstance(body.get("version"), int):
            version_of_run[str(body.get("run"))] = body["version"]
        elif event == "release_withdrawn" and isinstance(body.get("version"), int):
            withdrawn[body["version"]] = str(body.get("reason", ""))
    out = []
    for body in sorted(runs, key=lambda b: int(b.get("seq") or 0), reverse=True):
        found = body.get("summary")
        summary: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
        run = str(body.get("run", ""))
        # A retried run validates again: its release belongs to its newest passed validation.
        version = version_of_run.pop(run, None) if body["event"] == "validation_passed" else None
        rows = summary.get("rows")
        out.append(
            HistoryRow(
                seq=int(body.get("seq") or 0),
                at=str(body.get("at", "")),
                run=run,
                passed=body["event"] == "validation_passed",
                rows=rows if isinstance(rows, int) else None,
                failed_rules=tuple(str(r) for r in summary.get("failed_rules") or ()),
                quarantined=_quarantined(summary),
                over_threshold=bool((summary.get("quarantine") or {}).get("over_threshold")),
                report_key=str(body["report"]) if body.get("report") else None,
                version=version,
                withdrawn=withdrawn.get(version) if version is not None else None,
            )
        )
    return out


def _href(dataset_id: str, key: str) -> str:
    """A store key as a link relative to the history folder."""
    own = f"{dataset_id}/"
    return quote(f"../{key.removeprefix(own)}" if key.startswith(own) else f"../../{key}")


def _row_html(dataset_id: str, row: HistoryRow) -> str:
    verdict = '<span class="ok">Đạt / Passed</span>' if row.passed else '<span class="bad">Không đạt / Failed</span>'
    rules = "".join(f"<li><code>{_e(r)}</code></li>" for r in row.failed_rules)
    samples = f'<ul class="samples">{rules}</ul>' if rules else ""
    links = "–"
    if row.report_key:
        folder = posixpath.dirname(row.report_key)
        links = (
            f'<a href="{_e(_href(dataset_id, row.report_key))}">{_bi("Báo cáo", "report")}</a><br>'
            f'<a href="{_e(_href(dataset_id, folder + "/result.json"))}"><code>result.json</code></a>'
        )
    quarantined = number(row.quarantined, "en", empty="–")
    if row.over_threshold:
        quarantined += f'<br><span class="bad">{_bi("vượt ngưỡng", "over threshold")}</span>'
    release = "–"
    if row.version is not None:
        release = (
            f'<a href="{_e(_href(dataset_id, f"{dataset_id}/v{row.version}/datapackage.json"))}">v{row.version}</a>'
        )
        if row.withdrawn is not None:
            release += f'<br><span class="withdrawn">{_bi("Đã thu hồi", "withdrawn")}</span>: {_e(row.withdrawn)}'
    return (
        f'<tr class="{"pass" if row.passed else "fail"}">'
        f'<td class="when">{_e(timestamp(row.at, seconds=True))}</td>'
        f"<td><code>{_e(row.run)}</code></td>"
        f"<td>{verdict}</td>"
        f'<td class="num">{number(row.rows, "en", empty="–")}</td>'
        f'<td class="num">{len(row.failed_rules)}</td>'
        f"<td>{samples}</td>"
        f'<td class="num">{quarantined}</td>'
        f"<td>{release}</td>"
        f"<td>{links}</td>"
        "</tr>"
    )


def _pager(page: int, pages: int, where: tuple[str, str]) -> str:
    if pages <= 1:
        return ""
    shown = sorted({1, pages, *range(max(1, page - _PAGER_WINDOW), min(pages, page + _PAGER_WINDOW) + 1)})
    parts = []
    if page > 1:
        parts.append(f'<a href="{page_name(page - 1)}" rel="prev">« {_bi("Mới hơn", "Newer")}</a>')
    last = 0
    for p in shown:
        if p - last > 1:
            parts.append('<span class="gap">…</span>')
        parts.append(f'<span class="current">{p}</span>' if p == page else f'<a href="{page_name(p)}">{p}</a>')
        last = p
    if page < pages:
        parts.append(f'<a href="{page_name(page + 1)}" rel="next">{_bi("Cũ hơn", "Older")} »</a>')
    label = _e(f"Trang ({where[0]}) / Pages ({where[1]})")
    return f'<nav class="pager" aria-label="{label}">{"".join(parts)}</nav>'


_HEADERS = [
    ("Thời điểm (UTC)", "Time (UTC)"), ("Lần chạy", "Run"), ("Kết quả", "Verdict"),
    ("Số dòng đã kiểm tra", "Rows checked"), ("Số quy tắc không đạt", "Rules failed"),
    ("Quy tắc không đạt", "Failed rules"), ("Số dòng bị cách ly", "Quarantined rows"),
    ("Phiên bản công bố", "Release"), ("Liên kết", "Links"),
]  # fmt: skip
_FOOTER = (
    "Mỗi dòng là một lần kiểm tra ghi trong sổ cái, mới nhất trước. Báo cáo của lần không đạt vẫn được lưu.",
    "Each row is a validation run recorded in the ledger, newest first. Reports of failed runs are kept too.",
)


def render_page(
    dataset_id: str, rows: Sequence[HistoryRow], *, page: int, pages: int, totals: Mapping[str, int], as_of: str
) -> str:
    """One page of the history: the facts, the pager and a table of runs."""
    facts = [
        (("Bộ dữ liệu", "Dataset"), f"<code>{_e(dataset_id)}</code>"),
        (("Số lần kiểm tra", "Validation runs"), number(totals["runs"], "en")),
        (("Đạt", "Passed"), number(totals["passed"], "en")),
        (("Không đạt", "Failed"), number(totals["failed"], "en")),
        (("Trang", "Page"), f"{page} / {pages}"),
        (("Theo sổ cái đến", "Ledger as of"), _e(as_of) or "–"),
    ]
    from markupsafe import Markup

    body = [Markup(_row_html(dataset_id, r)) for r in rows]  # fragments escaped by _e/_bi
    return render_audit(
        "history.html",
        dataset_id=dataset_id,
        page=page,
        pages=pages,
        facts=[(label, Markup(value)) for label, value in facts],  # fragments escaped by _e/_bi
        headers=_HEADERS,
        rows=body,
        pager_top=Markup(_pager(page, pages, ("trên", "top"))),  # fragments escaped by _e/_bi
        pager_bottom=Markup(_pager(page, pages, ("dưới", "bottom"))),  # fragments escaped by _e/_bi
        footer=_FOOTER,
    )


def render_history(
    dataset_id: str, entries: Iterable[Mapping[str, Any]], *, page_size: int = PAGE_SIZE
) -> list[tuple[str, str]]:
    """(file name, HTML) of every page, from ledger entry bodies: no I/O, so it can be timed and tested alone."""
    if page_size < 1:
        raise ValueError(f"page_size must be at least 1, got {page_size}")
    bodies = list(entries)
    rows = history_rows(bodies, dataset_id)
    as_of = max((str(b.get("at", "")) for b in bodies), default="")
    passed = sum(r.passed for r in rows)
    totals = {"runs": len(rows), "passed": passed, "failed": len(rows) - passed}
    pages = max(1, -(-len(rows) // page_size))
    return [
        (
            page_name(p),
            render_page(
                dataset_id,
                rows[(p - 1) * page_size : p * page_size],
                page=p,
                pages=pages,
                totals=totals,
                as_of=as_of,
            ),
        )
        for p in range(1, pages + 1)
    ]


def build_history(store: ReleaseStore, dataset_id: str, *, page_size: int = PAGE_SIZE) -> HistoryResult:
    """Read the ledger once, render every page and write them under ``<id>/_history/``."""
    bodies = [e.body for e in Ledger(store.backend).entries(dataset_id)]
    pages = render_history(dataset_id, bodies, page_size=page_size)
    keys = []
    for name, text in pages:
        key = f"{dataset_id}/{FOLDER}/{name}"
        store.backend.put_bytes(key, text.encode("utf-8"))
        keys.append(key)
    runs = [b for b in bodies if b.get("event") in ("validation_passed", "validation_failed")]
    passed = sum(b.get("event") == "validation_passed" for b in runs)
    log.info("%s: validation history of %d run(s) written in %d page(s)", dataset_id, len(runs), len(keys))
    return HistoryResult(
        dataset_id=dataset_id,
        index_key=keys[0],
        pages=tuple(keys),
        runs=len(runs),
        passed=passed,
        failed=len(runs) - passed,
    )
