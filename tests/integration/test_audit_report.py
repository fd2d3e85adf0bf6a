"""The validation report and history an auditor reads, from a real land_parcels run with quarantined rows.

The land register's planted dirt (wrong-length citizen IDs, land-use codes in no list) is quarantined
by the pipeline; the report must show each rule on all rows checked and on the rows published, how
many rows each rule set aside, a masked sample of the offending values, no server path, and
landmarks for screen readers. The history page is built from the same ledger.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
import sqlalchemy as sa

from datashare.pipeline.stages import run_dataset
from datashare.quality.history import build_history
from datashare.settings import Settings
from datashare.store import ReleaseStore
from units import land

KEY = "test-pseudonym-key-0123456789"
USE_RULE = "expect_column_values_to_be_in_set:land_use_code"
PROBLEM_RULE = "expect_column_values_to_be_null:input_problems"


class _Page(HTMLParser):
    """Landmarks and the cells of the rules table, as a screen reader and an auditor would meet them."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.rows: dict[str, list[str]] = {}
        self._row: str | None = None
        self._cells: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "tr" and (dict(attrs).get("id") or "").startswith("rule-"):
            self._row, self._cells = dict(attrs)["id"], []
        elif tag == "td" and self._row:
            self._cells.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr" and self._row:
            self.rows[self._row] = self._cells
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._row and self._cells:
            self._cells[-1] += data


def _parse(text: str) -> _Page:
    page = _Page()
    page.feed(text)
    return page


@pytest.fixture(scope="module")
def land_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from datashare.source.connections import connection_env_value

    tmp = tmp_path_factory.mktemp("audit")
    url = f"sqlite:///{tmp / 'land.sqlite'}"
    land.generate(url, scale=0.01)
    repo = Path(__file__).resolve().parents[2]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DATASHARE_PSEUDONYM_KEY", KEY)
        mp.setenv("DATASHARE_HOME", str(repo))
        mp.setenv("DATASHARE_RELEASE_ROOT", str(tmp / "releases"))
        mp.setenv("AIRFLOW_CONN_DATASHARE_SHARE", connection_env_value(f"sqlite:///{tmp / 'share.sqlite'}"))
        mp.setenv("AIRFLOW_CONN_MONRE_LAND", connection_env_value(url))
        result = run_dataset("land_parcels", run_id="first")
        store = ReleaseStore.open(Settings.from_env().release_uri)
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        source = conn.execute(sa.text("SELECT parcel_id, citizen_id, land_use_code FROM parcels")).all()
    engine.dispose()
    release = store.release("land_parcels", result["version"])
    report = store.backend.get_bytes(f"{release.prefix}/validation/report.html").decode("utf-8")
    return {"tmp": tmp, "store": store, "release": release, "report": report, "source": source, "result": result}


def test_report_shows_each_rule_on_all_rows_and_on_the_rows_published(land_run: dict) -> None:
    unknown = [r for r in land_run["source"] if r[2] in land.UNKNOWN_LAND_USE_CODES]
    bad_ids = [r for r in land_run["source"] if r[1] is not None and len(r[1]) != 12]
    assert unknown and bad_ids
    page = _parse(land_run["report"])
    rows = {cells[1]: cells for cells in page.rows.values()}
    use = next(cells for text, cells in rows.items() if USE_RULE in text)
    checked, quarantined, published = use[3], use[4], use[5]
    assert "Không đạt" in checked and f"{len(unknown)} giá trị lỗi" in checked  # all rows: the rule failed
    assert quarantined.strip() == str(len(unknown))  # those rows went to quarantine
    assert "Đạt" in published and "Không đạt" not in published and "0 giá trị lỗi" in published
    samples = use[7]
    assert any(code in samples for code in land.UNKNOWN_LAND_USE_CODES)  # the offending values are shown
    problem = next(cells for text, cells in rows.items() if PROBLEM_RULE in text)
    assert problem[4].strip() == str(len(bad_ids)) and "check_citizen_id" in problem[7]
    manifest = land_run["release"].manifest["datashare"]["validation"]
    assert manifest["quarantine"]["key"] == "_quarantine/land_parcels/first/rows.parquet"
    assert "location" not in manifest["quarantine"]
    facts = land_run["report"]
    total = len(land_run["source"])
    assert f"{total:,}" in facts and f"{land_run['result']['rows']:,}" in facts


def test_report_never_shows_a_citizen_id_nor_a_server_path(land_run: dict) -> None:
    text = land_run["report"]
    for _, citizen_id, _ in land_run["source"]:
        if citizen_id and len(citizen_id) >= 9:
            assert citizen_id not in text
    assert not re.search(r"\d{9,}", text)
    assert str(land_run["tmp"]) not in text and "/tmp/" not in text and "releases/" not in text


def test_report_and_history_have_landmarks_and_load_nothing(land_run: dict) -> None:
    history = build_history(land_run["store"], "land_parcels")
    history_page = land_run["store"].backend.get_bytes(history.index_key).decode("utf-8")
    for text in (land_run["report"], history_page):
        tags = _parse(text).tags
        names = [t for t, _ in tags]
        assert names.count("main") == 1 and "header" in names and "footer" in names
        assert all(a.get("aria-label") for t, a in tags if t == "nav")  # every nav landmark is named
        assert all(a.get("aria-labelledby") for t, a in tags if t == "section")
        assert not any(t in ("script", "link", "img", "iframe") for t in names)
        assert "http://" not in text and "https://" not in text
        assert '"Segoe UI"' in text and "&#34;" not in text.split("</style>")[0]  # the stylesheet is not escaped
    assert "first" in history_page and "v1" in history_page
