"""Shared fixtures: an isolated Airflow home, throwaway PostgreSQL and MariaDB databases.

Tests that need a server skip with the reason when it is unreachable, except when
``DATASHARE_REQUIRE_SERVICES=1`` (CI), where a missing server is a failure.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
POSTGRES_ADMIN = os.environ.get("DATASHARE_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
MARIADB_ADMIN = os.environ.get("DATASHARE_TEST_MARIADB", "mysql+pymysql://root@127.0.0.1:3306/mysql")

# Airflow reads its configuration when first imported, so the isolated home is set before anything imports it.
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="datashare-test-airflow-"))
os.environ.update(
    {
        "AIRFLOW_HOME": str(_AIRFLOW_HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_AIRFLOW_HOME / 'airflow.db'}",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(48),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "GX_ANALYTICS_ENABLED": "false",
        "DATASHARE_RETRY_DELAY_S": "1",
        "DATASHARE_RETRIES": "1",
        # The suites' freshness rules compare with "now": tests pin it just after the units' first simulated day.
        "DATASHARE_NOW": "2026-11-02T12:00:00+00:00",
        # PostgreSQL roles are cluster-wide: the session's roles carry a prefix and are dropped at the end.
        "DATASHARE_SQL_ROLE_PREFIX": f"t{secrets.token_hex(3)}_",
    }
)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Drop the PostgreSQL roles this session created (their test databases are gone by now)."""
    prefix = os.environ["DATASHARE_SQL_ROLE_PREFIX"]
    try:
        import sqlalchemy as sa

        engine = sa.create_engine(POSTGRES_ADMIN, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            roles = (
                conn.execute(sa.text("SELECT rolname FROM pg_roles WHERE starts_with(rolname, :p)"), {"p": prefix})
                .scalars()
                .all()
            )
            for role in roles:
                conn.execute(sa.text(f'DROP OWNED BY "{role}"'))
                conn.execute(sa.text(f'DROP ROLE IF EXISTS "{role}"'))
        engine.dispose()
    except Exception:  # no server: nothing to clean
        pass


def unavailable(what: str, error: BaseException) -> None:
    """Skip (or, in CI, fail) a test whose server is unreachable."""
    message = f"{what} is unreachable: {str(error).strip().splitlines()[0] if str(error).strip() else error!r}"
    if os.environ.get("DATASHARE_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{message} (DATASHARE_REQUIRE_SERVICES=1: services are required)")
    pytest.skip(message)


def _throwaway(admin_url: str, what: str, quote: str) -> Iterator[str]:
    import sqlalchemy as sa

    name = f"datashare_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            extra = " CHARACTER SET utf8mb4 COLLATE utf8mb4_bin" if quote == "`" else ""
            conn.execute(sa.text(f"CREATE DATABASE {quote}{name}{quote}{extra}"))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        unavailable(what, exc.orig or exc)
    url = sa.engine.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            if quote == '"':
                drop_share_databases(url)  # the SQL share's recipient databases, named after this one
                conn.execute(
                    sa.text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE datname = :n AND pid <> pg_backend_pid()"
                    ),
                    {"n": name},
                )
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {quote}{name}{quote}"))
        admin.dispose()


def drop_share_databases(url: str) -> list[str]:
    """Drop the recipient databases a PostgreSQL SQL share at ``url`` made (``<database>__<code>``).

    Roles that hold privileges in them cannot be dropped before they are, so role fixtures call this first.
    """
    import sqlalchemy as sa

    name = sa.engine.make_url(url).database
    admin = sa.create_engine(POSTGRES_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            found = conn.execute(
                sa.text("SELECT datname FROM pg_database WHERE starts_with(datname, :p) ORDER BY 1"),
                {"p": f"{name}__"},
            ).scalars()
            dropped = list(found)
            for database in dropped:
                conn.execute(
                    sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
                    {"n": database},
                )
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{database}"'))
    finally:
        admin.dispose()
    return dropped


@pytest.fixture
def postgres_db() -> Iterator[str]:
    """URL of a fresh, empty PostgreSQL database, dropped afterwards."""
    yield from _throwaway(POSTGRES_ADMIN, "PostgreSQL at 127.0.0.1:5432", '"')


@pytest.fixture
def share_databases() -> Callable[[str], list[str]]:
    """A function that drops the recipient databases of the PostgreSQL SQL share at a URL (see below)."""
    return drop_share_databases


@pytest.fixture
def mariadb_db() -> Iterator[str]:
    """URL of a fresh, empty MariaDB database, dropped afterwards."""
    yield from _throwaway(MARIADB_ADMIN, "MariaDB at 127.0.0.1:3306", "`")


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """The isolated Airflow home with its metadata database migrated (about 6 s, once per session)."""
    airflow = Path(sys.executable).with_name("airflow")
    result = subprocess.run([str(airflow), "db", "migrate"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return _AIRFLOW_HOME


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """A release root and SQL share of the test's own; returns a function that points a connection at a URL."""
    from datashare.source.connections import connection_env_value

    monkeypatch.setenv("DATASHARE_HOME", str(REPO))
    monkeypatch.setenv("DATASHARE_RELEASE_ROOT", str(tmp_path / "releases"))
    monkeypatch.setenv("AIRFLOW_CONN_DATASHARE_SHARE", connection_env_value(f"sqlite:///{tmp_path / 'share.sqlite'}"))

    def connect(conn_id: str, url: str) -> Path:
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", connection_env_value(url))
        return tmp_path

    return connect


class _Hook(BaseHTTPRequestHandler):
    """Answers 204; ``/broken`` always 500; a path starting ``/flaky`` 500 the first time it is hit, then 204."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        hits = sum(1 for r in self.server.received if r["path"] == self.path)
        self.server.received.append(
            {"path": self.path, "type": self.headers["Content-Type"], "body": body, "headers": dict(self.headers)}
        )
        failing = self.path == "/broken" or (self.path.startswith("/flaky") and hits == 0)
        self.send_response(500 if failing else 204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:  # keep the test output quiet
        pass


@pytest.fixture
def webhook() -> Iterator[tuple[int, list[dict]]]:
    """A webhook receiver on a free loopback port; yields (port, received requests)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    server.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], server.received
    server.shutdown()
    server.server_close()
