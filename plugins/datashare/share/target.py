"""The SQL share target: one object, opened once from its connection and handed to every share function.

A :class:`ShareTarget` holds the parsed SQLAlchemy URL of the share (password included, for connecting),
its backend (``postgresql`` or ``sqlite``) and the PostgreSQL schema holding the share. It is validated
once, when opened; what it shows in logs, errors and the ledger (:attr:`ShareTarget.redacted`, ``str()``
and ``repr()``) never carries the password.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal, cast

from datashare.exceptions import ConfigError, PublishError

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

log = logging.getLogger(__name__)

Backend = Literal["postgresql", "sqlite"]
SQL_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
"""A plain SQL name (schema, column): checked before any SQL runs, quoted anyway."""
DEFAULT_SCHEMA = "datashare"


def redacted_url(url: URL) -> str:
    """A URL without its password, for logs and errors (``URL.set(password=None)`` would keep it)."""
    from sqlalchemy.engine import URL

    bare = URL.create(url.drivername, url.username, None, url.host, url.port, url.database, url.query)
    return bare.render_as_string(hide_password=False)


def libpq_uri(url: URL) -> str:
    """``postgresql+psycopg://...`` becomes the libpq URI ``postgresql://...`` that psycopg and ADBC take."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


@dataclass(frozen=True)
class ShareTarget:
    """The SQL share: where, which backend, which schema; opened with :meth:`from_url` or :meth:`from_connection`."""

    url: URL = field(repr=False)
    """The parsed SQLAlchemy URL, password included: never log it (use :attr:`redacted`)."""
    backend: Backend
    schema: str = DEFAULT_SCHEMA
    """PostgreSQL schema holding the share; SQLite has none and ignores it."""

    def __post_init__(self) -> None:
        if self.backend not in ("postgresql", "sqlite"):
            raise PublishError(f"SQL share backend {self.backend!r} is not supported (use postgresql or sqlite)")
        if not isinstance(self.schema, str) or not SQL_NAME.fullmatch(self.schema):
            raise PublishError(f"invalid schema {self.schema!r}: it must match {SQL_NAME.pattern}")

    @classmethod
    def from_url(cls, text: str, *, schema: str = DEFAULT_SCHEMA, name: str = "target_url") -> ShareTarget:
        """Parse and check a SQLAlchemy URL of the share once; ``name`` says where it came from in errors.

        Raises:
            PublishError: the URL does not parse, its backend is neither PostgreSQL nor SQLite, or the
                schema is not a plain SQL name. The message never holds the password.
        """
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url(text)
        except ArgumentError:
            raise PublishError(f"{name} is not a valid SQLAlchemy URL") from None
        return cls.of_url(url, schema=schema, name=name)

    @classmethod
    def of_url(cls, url: URL, *, schema: str = DEFAULT_SCHEMA, name: str = "target_url") -> ShareTarget:
        """A target from an already parsed URL, checked as :meth:`from_url` checks it."""
        backend = url.get_backend_name()
        if backend not in ("postgresql", "sqlite"):
            where = "" if name == "target_url" else f" ({name})"
            raise PublishError(f"SQL share backend {backend!r}{where} is not supported (use postgresql or sqlite)")
        return cls(url, cast(Backend, backend), schema)

    @classmethod
    def from_connection(cls, conn_id: str, *, schema: str = DEFAULT_SCHEMA, default: str | None = None) -> ShareTarget:
        """The share of Airflow connection ``conn_id`` (``AIRFLOW_CONN_<ID>`` or Airflow's secrets).

        Args:
            default: SQLAlchemy URL used when the connection is not defined (or not usable), such as the
                embedded SQLite file; its folder is made. None: the connection's error is raised.

        Raises:
            ConfigError: the connection is not defined and there is no ``default``.
            PublishError: the connection points at a backend the share does not support.
        """
        from datashare.source.connections import get_connection

        try:
            url = get_connection(conn_id).sqlalchemy_url()
        except ConfigError:
            if default is None:
                raise
            target = cls.from_url(default, schema=schema, name=f"the default of connection {conn_id!r}")
            if target.backend == "sqlite" and target.url.database:
                Path(target.url.database).parent.mkdir(parents=True, exist_ok=True)
            log.info("SQL share connection %s not defined; using embedded %s", conn_id, default)
            return target
        return cls.of_url(url, schema=schema, name=f"connection {conn_id!r}")

    @classmethod
    def of(cls, target: ShareTarget | str) -> ShareTarget:
        """``target`` itself, or a URL string opened with :meth:`from_url`."""
        return target if isinstance(target, ShareTarget) else cls.from_url(target)

    def at(self, database: str) -> ShareTarget:
        """The same share pointed at another database of its cluster (same credentials, same schema)."""
        return replace(self, url=self.url.set(database=database))

    @property
    def redacted(self) -> str:
        """The URL without its password, for logs, errors and the ledger."""
        return redacted_url(self.url)

    @property
    def libpq_uri(self) -> str:
        """The libpq URI psycopg and ADBC take (PostgreSQL), password included."""
        return libpq_uri(self.url)

    @property
    def sqlalchemy_url(self) -> str:
        """The SQLAlchemy URL as a string, password included (for ``create_engine``)."""
        return self.url.render_as_string(hide_password=False)

    @property
    def has_roles(self) -> bool:
        """Whether the share has roles and logins (PostgreSQL does; SQLite, for local use, does not)."""
        return self.backend == "postgresql"

    def qualified(self, name: str) -> str:
        """How a view is named in this share: ``<schema>.<name>`` on PostgreSQL, the bare name in SQLite."""
        return f"{self.schema}.{name}" if self.backend == "postgresql" else name

    def __str__(self) -> str:
        return self.redacted
