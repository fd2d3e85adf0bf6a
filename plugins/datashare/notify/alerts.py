"""Alerts: one clear message naming the dataset, the rule and the numbers, delivered by webhook or e-mail.

Three things deserve a person's attention: a run that failed, a quarantine over half its threshold
(the next dirty batch may fail the run) and a dataset older than its spec's freshness allows. Each
becomes an :class:`AlertMessage`, Vietnamese first, then English.

Delivery is Airflow's: the connection ``datashare_alerts`` (``AIRFLOW_CONN_DATASHARE_ALERTS`` first, then
Airflow's secrets backends and Admin > Connections) picks the channel by its type, and the SMTP and HTTP
providers' notifiers send (:mod:`datashare.notify.channels` says which fields they read):

- ``conn_type`` ``http``: ``HttpNotifier`` POSTs the message as JSON to a webhook. The URL is ``host`` when
  it holds a scheme (``{"conn_type": "http", "host": "http://127.0.0.1:8000/hook"}``); otherwise it is built
  from ``schema`` (``http``/``https``, Airflow's HTTP convention; any other value is taken as the path),
  ``host``, ``port`` and ``extra.endpoint``.
- ``conn_type`` ``smtp`` or ``email``: ``SmtpNotifier`` e-mails it through ``host``:``port`` (``login`` and
  ``password`` when set); ``extra`` gives ``to`` (a list) and ``from_email`` (the form's *From email*; ``from``
  also works), and optionally ``disable_ssl``/``disable_tls`` (the form's flags) or ``ssl``/``starttls``
  (booleans; plain SMTP when none is set) and ``timeout`` (seconds).
- no connection: the message is logged at WARNING, nothing else.

The module imports only the standard library at load time (the providers are imported when an alert is
sent), so the DAG factory can reference :func:`on_failure_callback` without slowing DAG parsing.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Literal

from datashare.exceptions import ConfigError, DatashareError

if TYPE_CHECKING:
    from datashare.spec import DatasetSpec
    from datashare.store import Release, ReleaseStore

log = logging.getLogger(__name__)

CONN_ID = "datashare_alerts"
DEFAULT_TIMEOUT_S = 10.0
VIETNAM_TIME = timezone(timedelta(hours=7), "ICT")
"""Naive source cursors are read as Vietnam time: unit databases store local observation hours."""

Kind = Literal["run_failed", "quarantine_high", "stale"]
_RULE_IN_ERROR = re.compile(r"\b(expect_[a-z0-9_]+(?::[^\s,()]+)?) \((\w+) rows\)")


class AlertDeliveryError(DatashareError):
    """The webhook or mail server refused the alert, or could not be reached; worth a retry."""

    retryable = True


@dataclass(frozen=True)
class AlertMessage:
    """One alert: a subject line, a bilingual text body and the numbers behind it."""

    kind: Kind
    dataset_id: str
    rule: str
    """What was broken, e.g. ``quarantine.max_share`` or ``freshness.max_age_hours``."""
    subject: str
    text: str
    """Vietnamese paragraph, blank line, English paragraph."""
    numbers: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """The webhook payload."""
        return asdict(self)


def _pct(value: float) -> str:
    return f"{100 * value:.2f}%"


def failed_run_message(
    dataset_id: str, *, task_id: str, error: str, run_id: str | None = None, error_type: str | None = None
) -> AlertMessage:
    """A run that failed: the task, the error text and, for a failed suite, the rules with their row counts."""
    error = " ".join(str(error).split()) or "no message"
    rules = {m.group(1): m.group(2) for m in _RULE_IN_ERROR.finditer(error)}
    rule = ", ".join(rules) if rules else f"task {task_id}"
    run = f" (run {run_id})" if run_id else ""
    kind_of = f"{error_type}: " if error_type else ""
    listing_vi = "; ".join(f"{r}: {n} dòng lỗi" for r, n in rules.items())
    listing_en = "; ".join(f"{r}: {n} failing rows" for r, n in rules.items())
    vi = f"Bộ dữ liệu {dataset_id}: lần chạy{run} thất bại ở bước {task_id}." + (
        f" Quy tắc không đạt: {listing_vi}." if rules else ""
    )
    en = f"Dataset {dataset_id}: the run{run} failed in task {task_id}." + (
        f" Rules failed: {listing_en}." if rules else ""
    )
    return AlertMessage(
        kind="run_failed",
        dataset_id=dataset_id,
        rule=rule,
        subject=f"[datashare] {dataset_id}: run failed in task {task_id}",
        text=f"{vi}\n\n{en}\n\n{kind_of}{error}",
        numbers={"task_id": task_id, "run_id": run_id, "failed_rules": {r: _int(n) for r, n in rules.items()}},
    )


def _int(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def quarantine_needs_alert(quarantined: int, total: int, threshold: float) -> bool:
    """Whether the quarantined share is over half the threshold (and the threshold allows any at all)."""
    return total > 0 and threshold > 0 and quarantined / total > threshold / 2


def quarantine_message(
    dataset_id: str, *, quarantined: int, total: int, threshold: float, by_rule: Mapping[str, int] | None = None
) -> AlertMessage:
    """Quarantined rows over half the spec's ``quarantine.max_share``: the share, the limit, the rules."""
    share = quarantined / total if total else 0.0
    rules = ", ".join(f"{r}: {n}" for r, n in sorted((by_rule or {}).items()))
    vi = (
        f"Bộ dữ liệu {dataset_id}: {quarantined:,} trên {total:,} dòng bị cách ly ({_pct(share)}), "
        f"vượt quá một nửa ngưỡng quarantine.max_share {_pct(threshold)}."
    )
    en = (
        f"Dataset {dataset_id}: {quarantined:,} of {total:,} rows quarantined ({_pct(share)}), "
        f"over half the quarantine.max_share threshold of {_pct(threshold)}."
    )
    if rules:
        vi += f" Số dòng theo quy tắc: {rules}."
        en += f" Rows per rule: {rules}."
    return AlertMessage(
        kind="quarantine_high",
        dataset_id=dataset_id,
        rule="quarantine.max_share",
        subject=f"[datashare] {dataset_id}: {_pct(share)} of rows quarantined (threshold {_pct(threshold)})",
        text=f"{vi}\n\n{en}",
        numbers={
            "quarantined": quarantined,
            "total": total,
            "share": share,
            "threshold": threshold,
            "by_rule": dict(by_rule or {}),
        },
    )


def stale_message(
    dataset_id: str, *, newest: datetime, max_age_hours: float, now: datetime, measured_by: str
) -> AlertMessage:
    """The newest data is older than ``freshness.max_age_hours``; ``measured_by`` says which timestamp was used."""
    age_h = (now - newest).total_seconds() / 3600
    when = newest.astimezone(UTC).isoformat(timespec="minutes").replace("+00:00", "Z")
    vi = (
        f"Bộ dữ liệu {dataset_id}: dữ liệu mới nhất đã cũ {age_h:.1f} giờ ({measured_by} = {when}), "
        f"quá giới hạn freshness.max_age_hours = {max_age_hours:g} giờ."
    )
    en = (
        f"Dataset {dataset_id}: the newest data is {age_h:.1f} hours old ({measured_by} = {when}), "
        f"older than freshness.max_age_hours = {max_age_hours:g} hours."
    )
    return AlertMessage(
        kind="stale",
        dataset_id=dataset_id,
        rule="freshness.max_age_hours",
        subject=f"[datashare] {dataset_id}: data is {age_h:.1f} h old (limit {max_age_hours:g} h)",
        text=f"{vi}\n\n{en}",
        numbers={
            "age_hours": round(age_h, 3),
            "max_age_hours": max_age_hours,
            "newest": when,
            "measured_by": measured_by,
        },
    )


def build_message(kind: Kind, dataset_id: str, **facts: Any) -> AlertMessage:
    """The message of one kind of alert; ``facts`` are the keyword arguments of that kind's builder.

    ``run_failed``: task_id, error[, run_id, error_type]; ``quarantine_high``: quarantined, total,
    threshold[, by_rule]; ``stale``: newest, max_age_hours, now, measured_by.
    """
    builders: dict[str, Callable[..., AlertMessage]] = {
        "run_failed": failed_run_message,
        "quarantine_high": quarantine_message,
        "stale": stale_message,
    }
    if kind not in builders:
        raise ValueError(f"unknown alert kind {kind!r}; expected one of {sorted(builders)}")
    try:
        return builders[kind](dataset_id, **facts)
    except TypeError as exc:
        raise ValueError(f"alert {kind!r} for {dataset_id}: {exc}") from exc


def newest_data_time(release: Release) -> tuple[datetime, str]:
    """When the newest data of a release is from: its source cursor if it is a time, else its commit time."""
    cursor = release.manifest.get("datashare", {}).get("source_cursor")
    if isinstance(cursor, str) and cursor:
        try:
            parsed = datetime.fromisoformat(cursor.replace("Z", "+00:00"))
        except ValueError:
            parsed = None
        if parsed is not None:
            return (parsed if parsed.tzinfo else parsed.replace(tzinfo=VIETNAM_TIME)), "source_cursor"
    committed = datetime.fromisoformat(str(release.record["committed_at"]).replace("Z", "+00:00"))
    return committed, "committed_at"


def freshness_message(
    spec: DatasetSpec, release: Release | None, *, now: datetime | None = None
) -> AlertMessage | None:
    """An alert when the dataset's newest release is older than its freshness allows (or it has none)."""
    now = now or datetime.now(UTC)
    limit = spec.freshness.max_age_hours
    if release is None:
        text = (
            f"Bộ dữ liệu {spec.id}: chưa có phiên bản nào được công bố (freshness.max_age_hours = {limit} giờ).\n\n"
            f"Dataset {spec.id}: no release has been committed yet (freshness.max_age_hours = {limit} hours)."
        )
        return AlertMessage(
            kind="stale",
            dataset_id=spec.id,
            rule="freshness.max_age_hours",
            subject=f"[datashare] {spec.id}: no release yet",
            text=text,
            numbers={"max_age_hours": limit, "newest": None},
        )
    newest, measured_by = newest_data_time(release)
    if now - newest <= timedelta(hours=limit):
        return None
    return stale_message(spec.id, newest=newest, max_age_hours=limit, now=now, measured_by=measured_by)


# -- delivery ------------------------------------------------------------------------------------


def deliver(message: AlertMessage, *, conn_id: str = CONN_ID) -> str:
    """Send the message through the alert connection; returns the channel used (webhook, email or log).

    The sending is Airflow's: ``HttpNotifier`` for a webhook, ``SmtpNotifier`` for e-mail (see
    :mod:`datashare.notify.channels`), imported here so that loading this module stays cheap.
    """
    from datashare.source.connections import connection_fields

    conn = connection_fields(conn_id)
    if conn is None:
        log.warning("%s\n%s", message.subject, message.text)
        return "log"
    kind = conn["conn_type"]
    if kind in ("http", "https"):
        _post(message, conn)
        return "webhook"
    if kind in ("smtp", "email"):
        _mail(message, conn)
        return "email"
    raise ConfigError(f"connection {conn_id!r}: conn_type {kind!r} cannot deliver alerts; use http, smtp or email")


def _post(message: AlertMessage, conn: Mapping[str, Any]) -> None:
    import requests
    from airflow.providers.common.compat.sdk import AirflowException

    from datashare.notify.channels import http_notifier, send, webhook_url

    url = webhook_url(conn)
    timeout = float(conn["extra"].get("timeout", DEFAULT_TIMEOUT_S))
    notifier = http_notifier(conn["conn_id"], message.as_json(), timeout=timeout)
    try:
        send(notifier)
    except requests.RequestException as exc:
        raise AlertDeliveryError(f"alert webhook {url} is unreachable: {exc}") from exc
    except AirflowException as exc:  # the hook's "<status>:<reason>" for an answer outside 2xx and 3xx
        status, _, reason = str(exc).partition(":")
        if not status.isdigit():
            raise AlertDeliveryError(f"alert webhook {url} did not take the alert: {exc}") from exc
        raise AlertDeliveryError(f"alert webhook {url} answered HTTP {status} {reason}") from exc
    log.info("Alert for %s delivered to webhook %s", message.dataset_id, url)


def _mail(message: AlertMessage, conn: Mapping[str, Any]) -> None:
    import smtplib

    from airflow.providers.common.compat.sdk import AirflowException

    from datashare.notify.channels import send, smtp_notifier

    extra = conn["extra"]
    recipients = extra.get("to")
    if isinstance(recipients, str):
        recipients = [r.strip() for r in recipients.split(",") if r.strip()]
    sender = extra.get("from_email") or extra.get("from")
    if not recipients or not sender:
        raise ConfigError(
            f"connection {conn['conn_id']!r}: e-mail alerts need extra 'from' and 'to' (a list); "
            "the form's 'From email' serves as 'from'"
        )
    where = f"{conn.get('host') or 'localhost'}:{conn.get('port') or 'default port'}"
    notifier = smtp_notifier(
        conn["conn_id"], subject=message.subject, text=message.text, to=recipients, from_email=sender
    )
    try:
        send(notifier)
    except (smtplib.SMTPException, OSError, AirflowException) as exc:  # AirflowException: no connection found
        raise AlertDeliveryError(f"mail server {where} did not take the alert: {exc}") from exc
    log.info("Alert for %s e-mailed to %s via %s", message.dataset_id, ", ".join(recipients), where)


def deliver_quietly(message: AlertMessage, *, conn_id: str = CONN_ID) -> str:
    """Deliver, but log a delivery failure instead of raising: for callbacks that must not mask the real error."""
    try:
        return deliver(message, conn_id=conn_id)
    except (AlertDeliveryError, ConfigError) as exc:
        log.error("Could not deliver the alert (%s); the alert was:\n%s\n%s", exc, message.subject, message.text)
        return "failed"


def on_failure_callback(context: Mapping[str, Any]) -> None:
    """Airflow ``on_failure_callback``: alert on a task's final failure (the DAG id is the dataset id)."""
    ti = context.get("task_instance") or context.get("ti")
    dag = context.get("dag")
    dag_id = getattr(dag, "dag_id", None) or getattr(ti, "dag_id", None) or "unknown_dag"
    task_id = getattr(ti, "task_id", None) or getattr(context.get("task"), "task_id", None) or "unknown_task"
    exc = context.get("exception")
    message = failed_run_message(
        dag_id,
        task_id=task_id,
        error=str(exc) if exc is not None else "the task failed without an exception",
        run_id=context.get("run_id"),
        error_type=type(exc).__name__ if exc is not None else None,
    )
    deliver_quietly(message)


def freshness_alerts(
    store: ReleaseStore, specs: Iterable[DatasetSpec], *, now: datetime | None = None
) -> list[AlertMessage]:
    """A stale-data alert for every dataset whose newest release is older than its spec allows."""
    now = now or datetime.now(UTC)
    out = []
    for spec in specs:
        message = freshness_message(spec, store.latest(spec.id), now=now)
        if message is not None:
            out.append(message)
    return out
