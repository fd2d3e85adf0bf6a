"""The simulated environmental-monitoring database: shape, determinism, dirt, append_day, backends."""

import datetime as dt
import os
import re
import secrets
import statistics
import unicodedata
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from transforms.aqi import SENTINEL, vn_aqi_hourly
from units._common import PROVINCES_BY_CODE
from units.monitoring import (
    POLLUTANTS,
    GenerateSummary,
    air_observations_table,
    append_day,
    generate,
    main,
    stations_table,
)

START = dt.date(2026, 11, 1)
POSTGRES_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
MARIADB_ADMIN_URL = "mysql+pymysql://root@127.0.0.1:3306/"


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def read_rows(url: str, table: sa.Table) -> list[tuple]:
    """Every row of a table, in primary-key order, as plain tuples."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.select(table).order_by(*table.primary_key.columns))]
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def default_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, GenerateSummary]:
    """The default scale (12 stations, 7 days), generated once for the read-only tests."""
    url = sqlite_url(tmp_path_factory.mktemp("monitoring") / "default.db")
    return url, generate(url)


@pytest.fixture(scope="module")
def observations(default_db: tuple[str, GenerateSummary]) -> list[dict]:
    url, _ = default_db
    columns = [c.name for c in air_observations_table.columns]
    return [dict(zip(columns, row, strict=True)) for row in read_rows(url, air_observations_table)]


@pytest.fixture(scope="module")
def stations(default_db: tuple[str, GenerateSummary]) -> list[dict]:
    url, _ = default_db
    columns = [c.name for c in stations_table.columns]
    return [dict(zip(columns, row, strict=True)) for row in read_rows(url, stations_table)]


def test_row_counts_match_scale_and_summary(default_db, observations, stations) -> None:
    _, summary = default_db
    assert len(stations) == summary.stations == 12
    slots = 12 * 7 * 24
    assert len(observations) == summary.rows == slots - summary.missing_hours + summary.duplicates
    assert summary.first_observed_at == dt.datetime(2026, 11, 1, 0, 0)
    assert summary.last_observed_at == dt.datetime(2026, 11, 7, 23, 0)
    assert {r["station_code"] for r in observations} == {s["station_code"] for s in stations}


def test_stations_are_plausible(stations) -> None:
    for s in stations:
        assert re.fullmatch(r"AQ\d{5}", s["station_code"]), s
        assert s["station_code"][2:4] == s["province_code"]
        province = PROVINCES_BY_CODE[s["province_code"]]
        assert unicodedata.normalize("NFC", s["name"]).startswith(f"{province.name} - ")
        assert abs(s["latitude"] - province.lat) < 0.1 and abs(s["longitude"] - province.lon) < 0.1
        assert s["kind"] == "automatic"
    names = [unicodedata.normalize("NFC", s["name"]) for s in stations]
    assert "Hà Nội - 556 Nguyễn Văn Cừ" in names
    assert "TP. Hồ Chí Minh - Thảo Cầm Viên" in names


def test_dirt_is_present_and_counted(default_db, observations, stations) -> None:
    _, summary = default_db
    keyed = Counter(tuple(v for k, v in r.items() if k != "id") for r in observations)
    duplicates = sum(n - 1 for n in keyed.values())
    assert duplicates == summary.duplicates > 0

    sentinels = sum(1 for r in observations for p in POLLUTANTS if r[p] == SENTINEL)
    assert sentinels == summary.sentinels > 0
    assert 0.001 < sentinels / (len(observations) * len(POLLUTANTS)) < 0.01

    present = {(r["station_code"], r["observed_at"]) for r in observations}
    assert 12 * 7 * 24 - len(present) == summary.missing_hours
    assert 0.005 < summary.missing_hours / (12 * 7 * 24) < 0.05

    nfd = [s["name"] for s in stations if unicodedata.normalize("NFC", s["name"]) != s["name"]]
    assert len(nfd) in (2, 3)
    assert all(unicodedata.normalize("NFD", name) == name for name in nfd)


def test_values_are_plausible(observations) -> None:
    for r in observations:
        assert r["observed_at"].minute == 0 and r["observed_at"].second == 0
        readings = [r[p] for p in POLLUTANTS]
        assert r["aqi"] == vn_aqi_hourly(*readings)
        assert all(v == SENTINEL or v > 0 for v in readings)
        if SENTINEL not in (r["pm25"], r["pm10"]) and r["pm25"] >= 5:
            assert 1.25 <= r["pm10"] / r["pm25"] <= 1.85, r

    def mean(pollutant: str, province: str | None = None, hours: range = range(24)) -> float:
        return statistics.fmean(
            r[pollutant]
            for r in observations
            if r[pollutant] != SENTINEL
            and r["observed_at"].hour in hours
            and (province is None or r["station_code"][2:4] == province)
        )

    assert mean("pm25", "01") > 1.5 * mean("pm25", "48")  # Hà Nội dirtier than Đà Nẵng
    assert mean("o3", hours=range(12, 16)) > 2 * mean("o3", hours=range(0, 6))  # early-afternoon O3
    assert 20 <= mean("no2") <= 80 and 5 <= mean("so2") <= 40 and 500 <= mean("co") <= 3000


def test_same_seed_same_rows_other_seed_other_rows(default_db, tmp_path: Path) -> None:
    url, _ = default_db
    again, other = sqlite_url(tmp_path / "again.db"), sqlite_url(tmp_path / "other.db")
    generate(again)
    generate(other, seed=7)
    for table in (stations_table, air_observations_table):
        assert read_rows(again, table) == read_rows(url, table)
    assert read_rows(other, air_observations_table) != read_rows(url, air_observations_table)


def test_generate_replaces_existing_tables(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "twice.db")
    generate(url, stations=2, days=2)
    summary = generate(url, stations=3, days=1)
    assert len(read_rows(url, air_observations_table)) == summary.rows
    assert len(read_rows(url, stations_table)) == 3


def test_append_day_adds_the_next_day_as_a_full_run_would(tmp_path: Path) -> None:
    grown, full = sqlite_url(tmp_path / "grown.db"), sqlite_url(tmp_path / "full.db")
    generate(grown, stations=4, days=2)
    before = read_rows(grown, air_observations_table)
    assert append_day(grown) == START + dt.timedelta(days=2)
    after = read_rows(grown, air_observations_table)
    assert after[: len(before)] == before
    assert {row[2].date() for row in after[len(before) :]} == {START + dt.timedelta(days=2)}

    generate(full, stations=4, days=3)
    assert after == read_rows(full, air_observations_table)
    assert append_day(grown) == START + dt.timedelta(days=3)


def test_append_day_on_empty_database_names_the_table(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "empty.db")
    with pytest.raises(LookupError, match="stations"):
        append_day(url)


def test_bad_scale_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="stations"):
        generate(sqlite_url(tmp_path / "bad.db"), stations=0)
    with pytest.raises(ValueError, match="days"):
        generate(sqlite_url(tmp_path / "bad.db"), days=0)


def test_command_line(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "cli.db")
    assert main(["generate", "--url", url, "--stations", "2", "--days", "1", "--start", "2026-01-31"]) == 0
    assert main(["append-day", "--url", url]) == 0
    days = {row[2].date() for row in read_rows(url, air_observations_table)}
    assert days == {dt.date(2026, 1, 31), dt.date(2026, 2, 1)}


# --- real servers ---------------------------------------------------------------------------------


def _unavailable(what: str, error: Exception) -> None:
    message = f"{what} unreachable: {error.__class__.__name__}: {str(error).splitlines()[0]}"
    if os.environ.get("DATASHARE_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{message} (DATASHARE_REQUIRE_SERVICES=1)")
    pytest.skip(message)


def _throwaway_database(admin_url: str, create_sql: str, drop_sql: str, what: str) -> Iterator[str]:
    """Create a uniquely named database, yield its URL, drop it afterwards."""
    name = f"datashare_test_units_{secrets.token_hex(4)}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(create_sql.format(name=name)))
    except sa.exc.OperationalError as error:
        admin.dispose()
        _unavailable(what, error)
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(drop_sql.format(name=name)))
        admin.dispose()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    yield from _throwaway_database(
        POSTGRES_ADMIN_URL,
        'CREATE DATABASE "{name}"',
        'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
        "PostgreSQL at 127.0.0.1:5432",
    )


@pytest.fixture
def mariadb_url() -> Iterator[str]:
    yield from _throwaway_database(
        MARIADB_ADMIN_URL,
        "CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
        "DROP DATABASE IF EXISTS `{name}`",
        "MariaDB at 127.0.0.1:3306",
    )


def _same_as_sqlite(url: str, tmp_path: Path) -> None:
    """A server gets exactly the rows SQLite gets: values, NFD names and ids included."""
    reference = sqlite_url(tmp_path / "reference.db")
    summary = generate(url, stations=3, days=2)
    assert summary == generate(reference, stations=3, days=2)
    assert append_day(url) == append_day(reference) == START + dt.timedelta(days=2)
    for table in (stations_table, air_observations_table):
        assert read_rows(url, table) == read_rows(reference, table), table.name
    names = [row[1] for row in read_rows(url, stations_table)]
    assert any(unicodedata.normalize("NFC", n) != n for n in names)


@pytest.mark.postgres
def test_postgresql(postgres_url: str, tmp_path: Path) -> None:
    _same_as_sqlite(postgres_url, tmp_path)


@pytest.mark.mariadb
def test_mariadb(mariadb_url: str, tmp_path: Path) -> None:
    _same_as_sqlite(mariadb_url, tmp_path)
