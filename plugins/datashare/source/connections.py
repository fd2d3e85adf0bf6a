"""Resolve Airflow connection ids into SQLAlchemy URLs, inside or outside Airflow.

Secrets never live in the repository: a connection comes from the ``AIRFLOW_CONN_<ID>`` environment
variable (Airflow's JSON or URI form) or, inside Airflow, from whatever secrets backend Airflow has.
The engine and the CLI work the same way with or without a running Airflow.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from sqlalchemy.engine import URL, make_url

from datashare.exceptions import ConfigError

log = logging.getLogger(__name__)

_DRIVERS = {
    "postgres": "postgresql+psycopg",
    "postgresql": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mysql+pymysql",
    "sqlite": "sqlite",
}


@dataclass(frozen=True)
class ConnectionInfo:
    """The fields of an Airflow connection that a database URL needs."""

    conn_id: str
    conn_type: str
    host: str = ""
    login: str | None = None
    password: str | None = None
    port: int | None = None
    schema: str = ""

    def sqlalchemy_url(self) -> URL:
        """The SQLAlchemy URL for this connection (wheel-only drivers: psycopg 3, PyMySQL)."""
        driver = _DRIVERS.get(self.conn_type)
        if driver is None:
            raise ConfigError(
                f"connection {self.conn_id!r}: conn_type {self.conn_type!r} is not supported; "
                f"expected one of {sorted(_DRIVERS)}"
            )
        if driver == "sqlite":
            if not self.host:
                raise ConfigError(f"connection {self.conn_id!r}: a sqlite connection needs the file path as host")
            return make_url(f"sqlite:///{self.host}")
        query = {"charset": "utf8mb4"} if driver.startswith("mysql") else {}
        return URL.create(
            driver,
            username=self.login or None,
            password=self.password or None,
            host=self.host or None,
            port=self.port,
            database=self.schema or None,
            query=query,
        )

    def describe(self) -> str:
        """Where the connection points, without credentials, for error messages and logs."""
        if self.conn_type == "sqlite":
            return f"sqlite file {self.host}"
        port = f":{self.port}" if self.port else ""
        return f"{self.conn_type} at {self.host or 'localhost'}{port}/{self.schema}"


def _parse_env_value(conn_id: str, value: str) -> ConnectionInfo:
    value = value.strip()
    if value.startswith("{"):
        try:
            data = json.loads(value)
        except json.JSONDecodeError as exc:
            env = f"AIRFLOW_CONN_{conn_id.upper()}"
            raise ConfigError(f"connection {conn_id!r}: {env} is not valid JSON: {exc}") from None
        if not isinstance(data, dict) or "conn_type" not in data:
            raise ConfigError(f"connection {conn_id!r}: the JSON form needs at least 'conn_type'")
        port = data.get("port")
        return ConnectionInfo(
            conn_id=conn_id,
            conn_type=str(data["conn_type"]).replace("-", "_"),
            host=str(data.get("host") or ""),
            login=data.get("login"),
            password=data.get("password"),
            port=int(port) if port not in (None, "") else None,
            schema=str(data.get("schema") or ""),
        )
    parts = urlsplit(value)
    if not parts.scheme:
        raise ConfigError(f"connection {conn_id!r}: AIRFLOW_CONN_{conn_id.upper()} is neither a URI nor JSON")
    if parts.scheme == "sqlite":
        return ConnectionInfo(conn_id=conn_id, conn_type="sqlite", host=unquote(parts.netloc + parts.path))
    return ConnectionInfo(
        conn_id=conn_id,
        conn_type=parts.scheme.replace("-", "_"),
        host=unquote(parts.hostname or ""),
        login=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        port=parts.port,
        schema=unquote(parts.path.lstrip("/")),
    )


def _airflow_connection(conn_id: str) -> Any:
    """Airflow's connection (secrets backends, metadata database), or None without Airflow or without it."""
    try:
        from airflow.sdk import BaseHook
    except ImportError:  # the engine runs without Airflow too
        return None
    try:
        return BaseHook.get_connection(conn_id)
    except Exception as exc:
        log.debug("Airflow has no connection %s: %s", conn_id, exc)
        return None


def _from_airflow(conn_id: str) -> ConnectionInfo | None:
    """Ask Airflow (secrets backends, metadata database) when it is installed and configured."""
    conn = _airflow_connection(conn_id)
    if conn is None:
        return None
    return ConnectionInfo(
        conn_id=conn_id,
        conn_type=(conn.conn_type or "").replace("-", "_"),
        host=conn.host or "",
        login=conn.login,
        password=conn.password,
        port=conn.port,
        schema=conn.schema or "",
    )


def get_connection(conn_id: str) -> ConnectionInfo:
    """Find a connection by id: environment first, then Airflow."""
    value = os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}")
    info = _parse_env_value(conn_id, value) if value else _from_airflow(conn_id)
    if info is None:
        raise ConfigError(
            f"connection {conn_id!r} is not defined: set AIRFLOW_CONN_{conn_id.upper()} "
            "or add it in Airflow (Admin > Connections)"
        )
    return info


def connection_env_value(url: str) -> str:
    """The ``AIRFLOW_CONN_*`` JSON value for a SQLAlchemy URL (used by the demo and the tests)."""
    u = make_url(url)
    backend = u.get_backend_name()
    if backend == "sqlite":
        return json.dumps({"conn_type": "sqlite", "host": u.database})
    conn_type = {"postgresql": "postgres", "mysql": "mysql", "mariadb": "mysql"}.get(backend)
    if conn_type is None:
        raise ConfigError(f"cannot express {backend!r} URLs as an Airflow connection")
    return json.dumps(
        {
            "conn_type": conn_type,
            "host": u.host or "",
            "login": u.username,
            "password": u.password,
            "port": u.port,
            "schema": u.database or "",
        }
    )


def redact(url: str | URL) -> str:
    """A URL string with its password hidden."""
    return make_url(str(url) if isinstance(url, URL) else url).render_as_string(hide_password=True)


def connection_fields(conn_id: str) -> dict[str, Any] | None:
    """Every field of a connection, ``extra`` parsed into a dict; None when it is not defined.

    For connections that are not databases (the alert webhook or mail server): environment first
    (``AIRFLOW_CONN_<ID>``, JSON or URI form, URI query parameters become ``extra``), then Airflow.
    """
    value = os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}")
    if value:
        info = _parse_env_value(conn_id, value)
        extra: Any = {}
        if value.strip().startswith("{"):
            extra = json.loads(value).get("extra") or {}
        else:
            extra = dict(parse_qsl(urlsplit(value.strip()).query))
        if isinstance(extra, str):
            try:
                extra = json.loads(extra) if extra.strip() else {}
            except json.JSONDecodeError as exc:
                raise ConfigError(f"connection {conn_id!r}: 'extra' is not valid JSON: {exc}") from None
        if not isinstance(extra, dict):
            raise ConfigError(f"connection {conn_id!r}: 'extra' must be a JSON object")
        return {**asdict(info), "extra": extra}
    conn = _airflow_connection(conn_id)
    if conn is None:
        return None
    return {
        "conn_id": conn_id,
        "conn_type": (conn.conn_type or "").replace("-", "_"),
        "host": conn.host or "",
        "login": conn.login,
        "password": conn.password,
        "port": conn.port,
        "schema": conn.schema or "",
        "extra": conn.extra_dejson or {},
    }
