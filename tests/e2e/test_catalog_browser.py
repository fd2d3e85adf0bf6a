"""The catalog in a real headless Chromium: list -> dataset -> downloads (Parquet, CSV), sign-in, language switch.

The app runs under uvicorn on a free loopback port; Selenium drives Debian's ``chromium`` through
``chromedriver`` (both from apt; nothing is downloaded at run time). Screenshots go to
``var/test-screenshots/``. Without Chromium the test skips, unless DATASHARE_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from datashare.access import Tokens, load_registry
from datashare.pipeline.stages import run_dataset
from datashare.settings import Settings
from datashare.source.connections import connection_env_value
from datashare.store import ReleaseStore
from units import monitoring

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "var" / "test-screenshots"
OPEN, RESTRICTED = "air_quality_hourly", "air_quality_restricted"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,1000",
]


def _require(what: str) -> None:
    if os.environ.get("DATASHARE_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{what} (DATASHARE_REQUIRE_SERVICES=1: the browser test is required)")
    pytest.skip(what)


def _browser_paths() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        _require("Chromium is not installed: apt-get install -y chromium chromium-driver")
    try:
        import selenium  # noqa: F401
    except ImportError:
        _require("the selenium package is not installed in the virtual environment")
    return chromium, driver  # type: ignore[return-value]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """An open and a restricted dataset released by the pipeline from a small SQLite unit, and a token."""
    _browser_paths()
    tmp = tmp_path_factory.mktemp("catalog-browser")
    home = tmp / "home"
    datasets = home / "dags" / "datasets"
    datasets.mkdir(parents=True)
    shutil.copy(REPO / "dags" / "datasets" / f"{OPEN}.yaml", datasets)
    shutil.copytree(REPO / "expectations", home / "expectations")
    spec = yaml.safe_load((datasets / f"{OPEN}.yaml").read_text(encoding="utf-8"))
    spec.update(
        id=RESTRICTED,
        suite=OPEN,
        title={"vi": "Không khí (dùng riêng)", "en": "Air quality (restricted)"},
        classification={"sharing": "restricted", "importance": "core"},
        recipients=["agency_a"],
    )
    (datasets / f"{RESTRICTED}.yaml").write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    (home / "config").mkdir()
    shutil.copy(REPO / "config" / "units.yaml", home / "config")
    (home / "config" / "recipients.yaml").write_text(
        "recipients:\n  - code: agency_a\n    name: {vi: Sở A, en: Department A}\n"
        "    contact: {name: Desk A, email: a@example.gov.vn}\n",
        encoding="utf-8",
    )
    unit = f"sqlite:///{tmp / 'unit.sqlite'}"
    monitoring.generate(unit, stations=2, days=1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DATASHARE_HOME", str(home))
        mp.setenv("DATASHARE_RELEASE_ROOT", str(tmp / "releases"))
        mp.setenv("AIRFLOW_CONN_DATASHARE_SHARE", connection_env_value(f"sqlite:///{tmp / 'share.sqlite'}"))
        mp.setenv("AIRFLOW_CONN_MONRE_MONITORING", connection_env_value(unit))
        run_dataset(OPEN)
        monitoring.append_day(unit)  # a second day: release 2, so the release page has changes to show
        run_dataset(OPEN)
        run_dataset(RESTRICTED)
        settings = Settings.from_env()
    store = ReleaseStore.open(settings.release_uri)
    token = Tokens(store.backend).issue(load_registry(settings.recipients_file).get("agency_a"))
    yield {"settings": settings, "store": store, "token": token, "tmp": tmp}


@pytest.fixture(scope="module")
def server(deployment: dict[str, Any]) -> Iterator[str]:
    """The catalog under uvicorn in a background thread."""
    import uvicorn

    from datashare.catalog.app import create_app

    port = _free_port()
    config = uvicorn.Config(create_app(deployment["settings"]), host="127.0.0.1", port=port, log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        assert time.monotonic() < deadline, "uvicorn did not start within 20 s"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def browser(deployment: dict[str, Any], tmp_path: Path) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver_path = _browser_paths()
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]:
        options.add_argument(flag)
    options.add_experimental_option(
        "prefs",
        {
            "download.default_directory": str(downloads),
            "download.prompt_for_download": False,
            "safebrowsing.enabled": False,
        },
    )
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    driver.set_page_load_timeout(90)
    driver.downloads = downloads  # type: ignore[attr-defined]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()


def _wait_for_file(folder: Path, name: str, timeout_s: float = 30) -> Path:
    target = folder / name
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if target.is_file() and not list(folder.glob("*.crdownload")):
            return target
        time.sleep(0.1)
    there = sorted(p.name for p in folder.iterdir())
    raise AssertionError(f"{name} did not arrive in {folder} within {timeout_s} s; there: {there}")


def _navigate(driver: Any, element: Any) -> None:
    """Click something that loads a new page and wait until the old page is gone (forms and links alike)."""
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.wait import WebDriverWait

    old = driver.find_element(By.TAG_NAME, "html")

    def gone(_driver: Any) -> bool:
        try:
            old.is_enabled()
        except StaleElementReferenceException:
            return True
        except WebDriverException as exc:
            # Chromium 156's driver reports an element of the page it is leaving as an inspector error,
            # not as stale, when asked mid-navigation: the old page is gone all the same.
            if "does not belong to the document" in str(exc):
                return True
            raise
        return False

    element.click()
    WebDriverWait(driver, 60).until(gone)
    WebDriverWait(driver, 60).until(lambda d: d.execute_script("return document.readyState") == "complete")


def _shot(driver: Any, name: str) -> Path:
    path = SCREENSHOTS / f"{name}.png"
    assert driver.save_screenshot(str(path)), path
    return path


def test_list_dataset_download_and_language(server: str, browser: Any, deployment: dict[str, Any]) -> None:
    from selenium.webdriver.common.by import By

    browser.get(server + "/")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Danh mục dữ liệu"
    rows = browser.find_elements(By.CSS_SELECTOR, "#datasets tr[data-dataset]")
    assert [r.get_attribute("data-dataset") for r in rows] == [OPEN]  # the restricted one is invisible
    _shot(browser, "catalog-list-vi")

    _navigate(browser, browser.find_element(By.CSS_SELECTOR, f'a[href="/datasets/{OPEN}"]'))
    assert browser.find_element(By.TAG_NAME, "h1").text == "Quan trắc chất lượng không khí tự động theo giờ"
    assert browser.find_element(By.ID, "sql-view").text == OPEN  # the name the embedded SQLite share knows
    _shot(browser, "catalog-dataset-vi")

    release = deployment["store"].latest(OPEN)
    part = release.files[0]
    link = browser.find_element(By.CSS_SELECTOR, "a.download")
    assert link.get_attribute("href").endswith(f"/datasets/{OPEN}/v/{release.version}/files/{part['path']}")
    link.click()
    arrived = _wait_for_file(browser.downloads, f"{OPEN}-v{release.version}-{part['path'].replace('/', '-')}")
    assert hashlib.sha256(arrived.read_bytes()).hexdigest() == part["sha256"]

    # The whole release as CSV, opened back with pandas as a person's script would: equal to the Parquet file.
    import pandas as pd
    import pyarrow.parquet as pq

    csv_link = browser.find_element(By.CSS_SELECTOR, 'a.export[data-format="csv"]')
    assert csv_link.get_attribute("href").endswith(
        f"/datasets/{OPEN}/v/{release.version}/exports/{OPEN}-v{release.version}.csv"
    )
    csv_link.click()
    csv_file = _wait_for_file(browser.downloads, f"{OPEN}-v{release.version}.csv")
    assert csv_file.read_bytes().startswith(b"\xef\xbb\xbf")
    frame = pd.read_csv(csv_file, dtype={"station_code": "string", "station_name": "string", "province_code": "string"})
    store = deployment["store"]  # every part of the release, in the manifest's order (the first one was downloaded)
    parquet = pd.concat(
        [pq.read_table(store.backend.local_path(f"{release.prefix}/{f['path']}")).to_pandas() for f in release.files],
        ignore_index=True,
    )
    assert pq.read_table(arrived).num_rows == part["rows"]
    assert list(frame.columns) == list(parquet.columns) and len(frame) == len(parquet) == release.rows
    assert frame["station_name"].tolist() == parquet["station_name"].tolist()  # Vietnamese, NFC, unchanged
    assert frame["province_code"].tolist() == parquet["province_code"].tolist()  # codes keep their leading zero
    assert pd.to_datetime(frame["observed_at"]).tolist() == parquet["observed_at"].tolist()
    pd.testing.assert_series_equal(frame["pm25"], parquet["pm25"], check_dtype=False)
    assert len(browser.find_elements(By.CSS_SELECTOR, "#preview-table tbody tr")) == 20  # open data: first rows shown
    browser.execute_script("document.getElementById('preview').scrollIntoView()")
    _shot(browser, "catalog-dataset-preview-vi")

    _navigate(browser, browser.find_element(By.ID, "lang-switch"))
    assert browser.find_element(By.TAG_NAME, "h1").text == "Hourly automatic air-quality observations"
    assert "Schema" in [h.text for h in browser.find_elements(By.TAG_NAME, "h2")]
    _shot(browser, "catalog-dataset-en")
    browser.get(server + "/")  # the choice is kept in a cookie
    assert browser.find_element(By.TAG_NAME, "h1").text == "Data catalog"
    _shot(browser, "catalog-list-en")


def _published_rows(store: Any, version: int) -> dict[tuple[Any, ...], dict[str, Any]]:
    """The rows of a release by key, read from its Parquet files with pyarrow (independent of the catalog)."""
    import pyarrow.parquet as pq

    release = store.release(OPEN, version)
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    for f in release.files:
        table = pq.read_table(store.backend.local_path(f"{release.prefix}/{f['path']}"))
        for row in table.to_pylist():
            rows[(row["station_code"], row["observed_at"])] = row
    return rows


def test_release_changes_page_from_the_release_page(server: str, browser: Any, deployment: dict[str, Any]) -> None:
    """A person follows "what changed" from the newest release: the counts equal a diff of the two releases."""
    from selenium.webdriver.common.by import By

    store = deployment["store"]
    latest = store.latest(OPEN)
    assert latest.version >= 2, "the deployment publishes two releases of the open dataset"
    before = _published_rows(store, latest.version - 1)
    after = _published_rows(store, latest.version)
    added = len(after.keys() - before.keys())
    removed = len(before.keys() - after.keys())
    changed = sum(1 for k in after.keys() & before.keys() if after[k] != before[k])

    browser.get(f"{server}/datasets/{OPEN}/v/{latest.version}?lang=vi")
    summary = browser.find_element(By.ID, "changes-summary")
    assert summary.find_element(By.CSS_SELECTOR, ".changes-added").text == f"{added:,}".replace(",", ".")
    _navigate(browser, browser.find_element(By.ID, "changes-link"))
    assert f"v{latest.version - 1} → v{latest.version}" in browser.find_element(By.TAG_NAME, "h1").text
    numbers = {
        name: browser.find_element(By.CSS_SELECTOR, f"#changes-summary .changes-{name}").text
        for name in ("added", "removed", "changed")
    }
    assert numbers == {
        "added": f"{added:,}".replace(",", "."),
        "removed": f"{removed:,}".replace(",", "."),
        "changed": f"{changed:,}".replace(",", "."),
    }
    _navigate(browser, browser.find_element(By.ID, "lang-switch"))
    assert "Changes" in browser.find_element(By.TAG_NAME, "h1").text
    assert browser.find_element(By.CSS_SELECTOR, "#changes-summary .changes-added").text == f"{added:,}"
    _shot(browser, "release-changes-browser")


def test_sign_in_form_reveals_granted_datasets(server: str, browser: Any, deployment: dict[str, Any]) -> None:
    from selenium.webdriver.common.by import By

    browser.get(server + "/login?lang=en")
    _shot(browser, "catalog-login-en")
    browser.find_element(By.NAME, "token").send_keys(deployment["token"])
    _navigate(browser, browser.find_element(By.CSS_SELECTOR, "form button[type=submit]"))
    rows = browser.find_elements(By.CSS_SELECTOR, "#datasets tr[data-dataset]")
    assert sorted(r.get_attribute("data-dataset") for r in rows) == [OPEN, RESTRICTED]
    assert "Department A" in browser.find_element(By.TAG_NAME, "header").text
    _shot(browser, "catalog-list-signed-in-en")
    _navigate(browser, browser.find_element(By.CSS_SELECTOR, f'a[href="/datasets/{RESTRICTED}"]'))
    assert browser.find_element(By.TAG_NAME, "h1").text == "Air quality (restricted)"
    _navigate(browser, browser.find_element(By.XPATH, "//header//button[@type='submit']"))  # sign out
    rows = browser.find_elements(By.CSS_SELECTOR, "#datasets tr[data-dataset]")
    assert [r.get_attribute("data-dataset") for r in rows] == [OPEN]
    entries = [
        json.loads(p.read_text()) for p in sorted((deployment["tmp"] / "releases" / "_ledger").glob("[0-9]*.json"))
    ]
    assert all(deployment["token"] not in json.dumps(e) for e in entries)


def _rows(driver: Any) -> list[str]:
    from selenium.webdriver.common.by import By

    return [
        r.get_attribute("data-dataset") for r in driver.find_elements(By.CSS_SELECTOR, "#datasets tr[data-dataset]")
    ]


def _search(driver: Any, words: str) -> None:
    from selenium.webdriver.common.by import By

    box = driver.find_element(By.NAME, "q")
    box.clear()
    box.send_keys(words)
    _navigate(driver, driver.find_element(By.CSS_SELECTOR, "form.search button[type=submit]"))


def test_search_in_vietnamese_with_and_without_marks_then_switch_language(server: str, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    browser.get(server + "/?lang=vi")
    _search(browser, "bụi mịn Hà Nội")
    assert _rows(browser) == [OPEN]
    assert browser.find_element(By.NAME, "q").get_attribute("value") == "bụi mịn Hà Nội"
    _shot(browser, "catalog-search-vi")
    for words in ("bui min ha noi", "BỤI MỊN HANOI", "PM2.5 Hà Nội 2026"):
        _search(browser, words)
        assert _rows(browser) == [OPEN], words
    _search(browser, "bụi mịn Đà Nẵng")  # every word must match: no station in Đà Nẵng here
    assert _rows(browser) == [] and browser.find_element(By.ID, "no-results").text == "Không có bộ dữ liệu nào phù hợp."

    _search(browser, "bui min")
    facet = browser.find_element(By.XPATH, "//nav[@class='facets']//a[contains(., 'Hà Nội')]")
    _navigate(browser, facet)
    assert "province=01" in browser.current_url and _rows(browser) == [OPEN]
    sectors = [o.text for o in browser.find_elements(By.CSS_SELECTOR, "select[name=sector] option")]
    assert sectors == ["Tất cả", "Quan trắc môi trường"]  # names, not codes

    _navigate(browser, browser.find_element(By.ID, "lang-switch"))
    assert browser.find_element(By.TAG_NAME, "h1").text == "Data catalog"
    assert browser.find_element(By.NAME, "q").get_attribute("value") == "bui min"  # the search is kept
    assert _rows(browser) == [OPEN]
    sectors = [o.text for o in browser.find_elements(By.CSS_SELECTOR, "select[name=sector] option")]
    assert sectors == ["All", "Environmental monitoring"]
    _shot(browser, "catalog-search-en")
    _navigate(browser, browser.find_element(By.CSS_SELECTOR, f'#datasets a[href="/datasets/{OPEN}"]'))
    assert browser.find_element(By.ID, "sector").text == "Environmental monitoring"
    assert "Hà Nội" in browser.find_element(By.ID, "spatial").text
    assert browser.find_element(By.ID, "citation").text.startswith("Ministry of Agriculture and Environment")
    _shot(browser, "catalog-dataset-metadata-en")


def _axe_script() -> str:
    candidates = [
        os.environ.get("DATASHARE_AXE_JS", ""),
        str(REPO / "var" / "axe" / "node_modules" / "axe-core" / "axe.min.js"),
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate).read_text(encoding="utf-8")
    _require("axe-core is not installed: npm install --prefix var/axe axe-core (or set DATASHARE_AXE_JS)")
    return ""


def _axe(driver: Any, script: str) -> list[dict[str, Any]]:
    driver.execute_script(script)
    result = driver.execute_async_script("const done = arguments[0]; axe.run(document).then(r => done(r.violations));")
    return [{"id": v["id"], "nodes": [n["target"] for n in v["nodes"]][:3]} for v in result]


def test_pages_report_and_history_pass_axe(server: str, browser: Any, deployment: dict[str, Any]) -> None:
    from datashare.quality.history import build_history

    script = _axe_script()
    store = deployment["store"]
    release = store.latest(OPEN)
    history = build_history(store, OPEN)
    pages = [
        server + "/",
        server + "/?q=b%E1%BB%A5i+m%E1%BB%8Bn",
        server + f"/datasets/{OPEN}",
        server + f"/datasets/{OPEN}/v/{release.version}?lang=en",
        server + "/licences/CC-BY-4.0",
        store.backend.local_path(f"{release.prefix}/validation/report.html").as_uri(),
        store.backend.local_path(history.index_key).as_uri(),
    ]
    for url in pages:
        browser.get(url)
        assert _axe(browser, script) == [], url
    browser.get(pages[-2])
    _shot(browser, "validation-report")
