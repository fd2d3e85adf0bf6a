"""Alerts: clear messages, delivered to a local webhook and a local SMTP server, or logged without a connection."""

from __future__ import annotations

import base64
import email
import email.message
import email.policy
import html
import json
import logging
import re
import socket
import socketserver
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from datashare.exceptions import ConfigError, ValidationFailed
from datashare.notify.alerts import (
    AlertDeliveryError,
    build_message,
    deliver,
    failed_run_message,
    freshness_message,
    on_failure_callback,
    quarantine_message,
    quarantine_needs_alert,
)
from datashare.source.connections import connection_fields
from datashare.spec import load_spec
from datashare.store import Release

REPO = Path(__file__).resolve().parents[2]
DATASET = "air_quality_hourly"
ENV = "AIRFLOW_CONN_DATASHARE_ALERTS"
SUITE_FAILURE = (
    "air_quality_hourly: validation failed on 2 of 12 rules: expect_column_values_to_be_between:pm25 (40 rows), "
    "expect_column_values_to_be_in_set:province_code (3 rows). Nothing was published; report: /x/report.html"
)


# -- local receivers ------------------------------------------------------------------------------


class _Smtp(socketserver.StreamRequestHandler):
    """Just enough SMTP (RFC 5321) for smtplib: EHLO, AUTH PLAIN, MAIL, RCPT, DATA, QUIT."""

    def reply(self, text: str) -> None:
        self.wfile.write(text.encode() + b"\r\n")

    def handle(self) -> None:
        self.reply("220 localhost test receiver")
        mail: dict[str, Any] = {"rcpt": [], "auth": None}
        while line := self.rfile.readline():
            verb, _, arg = line.decode().rstrip("\r\n").partition(" ")
            verb = verb.upper()
            if verb == "EHLO":
                self.reply("250-localhost\r\n250-AUTH PLAIN\r\n250 8BITMIME")
            elif verb == "AUTH":
                mail["auth"] = base64.b64decode(arg.split()[1]).split(b"\0")[1:]
                self.reply("235 accepted")
            elif verb == "MAIL":
                mail["from"] = arg
                self.reply("250 ok")
            elif verb == "RCPT":
                mail["rcpt"].append(arg)
                self.reply("250 ok")
            elif verb == "DATA":
                self.reply("354 go on")
                lines = []
                while (data := self.rfile.readline()) not in (b".\r\n", b""):
                    lines.append(data[1:] if data.startswith(b"..") else data)
                self.server.received.append({**mail, "data": b"".join(lines)})
                self.reply("250 queued")
            elif verb == "QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("250 ok")


@pytest.fixture
def smtp_server() -> Iterator[tuple[int, list[dict]]]:
    """An SMTP receiver on a free loopback port; yields (port, received mails)."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Smtp)
    server.daemon_threads = True
    server.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], server.received
    server.shutdown()
    server.server_close()


# -- messages -------------------------------------------------------------------------------------


def test_failed_run_names_dataset_task_rules_and_row_counts() -> None:
    m = failed_run_message(DATASET, task_id="validate", error=SUITE_FAILURE, run_id="scheduled__1")

    assert m.kind == "run_failed" and m.dataset_id == DATASET
    assert m.rule == "expect_column_values_to_be_between:pm25, expect_column_values_to_be_in_set:province_code"
    assert m.numbers["failed_rules"] == {
        "expect_column_values_to_be_between:pm25": 40,
        "expect_column_values_to_be_in_set:province_code": 3,
    }
    assert m.subject == "[datashare] air_quality_hourly: run failed in task validate"
    assert "Bộ dữ liệu air_quality_hourly: lần chạy (run scheduled__1) thất bại ở bước validate" in m.text
    assert "Rules failed: expect_column_values_to_be_between:pm25: 40 failing rows" in m.text
    assert m.text.index("Bộ dữ liệu") < m.text.index("Dataset")  # Vietnamese first
    other = failed_run_message(DATASET, task_id="extract", error="connection refused\n  at 127.0.0.1:5432")
    assert other.rule == "task extract" and "connection refused at 127.0.0.1:5432" in other.text


def test_quarantine_message_gives_share_threshold_and_rules() -> None:
    m = quarantine_message(
        DATASET, quarantined=30, total=1000, threshold=0.05, by_rule={"expect_column_values_to_be_between:pm25": 30}
    )
    assert m.rule == "quarantine.max_share"
    assert "30 of 1,000 rows quarantined (3.00%), over half the quarantine.max_share threshold of 5.00%" in m.text
    assert "30 trên 1,000 dòng bị cách ly (3.00%)" in m.text
    assert "expect_column_values_to_be_between:pm25: 30" in m.text
    assert m.numbers["share"] == pytest.approx(0.03)


@pytest.mark.parametrize(
    ("quarantined", "total", "threshold", "alert"),
    [(26, 1000, 0.05, True), (25, 1000, 0.05, False), (0, 1000, 0.05, False), (1, 0, 0.05, False), (1, 10, 0, False)],
)
def test_quarantine_alert_only_over_half_the_threshold(quarantined, total, threshold, alert) -> None:
    assert quarantine_needs_alert(quarantined, total, threshold) is alert


def release(cursor: str | None, committed_at: str = "2026-11-05T01:00:00Z") -> Release:
    return Release(
        dataset_id=DATASET,
        version=3,
        record={"committed_at": committed_at},
        manifest={"datashare": {"source_cursor": cursor}},
    )


def test_stale_dataset_is_measured_by_the_source_cursor_in_vietnam_time() -> None:
    spec = load_spec(REPO / "dags" / "datasets" / f"{DATASET}.yaml")  # freshness.max_age_hours: 36
    now = datetime(2026, 11, 7, 0, 0, tzinfo=UTC)

    m = freshness_message(spec, release("2026-11-04T23:00:00"), now=now)  # 23:00 ICT = 16:00 UTC

    assert m is not None and m.rule == "freshness.max_age_hours"
    assert "the newest data is 56.0 hours old (source_cursor = 2026-11-04T16:00Z)" in m.text
    assert "older than freshness.max_age_hours = 36 hours" in m.text
    assert m.numbers["age_hours"] == 56.0
    assert freshness_message(spec, release("2026-11-06T07:00:00"), now=now) is None  # 24 h old: fresh
    by_commit = freshness_message(spec, release(None, committed_at="2026-11-05T00:00:00Z"), now=now)
    assert by_commit is not None and "48.0 hours old (committed_at = 2026-11-05T00:00Z)" in by_commit.text
    none_yet = freshness_message(spec, None, now=now)
    assert none_yet is not None and "no release has been committed yet" in none_yet.text


def test_build_message_dispatches_and_names_bad_input() -> None:
    m = build_message("quarantine_high", DATASET, quarantined=3, total=100, threshold=0.05)
    assert m.kind == "quarantine_high" and "3 of 100 rows" in m.text
    assert build_message("run_failed", DATASET, task_id="t", error="e").kind == "run_failed"
    with pytest.raises(ValueError, match="unknown alert kind 'nope'"):
        build_message("nope", DATASET)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="quarantine_high"):
        build_message("quarantine_high", DATASET, quarantined=3)


# -- delivery -------------------------------------------------------------------------------------


def test_webhook_receives_the_message_as_json(webhook, monkeypatch: pytest.MonkeyPatch) -> None:
    port, received = webhook
    monkeypatch.setenv(ENV, json.dumps({"conn_type": "http", "host": f"http://127.0.0.1:{port}/hook"}))
    message = quarantine_message(DATASET, quarantined=30, total=1000, threshold=0.05)

    assert deliver(message) == "webhook"

    [request] = received
    assert request["path"] == "/hook" and request["type"].startswith("application/json")
    payload = json.loads(request["body"])
    assert payload["dataset_id"] == DATASET and payload["rule"] == "quarantine.max_share"
    assert payload["text"] == message.text and payload["numbers"]["quarantined"] == 30


def test_webhook_from_a_uri_connection(webhook, monkeypatch: pytest.MonkeyPatch) -> None:
    port, received = webhook
    monkeypatch.setenv(ENV, f"http://127.0.0.1:{port}/alerts")
    assert deliver(failed_run_message(DATASET, task_id="extract", error="boom")) == "webhook"
    assert received[0]["path"] == "/alerts"


def test_webhook_errors_name_the_url(webhook, monkeypatch: pytest.MonkeyPatch) -> None:
    port, _ = webhook
    message = failed_run_message(DATASET, task_id="extract", error="boom")
    monkeypatch.setenv(ENV, json.dumps({"conn_type": "http", "host": f"http://127.0.0.1:{port}/broken"}))
    with pytest.raises(AlertDeliveryError, match=rf"127\.0\.0\.1:{port}/broken answered HTTP 500"):
        deliver(message)
    monkeypatch.setenv(ENV, json.dumps({"conn_type": "http", "host": "http://127.0.0.1:1/hook"}))
    with pytest.raises(AlertDeliveryError, match="unreachable"):
        deliver(message)
    monkeypatch.setenv(ENV, json.dumps({"conn_type": "postgres", "host": "db"}))
    with pytest.raises(ConfigError, match="conn_type 'postgres' cannot deliver alerts"):
        deliver(message)


def test_email_reaches_the_smtp_server(smtp_server, monkeypatch: pytest.MonkeyPatch) -> None:
    port, received = smtp_server
    conn = {
        "conn_type": "smtp",
        "host": "127.0.0.1",
        "port": port,
        "login": "alerts",
        "password": "s3cret",
        "extra": {"from": "datashare@example.gov.vn", "to": ["ops@example.gov.vn", "audit@example.gov.vn"]},
    }
    monkeypatch.setenv(ENV, json.dumps(conn))
    message = failed_run_message(DATASET, task_id="validate", error=SUITE_FAILURE)

    assert deliver(message) == "email"

    [mail] = received
    assert mail["auth"] == [b"alerts", b"s3cret"]
    assert mail["rcpt"] == ["TO:<ops@example.gov.vn>", "TO:<audit@example.gov.vn>"]
    parsed = email.message_from_bytes(mail["data"].replace(b"\r\n", b"\n"), policy=email.policy.default)
    assert parsed["Subject"] == message.subject and parsed["From"] == "datashare@example.gov.vn"
    assert _mail_text(parsed) == message.text  # Vietnamese survives the trip


def _mail_text(parsed: email.message.EmailMessage) -> str:
    """The alert text of a mail sent by Airflow's SmtpNotifier: its one HTML part, tags dropped, unescaped."""
    part = parsed.get_body(preferencelist=("html",))
    assert part is not None
    return html.unescape(re.sub(r"<[^>]+>", "", part.get_content()))


def test_email_needs_from_and_to(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, json.dumps({"conn_type": "email", "host": "127.0.0.1", "port": 1, "extra": {}}))
    with pytest.raises(ConfigError, match="need extra 'from' and 'to'"):
        deliver(failed_run_message(DATASET, task_id="t", error="e"))


@pytest.fixture
def no_alert_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    """No alert connection anywhere; looked up once here, because Airflow's first import resets logging handlers."""
    monkeypatch.delenv(ENV, raising=False)
    assert connection_fields("datashare_alerts") is None


def test_without_a_connection_the_message_is_logged(no_alert_connection, caplog: pytest.LogCaptureFixture) -> None:
    message = quarantine_message(DATASET, quarantined=30, total=1000, threshold=0.05)
    with caplog.at_level(logging.WARNING, logger="datashare.notify.alerts"):
        assert deliver(message) == "log"
    [record] = [r for r in caplog.records if r.name == "datashare.notify.alerts"]
    assert record.levelno == logging.WARNING and message.text in record.getMessage()


def test_failure_callback_alerts_with_the_task_and_the_error(webhook, monkeypatch: pytest.MonkeyPatch) -> None:
    port, received = webhook
    monkeypatch.setenv(ENV, json.dumps({"conn_type": "http", "host": f"http://127.0.0.1:{port}/hook"}))
    context = {
        "dag": SimpleNamespace(dag_id=DATASET),
        "task_instance": SimpleNamespace(dag_id=DATASET, task_id="validate"),
        "exception": ValidationFailed(SUITE_FAILURE),
        "run_id": "scheduled__2026-11-05T00:00:00+00:00",
    }

    on_failure_callback(context)

    payload = json.loads(received[0]["body"])
    assert payload["dataset_id"] == DATASET and payload["numbers"]["task_id"] == "validate"
    assert "expect_column_values_to_be_between:pm25: 40 failing rows" in payload["text"]
    assert "ValidationFailed: air_quality_hourly: validation failed on 2 of 12 rules" in payload["text"]


def test_failure_callback_never_raises_on_a_delivery_failure(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(ENV, json.dumps({"conn_type": "http", "host": "http://127.0.0.1:1/hook"}))
    context = {"task_instance": SimpleNamespace(dag_id=DATASET, task_id="extract"), "exception": OSError("gone")}
    with caplog.at_level(logging.ERROR, logger="datashare.notify.alerts"):
        on_failure_callback(context)
    assert "Could not deliver the alert" in caplog.text and "OSError: gone" in caplog.text


def test_factory_wires_the_callback_and_alerts_stays_import_light() -> None:
    from datashare.orchestration.factory import default_args

    spec = load_spec(REPO / "dags" / "datasets" / f"{DATASET}.yaml")
    assert default_args(spec)["on_failure_callback"] is on_failure_callback
    heavy = ("sqlalchemy", "pandas", "pyarrow", "great_expectations", "airflow", "smtplib", "urllib.request")
    code = f"import sys, datashare.notify.alerts; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# -- Airflow's notifiers, with connections as Airflow's connection forms write them -----------------


class _Inbox:
    """An aiosmtpd handler keeping every envelope it accepts."""

    def __init__(self) -> None:
        self.envelopes: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"


@pytest.fixture
def aiosmtpd_server() -> Iterator[tuple[int, _Inbox, list[tuple[str, str]]]]:
    """A real SMTP server (aiosmtpd) on loopback that takes AUTH LOGIN/PLAIN without TLS; (port, inbox, logins)."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    logins: list[tuple[str, str]] = []

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        assert isinstance(data, LoginPassword)
        logins.append((data.login.decode(), data.password.decode()))
        return AuthResult(success=True)

    with socket.socket() as probe:  # aiosmtpd's Controller checks readiness by connecting: it needs a real port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    inbox = _Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, authenticator=authenticator, auth_require_tls=False)
    controller.start()
    try:
        yield port, inbox, logins
    finally:
        controller.stop()


def test_email_through_smtp_notifier_with_a_form_made_connection(
    aiosmtpd_server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SMTP connection form's fields (From email, Disable SSL, Disable TLS) and the extra 'to' are enough."""
    port, inbox, logins = aiosmtpd_server
    conn = {
        "conn_type": "smtp",
        "host": "127.0.0.1",
        "port": port,
        "login": "alerts",
        "password": "s3cret",
        "extra": {
            "from_email": "datashare@example.gov.vn",
            "disable_ssl": True,
            "disable_tls": True,
            "timeout": 5,
            "to": "ops@example.gov.vn, audit@example.gov.vn",
        },
    }
    monkeypatch.setenv(ENV, json.dumps(conn))
    message = quarantine_message(DATASET, quarantined=30, total=1000, threshold=0.05, by_rule={"r<1>": 30})

    assert deliver(message) == "email"

    [envelope] = inbox.envelopes
    assert logins == [("alerts", "s3cret")]
    assert envelope.mail_from == "datashare@example.gov.vn"
    assert envelope.rcpt_tos == ["ops@example.gov.vn", "audit@example.gov.vn"]
    parsed = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
    assert parsed.get_content_type() == "multipart/mixed"  # SmtpNotifier's MIME layout, not a hand-made mail
    assert parsed["Subject"] == message.subject
    assert _mail_text(parsed) == message.text  # "<" escaped in the HTML part, restored by the reader


def test_smtp_notifier_errors_name_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    conn = {"conn_type": "smtp", "host": "127.0.0.1", "port": 1, "extra": {"from": "a@example.vn", "to": ["b@x.vn"]}}
    monkeypatch.setenv(ENV, json.dumps(conn))
    with pytest.raises(AlertDeliveryError, match=r"mail server 127\.0\.0\.1:1 did not take the alert"):
        deliver(failed_run_message(DATASET, task_id="t", error="e"))


def test_webhook_through_http_notifier_with_a_form_made_connection(webhook, monkeypatch: pytest.MonkeyPatch) -> None:
    """The HTTP connection form's Host, Schema and Port, the path in extra 'endpoint'; text is never a template."""
    port, received = webhook
    conn = {
        "conn_type": "http",
        "host": "127.0.0.1",
        "schema": "http",
        "port": port,
        "extra": {"endpoint": "/hook", "X-Alert-Source": "datashare"},
    }
    monkeypatch.setenv(ENV, json.dumps(conn))
    message = failed_run_message(DATASET, task_id="extract", error="bad value {{ ti.task_id }} in cột số 3")

    assert deliver(message) == "webhook"

    [request] = received
    assert request["path"] == "/hook" and request["type"].startswith("application/json")
    assert request["headers"]["User-Agent"].startswith("python-requests")  # sent by Airflow's HttpHook
    assert request["headers"]["X-Alert-Source"] == "datashare"  # other extras are headers, as in Airflow
    assert "endpoint" not in {h.lower() for h in request["headers"]}
    payload = json.loads(request["body"])
    assert payload == json.loads(json.dumps(message.as_json()))
    assert "{{ ti.task_id }} in cột số 3" in payload["text"]


def test_notifiers_are_airflows() -> None:
    from airflow.providers.http.notifications.http import HttpNotifier
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    from datashare.notify.channels import http_notifier, smtp_notifier

    assert isinstance(http_notifier("datashare_alerts", {"a": 1}, timeout=1), HttpNotifier)
    mail = smtp_notifier("datashare_alerts", subject="s", text="<b>", to=["x@y.vn"], from_email=None)
    assert isinstance(mail, SmtpNotifier) and mail.html_content is not None and "&lt;b&gt;" in mail.html_content
