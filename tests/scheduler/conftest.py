"""The real-scheduler suite's fixtures: one stack for the module, every DAG triggered through the REST API.

``DATASHARE_SCHEDULER_STAGING=shared`` gives both workers one staging folder (what a single host has);
the default, ``per-worker``, gives each its own, as two containers or machines have.
"""

from __future__ import annotations

import atexit
import os
import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest
from scheduler_run import Outcome, report, run_everything
from stack import MARIADB_ADMIN, POSTGRES_ADMIN, REDIS, Stack, StackError

STAGING = os.environ.get("DATASHARE_SCHEDULER_STAGING", "per-worker")
RUN_TIMEOUT_S = float(os.environ.get("DATASHARE_SCHEDULER_TIMEOUT_S", "900"))
POSTGRES_UNITS = ("monre_monitoring", "monre_land", "monre_water_quality", "monre_catalogues")
MARIADB_UNITS = ("monre_water_resources", "monre_public_services")


def _reachable(what: str, check: Any) -> None:
    """Skip when a server is down, or fail in CI (``DATASHARE_REQUIRE_SERVICES=1``), as tests/conftest.py does."""
    try:
        check()
    except Exception as exc:  # whatever the client raises: the server is not there
        message = f"{what} is unreachable: {exc}"
        if os.environ.get("DATASHARE_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{message} (DATASHARE_REQUIRE_SERVICES=1: services are required)")
        pytest.skip(message)


def _check_services() -> None:
    import redis
    import sqlalchemy as sa

    def ping(url: str) -> None:
        engine = sa.create_engine(url)
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        finally:
            engine.dispose()

    _reachable("PostgreSQL at 127.0.0.1:5432", lambda: ping(POSTGRES_ADMIN))
    _reachable("MariaDB at 127.0.0.1:3306", lambda: ping(MARIADB_ADMIN))
    _reachable(f"Redis at {REDIS}", lambda: redis.Redis.from_url(REDIS, socket_timeout=3).ping())


def _say(request: pytest.FixtureRequest, line: str) -> None:
    """Print past pytest's capture: the suite reports where its time goes."""
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if capture is None:  # pragma: no cover - pytest -p no:capture
        print(line, flush=True)
        return
    with capture.global_and_fixture_disabled():
        print(line, flush=True)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Stack]:
    """Airflow's services on loopback with unit databases for every dataset and a PostgreSQL SQL share."""
    from datashare.tools.seed import seed_units

    _check_services()
    s = Stack(tmp_path_factory.mktemp("scheduler"), shared_staging=STAGING == "shared")
    atexit.register(s.stop)  # also when pytest itself is interrupted
    request.addfinalizer(s.stop)
    started = time.perf_counter()
    units = {c: s.postgres_database(c.removeprefix("monre_")) for c in POSTGRES_UNITS}
    units |= {c: s.mariadb_database(c.removeprefix("monre_")) for c in MARIADB_UNITS}
    seed_units(units, resolve=units.__getitem__)
    s.timings["unit databases generated"] = round(time.perf_counter() - started, 2)
    share = s.postgres_database("share")
    try:
        s.start({**units, "datashare_share": share}, {"DATASHARE_PSEUDONYM_KEY": secrets.token_hex(32)})
    except StackError as exc:
        pytest.fail(f"the stack did not start: {exc}")
    _say(request, f"\nscheduler stack ({STAGING} staging) in {s.base}; logs in {s.base / 'logs'}")
    yield s


@pytest.fixture(scope="module")
def outcome(stack: Stack, request: pytest.FixtureRequest) -> Outcome:
    """Every source DAG triggered (land_parcels first), two of them twice; the derived DAG runs on Assets."""
    from datashare.settings import Settings
    from datashare.spec import load_specs

    specs, errors = load_specs(Settings.from_env().datasets_dir)
    assert not errors, errors
    result = run_everything(stack, specs, RUN_TIMEOUT_S)
    report(result, lambda line: _say(request, line))
    return result
