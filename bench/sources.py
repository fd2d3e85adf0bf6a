"""The benchmark's unit databases: made once, reused while their parameters stay the same.

Each database carries a one-row table ``bench_params`` with the generation parameters and the row count
they gave. A later bench run reuses the database when both match; rows left past the last generated
day by an interrupted incremental measurement are deleted first.

    .venv/bin/python bench/sources.py            # make (or check) every bench database
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import asdict, dataclass

import sqlalchemy as sa

from units import monitoring

log = logging.getLogger("bench.sources")

POSTGRES_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
MARIADB_ADMIN = "mysql+pymysql://root@127.0.0.1:3306/mysql"
START = dt.date(2023, 1, 1)
INCREMENT_DAYS = 10
"""Days appended for the incremental measurement: about 1% of 1042 days."""


@dataclass(frozen=True)
class Unit:
    """One benchmark database of the monitoring unit."""

    name: str
    backend: str
    """``postgresql`` or ``mariadb``."""
    stations: int
    days: int
    seed: int = 2026

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the database."""
        admin = POSTGRES_ADMIN if self.backend == "postgresql" else MARIADB_ADMIN
        return sa.make_url(admin).set(database=self.name).render_as_string(hide_password=False)

    @property
    def end(self) -> dt.datetime:
        """First hour after the generated period."""
        return dt.datetime.combine(START + dt.timedelta(days=self.days), dt.time(0))

    def params(self) -> dict[str, object]:
        """What decides the content of the database."""
        return {**asdict(self), "start": START.isoformat(), "generator": "units.monitoring.generate"}


UNITS: dict[str, Unit] = {
    "pg_5m": Unit("bench_aq_5m", "postgresql", stations=200, days=1042),
    "pg_20m": Unit("bench_aq_20m", "postgresql", stations=800, days=1042),
    "maria_1m": Unit("bench_aq_1m", "mariadb", stations=40, days=1042),
    "pg_1m": Unit("bench_aq_odata_1m", "postgresql", stations=40, days=1042),
}
"""``pg_1m`` feeds the OData section (bench/odata_bench.py)."""


def _admin(unit: Unit) -> sa.Engine:
    return sa.create_engine(
        POSTGRES_ADMIN if unit.backend == "postgresql" else MARIADB_ADMIN, isolation_level="AUTOCOMMIT"
    )


def _create_database(unit: Unit) -> None:
    engine = _admin(unit)
    with engine.connect() as conn:
        if unit.backend == "postgresql":
            exists = conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": unit.name}).first()
            if not exists:
                conn.execute(sa.text(f'CREATE DATABASE "{unit.name}"'))
        else:
            conn.execute(
                sa.text(f"CREATE DATABASE IF NOT EXISTS `{unit.name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
            )
    engine.dispose()


def _recorded(unit: Unit) -> tuple[dict[str, object], int] | None:
    engine = sa.create_engine(unit.url)
    try:
        with engine.connect() as conn:
            row = conn.execute(sa.text("SELECT params, row_count FROM bench_params")).first()
    except sa.exc.DBAPIError:
        return None
    finally:
        engine.dispose()
    return (json.loads(row[0]), int(row[1])) if row else None


def trim(unit: Unit) -> int:
    """Delete rows past the generated period (left by an incremental measurement); returns how many."""
    engine = sa.create_engine(unit.url)
    with engine.begin() as conn:
        deleted = conn.execute(sa.text("DELETE FROM air_observations WHERE observed_at >= :end"), {"end": unit.end})
    if deleted.rowcount and unit.backend == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM ANALYZE air_observations"))
    engine.dispose()
    return int(deleted.rowcount or 0)


def row_count(unit: Unit) -> int:
    """Rows of ``air_observations``."""
    engine = sa.create_engine(unit.url)
    with engine.connect() as conn:
        n = conn.execute(sa.text("SELECT count(*) FROM air_observations")).scalar_one()
    engine.dispose()
    return int(n)


def ensure(unit: Unit) -> int:
    """Make the unit database unless an identical one exists; returns its observation row count."""
    _create_database(unit)
    recorded = _recorded(unit)
    if recorded is not None and recorded[0] == unit.params():
        removed = trim(unit)
        if removed:
            log.info("%s: removed %s rows left by an earlier incremental measurement", unit.name, removed)
        if row_count(unit) == recorded[1]:
            log.info("%s: reusing (%s rows)", unit.name, f"{recorded[1]:,}")
            return recorded[1]
    log.info("%s: generating %s stations x %s days", unit.name, unit.stations, unit.days)
    summary = monitoring.generate(unit.url, seed=unit.seed, stations=unit.stations, days=unit.days, start=START)
    engine = sa.create_engine(unit.url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE IF EXISTS bench_params"))
        conn.execute(sa.text("CREATE TABLE bench_params (params TEXT NOT NULL, row_count BIGINT NOT NULL)"))
        conn.execute(
            sa.text("INSERT INTO bench_params VALUES (:p, :n)"), {"p": json.dumps(unit.params()), "n": summary.rows}
        )
    if unit.backend == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM ANALYZE air_observations"))
            conn.execute(sa.text("VACUUM ANALYZE stations"))
    else:
        with engine.connect() as conn:
            conn.execute(sa.text("ANALYZE TABLE air_observations, stations"))
    engine.dispose()
    return summary.rows


def append_increment(unit: Unit) -> int:
    """Append ``INCREMENT_DAYS`` days (about 1% new rows); returns the rows added."""
    before = row_count(unit)
    for _ in range(INCREMENT_DAYS):
        monitoring.append_day(unit.url, seed=unit.seed)
    return row_count(unit) - before


if __name__ == "__main__":
    import sys

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("units").setLevel(logging.WARNING)
    for key in sys.argv[1:] or list(UNITS):
        print(key, ensure(UNITS[key]), flush=True)
