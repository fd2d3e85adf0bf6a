"""Alert channels: Airflow's own notifiers (SMTP and HTTP providers), read from the alert connection.

:mod:`datashare.notify.alerts` builds the messages and imports this module only when an alert is sent,
so DAG files that reference its ``on_failure_callback`` never load the providers at parse time.

The notifiers are Airflow's ``SmtpNotifier`` and ``HttpNotifier``, run with their ``notify`` method: the
message is our finished text, never a Jinja template (a ``{{`` in an error message must reach the reader
as written). Their hooks read the connection the way Airflow's connection forms write it, and also
accept the extras this project documented before the notifiers (``from``, ``ssl``, ``starttls``; a
``schema`` that is a path; ``extra.endpoint``), so connections already set keep working:

- SMTP: *From email* (``from_email``) or ``from``; *Disable SSL* / *Disable TLS* (``disable_ssl``,
  ``disable_tls``) when set, otherwise ``ssl`` / ``starttls`` (both off by default: plain SMTP, as before);
  *Connection timeout* (``timeout``, 10 s by default); recipients in the extra ``to``.
- HTTP: the URL is ``host`` when it holds a scheme, otherwise ``schema`` (``http``/``https``, any other
  value is the path), ``host``, ``port`` and ``extra.endpoint``.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from functools import cached_property
from typing import Any

from airflow.providers.http.hooks.http import HttpHook
from airflow.providers.http.notifications.http import HttpNotifier
from airflow.providers.smtp.hooks.smtp import SmtpHook
from airflow.providers.smtp.notifications.smtp import SmtpNotifier
from airflow.sdk.definitions.context import Context
from requests import Session

DEFAULT_TIMEOUT_S = 10.0


def webhook_url(conn: Mapping[str, Any]) -> str:
    """The webhook URL of an http alert connection (fields as :func:`connection_fields` gives them)."""
    from datashare.exceptions import ConfigError

    host = str(conn.get("host") or "")
    if "://" in host:
        return host
    if not host:
        raise ConfigError(f"connection {conn['conn_id']!r}: a webhook needs the URL (or host) in 'host'")
    schema = str(conn.get("schema") or "")
    scheme = schema if schema in ("http", "https") else "http"
    path = "" if schema in ("http", "https", "") else "/" + schema.lstrip("/")
    endpoint = str((conn.get("extra") or {}).get("endpoint") or "")
    port = f":{conn['port']}" if conn.get("port") else ""
    return f"{scheme}://{host}{port}{path}{endpoint}"


class AlertHttpHook(HttpHook):
    """Airflow's HTTP hook with the alert connection's URL rule (a ``schema`` that is not a scheme is a path)."""

    def _set_base_url(self, connection: Any) -> None:
        super()._set_base_url(connection)
        self.base_url = webhook_url(
            {
                "conn_id": connection.conn_id,
                "host": connection.host,
                "schema": connection.schema,
                "port": connection.port,
                "extra": connection.extra_dejson,
            }
        )

    def _configure_session_from_extra(
        self, session: Session, connection: Any, extra_options: dict[str, Any]
    ) -> Session:
        session = super()._configure_session_from_extra(session, connection, extra_options)
        session.headers.pop("endpoint", None)  # part of the URL, not a header to send
        return session


class AlertHttpNotifier(HttpNotifier):
    """``HttpNotifier`` posting through :class:`AlertHttpHook`."""

    @cached_property
    def hook(self) -> HttpHook:
        return AlertHttpHook(method=self.method, http_conn_id=self.http_conn_id)


class AlertSmtpHook(SmtpHook):
    """Airflow's SMTP hook; the form's fields first, then the extras documented before the notifiers."""

    @property
    def from_email(self) -> str | None:
        extra = self.conn.extra_dejson
        return extra.get("from_email") or extra.get("from")

    @property
    def use_ssl(self) -> bool:
        extra = self.conn.extra_dejson
        return not _flag(extra["disable_ssl"]) if "disable_ssl" in extra else _flag(extra.get("ssl", False))

    @property
    def smtp_starttls(self) -> bool:
        extra = self.conn.extra_dejson
        return not _flag(extra["disable_tls"]) if "disable_tls" in extra else _flag(extra.get("starttls", False))

    @property
    def timeout(self) -> int:
        return int(float(self.conn.extra_dejson.get("timeout", DEFAULT_TIMEOUT_S)))

    @property
    def smtp_retry_limit(self) -> int:
        return int(self.conn.extra_dejson.get("retry_limit", 0))


def _flag(value: Any) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on") if isinstance(value, str) else bool(value)


class AlertSmtpNotifier(SmtpNotifier):
    """``SmtpNotifier`` sending through :class:`AlertSmtpHook`."""

    @cached_property
    def hook(self) -> SmtpHook:
        return AlertSmtpHook(smtp_conn_id=self.smtp_conn_id, auth_type=self.auth_type)


def html_body(text: str) -> str:
    """The alert text as the HTML part ``SmtpNotifier`` sends: escaped, line breaks kept."""
    return f'<pre style="font-family: sans-serif; white-space: pre-wrap">{html.escape(text)}</pre>'


def http_notifier(conn_id: str, payload: Mapping[str, Any], *, timeout: float) -> HttpNotifier:
    """The notifier that POSTs ``payload`` as JSON to the webhook of connection ``conn_id``."""
    return AlertHttpNotifier(
        http_conn_id=conn_id,
        method="POST",
        json=json.loads(json.dumps(payload, ensure_ascii=False, default=str)),
        extra_options={"timeout": timeout},
    )


def smtp_notifier(conn_id: str, *, subject: str, text: str, to: list[str], from_email: str | None) -> SmtpNotifier:
    """The notifier that e-mails ``text`` (as HTML, UTF-8) through connection ``conn_id``."""
    return AlertSmtpNotifier(
        smtp_conn_id=conn_id, to=to, from_email=from_email, subject=subject, html_content=html_body(text)
    )


def send(notifier: HttpNotifier | SmtpNotifier) -> None:
    """Run the notifier now, outside a task's callback: an empty context, no template rendering."""
    notifier.notify(Context())
