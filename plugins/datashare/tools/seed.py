"""The simulated unit databases at demo scale, with data that ends today (Vietnam time).

One place decides which unit feeds which connection and how much each holds, for everyone who makes
them: the demo (SQLite files), ``datashare seed`` (docker-compose's init, the units' PostgreSQL
and MariaDB) and the real-scheduler test suite. The time series end today because the suites check
freshness against the clock: units generated from a fixed start date fail that rule once the data is
older than a dataset's ``freshness.max_age_hours``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta

from datashare.exceptions import ConfigError

UNITS: dict[str, str] = {
    "monre_monitoring": "monitoring",
    "monre_catalogues": "catalogues",
    "monre_land": "land",
    "monre_water_resources": "water_resources",
    "monre_water_quality": "water_quality",
    "monre_public_services": "public_services",
}
"""Connection id -> simulated unit (``units.<name>``), every unit in ``units/``."""
MONITORING_DAYS = 7
"""The stations' hourly week."""
WATER_DAYS = 38
"""Water units cover the 38 days to today, the monitoring week the last 7 of them, so their months overlap."""
PUBLIC_SERVICES_DAYS = 1765
"""About five years of dossiers, so every month of the statistics has history."""
PUBLIC_SERVICES_SCALE = 0.05


def local_today() -> date:
    """Today in Vietnam (UTC+7): the sources keep naive local time."""
    return (datetime.now(UTC) + timedelta(hours=7)).date()


def generate_unit(name: str, url: str, *, today: date | None = None) -> str:
    """Make one simulated unit at `url` whose data ends `today`; returns what was made, for the console."""
    from units import catalogues, land, monitoring, public_services, water_quality, water_resources

    today = today or local_today()
    water_start = today - timedelta(days=WATER_DAYS - 1)
    if name == "monitoring":
        air = monitoring.generate(url, days=MONITORING_DAYS, start=today - timedelta(days=MONITORING_DAYS - 1))
        return f"{air.stations} stations, {air.rows:,} hourly rows"
    if name == "catalogues":
        codes = catalogues.generate(url)
        return f"{codes.admin_units} administrative units, {codes.land_use_codes} land-use codes"
    if name == "land":
        return f"{land.generate(url, scale=0.02).rows:,} parcels"
    if name == "water_resources":
        water = water_resources.generate(url, scale=0.1, days=WATER_DAYS, start=water_start)
        return f"{water.licences} licences, {water.wells} wells, {water.level_rows:,} water levels"
    if name == "water_quality":
        return f"{water_quality.generate(url, scale=0.1, days=WATER_DAYS, start=water_start).rows:,} water samples"
    if name == "public_services":
        start = today - timedelta(days=PUBLIC_SERVICES_DAYS - 1)
        services = public_services.generate(url, scale=PUBLIC_SERVICES_SCALE, days=PUBLIC_SERVICES_DAYS, start=start)
        return f"{services.procedures} procedures, {services.dossiers:,} dossiers"
    raise ConfigError(f"no simulated unit {name!r}; expected one of {sorted(UNITS.values())}")


def advance_unit(name: str, url: str) -> str | None:
    """What the demo's ``--next-day`` adds to one unit (None for the catalogues, which do not change)."""
    from units import land, monitoring, public_services, water_quality, water_resources

    if name == "monitoring":
        return f"appended observations of {monitoring.append_day(url).isoformat()}"
    if name == "land":
        return f"re-surveyed {len(land.touch_parcels(url, 25).parcel_ids)} parcels"
    if name == "water_resources":
        return f"appended water levels of {water_resources.append_day(url).isoformat()}"
    if name == "water_quality":
        return f"appended samples of {water_quality.append_day(url).isoformat()}"
    if name == "public_services":
        return f"appended dossiers of {public_services.append_day(url, scale=PUBLIC_SERVICES_SCALE).isoformat()}"
    return None


def has_unit(name: str, url: str) -> bool:
    """Whether the database at `url` already holds every table of the unit (so seeding it again would reset it)."""
    import importlib

    import sqlalchemy as sa

    tables = importlib.import_module(f"units.{name}").metadata.tables
    engine = sa.create_engine(url)
    try:
        inspector = sa.inspect(engine)
        return all(inspector.has_table(table) for table in tables)
    finally:
        engine.dispose()


def seed_units(
    conn_ids: Iterable[str] | None = None,
    *,
    resolve: Callable[[str], str] | None = None,
    today: date | None = None,
    keep_existing: bool = False,
) -> dict[str, str]:
    """Generate every unit (or the named connections' units) into the database its connection points to.

    Args:
        conn_ids: connection ids to seed (keys of :data:`UNITS`); all of them by default.
        resolve: connection id -> SQLAlchemy URL; by default Airflow's connection (``AIRFLOW_CONN_*``).
        today: the last day of the data; today in Vietnam by default.
        keep_existing: leave a unit whose tables exist as it is (a restarted stack keeps its sources, so
            the releases' cursors stay meaningful); otherwise every unit is made afresh.

    Returns:
        Connection id -> what was made (or that it was kept).
    """
    if resolve is None:
        from datashare.source.connections import get_connection

        def resolve(conn_id: str) -> str:
            return get_connection(conn_id).sqlalchemy_url().render_as_string(hide_password=False)

    wanted = list(conn_ids) if conn_ids is not None else list(UNITS)
    unknown = [c for c in wanted if c not in UNITS]
    if unknown:
        raise ConfigError(f"no simulated unit behind connection(s) {unknown}; expected some of {sorted(UNITS)}")
    made = {}
    for conn_id in wanted:
        name, url = UNITS[conn_id], resolve(conn_id)
        if keep_existing and has_unit(name, url):
            made[conn_id] = "kept (its tables exist)"
        else:
            made[conn_id] = generate_unit(name, url, today=today)
    return made
