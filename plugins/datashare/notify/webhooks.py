"""Webhook subscriptions: an agency is told of each new release of the datasets it may read.

An agency with a catalog token subscribes a URL (``POST /api/v1/subscriptions``), optionally to some
datasets only. When a release is committed, the pipeline's record stage calls :func:`notify_release`,
which makes one delivery per subscription whose agency may read the dataset *at that moment*
(registered, active, granted by :func:`datashare.access.can_read`, holding an unrevoked token) and
tries it at once; failures are retried with backoff by :func:`deliver_pending`
(``datashare webhooks deliver``, or the ``datashare_webhooks`` DAG every ten minutes).

Signing. Each subscription has its own secret, shown once at creation. It is not stored: it is
derived, ``HMAC-SHA256(key, "datashare-webhook:" + subscription id + ":" + salt)``, from the
deployment key ``DATASHARE_WEBHOOK_KEY`` (or the password of Airflow connection
``datashare_webhook_key``), so a copy of the store gives nobody the secrets. Each POST carries:

| header | value |
|---|---|
| ``X-Datashare-Event`` | ``release.published`` |
| ``X-Datashare-Delivery`` | the delivery id (the same on every retry: receivers drop repeats) |
| ``X-Datashare-Timestamp`` | Unix seconds when this attempt was signed |
| ``X-Datashare-Signature`` | ``sha256=`` hex HMAC-SHA256 with the secret of ``<timestamp>.<body>`` |

The signature covers the timestamp, so a captured request cannot be replayed later with a fresh one;
receivers check it with :func:`verify_signature` and refuse timestamps older than five minutes.

Storage, in the release store beside the releases (not in the audit ledger)::

    _webhooks/subscriptions/<id>.json                              the subscription (no secret)
    _webhooks/deliveries/<subscription>/<yyyymmdd>/<delivery>.json  the delivery and its attempts
    _webhooks/deliveries/<subscription>/<yyyymmdd>/<delivery>.claim-<n>  who makes attempt n
    _webhooks/made/<subscription>/<delivery>.json                   where the delivery of a release is

A delivery is made once per (subscription, release) with put-if-absent, so a retried record stage
sends nothing twice; each attempt is claimed with put-if-absent first, so two retry runs never send
the same attempt. Attempt n failing (no answer, or a status other than 2xx) schedules attempt n+1
after ``base × 4^(n-1)`` seconds (``DATASHARE_WEBHOOK_RETRY_BASE_S``, default 60; at most 6 h), up
to ``DATASHARE_WEBHOOK_MAX_ATTEMPTS`` (default 8, about 18 hours); then the delivery is ``failed``.
A delivery whose subscription was deleted, or whose agency lost access, is ``cancelled`` unsent.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from datashare.access import Recipient, Registry, Tokens, can_read, load_registry
from datashare.exceptions import ConfigError, ReleaseError, WebhookError
from datashare.notify import netguard
from datashare.settings import Settings
from datashare.spec import DatasetSpec, load_specs
from datashare.store import Release, ReleaseStore, dumps

log = logging.getLogger(__name__)

PREFIX = "_webhooks"
KEY_ENV = "DATASHARE_WEBHOOK_KEY"
KEY_CONN_ID = "datashare_webhook_key"
BASE_ENV = "DATASHARE_WEBHOOK_RETRY_BASE_S"
ATTEMPTS_ENV = "DATASHARE_WEBHOOK_MAX_ATTEMPTS"
CATALOG_URL_ENV = "DATASHARE_CATALOG_URL"
EVENT = "release.published"
MAX_SUBSCRIPTIONS = 20
MAX_DATASETS = 100
MAX_DELAY_S = 6 * 3600
TIMEOUT_S = 10.0
STALE_CLAIM_S = 300.0
SIGNATURE_TOLERANCE_S = 300
RETRY_WINDOW_DAYS = 3
"""Deliveries older than this are final whatever their state: the retry scan reads only these days."""
State = Literal["pending", "delivered", "failed", "cancelled"]


class WebhookKeyMissing(WebhookError):
    """No deployment key is configured: no subscription secret can be made, nothing can be signed."""


class TooManySubscriptions(WebhookError):
    """The agency already holds :data:`MAX_SUBSCRIPTIONS` subscriptions."""


def _now() -> datetime:
    return datetime.now(UTC)


def _stamp(when: datetime) -> str:
    return when.isoformat(timespec="seconds").replace("+00:00", "Z")


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw.isdigit() else default


def deployment_key() -> bytes:
    """The key secrets are derived from: ``DATASHARE_WEBHOOK_KEY``, else connection ``datashare_webhook_key``."""
    value = os.environ.get(KEY_ENV)
    if not value:
        from datashare.source.connections import get_connection

        try:
            value = get_connection(KEY_CONN_ID).password
        except ConfigError:
            value = None
    if not value or len(value) < 32:
        raise WebhookKeyMissing(
            f"webhooks need a key of 32+ characters: set {KEY_ENV} or the password of Airflow connection "
            f"{KEY_CONN_ID!r}"
        )
    return value.encode("utf-8")


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Datashare-Signature`` value of a body signed at ``timestamp``."""
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def verify_signature(
    secret: str, body: bytes, timestamp: str, signed: str, *, now: float | None = None, tolerance_s: int = 300
) -> bool:
    """What a receiver checks: the signature matches and the timestamp is recent (no replay of old requests)."""
    if not timestamp.isdigit():
        return False
    if abs((time.time() if now is None else now) - int(timestamp)) > tolerance_s:
        return False
    return hmac.compare_digest(signature(secret, int(timestamp), body), signed)


@dataclass(frozen=True)
class Subscription:
    """One agency's webhook."""

    id: str
    recipient: str
    url: str
    datasets: list[str] | None
    """None: every dataset the agency may read, now and later."""
    created_at: str
    salt: str
    deleted_at: str | None = None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Subscription:
        fields: dict[str, Any] = {k: data.get(k) for k in cls.__dataclass_fields__}
        return cls(**fields)

    def public(self) -> dict[str, Any]:
        """What the agency may see of it (no salt, no secret)."""
        return {
            "id": self.id,
            "url": self.url,
            "datasets": self.datasets,
            "created_at": self.created_at,
            "deleted_at": self.deleted_at,
        }

    def wants(self, dataset_id: str) -> bool:
        return self.datasets is None or dataset_id in self.datasets


class Webhooks:
    """Subscriptions and deliveries kept in a release store."""

    def __init__(self, store: ReleaseStore, settings: Settings | None = None) -> None:
        self.store = store
        self.backend = store.backend
        self.settings = settings or Settings.from_env()

    # -- subscriptions ---------------------------------------------------------------------------

    def _key(self, subscription_id: str) -> str:
        return f"{PREFIX}/subscriptions/{subscription_id}.json"

    def secret(self, subscription: Subscription) -> str:
        """The subscription's signing secret, derived from the deployment key."""
        message = f"datashare-webhook:{subscription.id}:{subscription.salt}".encode()
        return "whsec_" + hmac.new(deployment_key(), message, hashlib.sha256).hexdigest()

    def subscribe(self, recipient: Recipient, url: str, datasets: list[str] | None) -> tuple[Subscription, str]:
        """A new subscription and its secret (shown once); the URL is checked first, the datasets by the caller."""
        target = netguard.parse_url(url)
        deployment_key()  # refuse before looking the host up or storing anything when no secret can be made
        netguard.resolve(target)
        if datasets is not None and len(datasets) > MAX_DATASETS:
            raise WebhookError(f"at most {MAX_DATASETS} datasets per subscription")
        active = [s for s in self.subscriptions(recipient.code) if s.deleted_at is None]
        if len(active) >= MAX_SUBSCRIPTIONS:
            raise TooManySubscriptions(
                f"an agency may hold at most {MAX_SUBSCRIPTIONS} subscriptions; delete one first"
            )
        subscription = Subscription(
            id=f"sub_{secrets.token_hex(8)}",
            recipient=recipient.code,
            url=target.url,
            datasets=sorted(set(datasets)) if datasets is not None else None,
            created_at=_stamp(_now()),
            salt=secrets.token_hex(16),
        )
        if not self.backend.put_if_absent(self._key(subscription.id), dumps(subscription.to_json())):
            raise WebhookError("subscription id collision; try again")
        log.info("Agency %s subscribed %s to %s", recipient.code, subscription.id, subscription.datasets or "all")
        return subscription, self.secret(subscription)

    def subscriptions(self, recipient: str | None = None) -> list[Subscription]:
        """Subscriptions (deleted ones included), optionally of one agency, oldest first."""
        out = []
        for key in self.backend.list(f"{PREFIX}/subscriptions"):
            if key.endswith(".json"):
                sub = Subscription.from_json(json.loads(self.backend.get_bytes(key)))
                if recipient is None or sub.recipient == recipient:
                    out.append(sub)
        return sorted(out, key=lambda s: (s.created_at, s.id))

    def get(self, subscription_id: str) -> Subscription | None:
        """A subscription by id (deleted or not), or None."""
        if not subscription_id.startswith("sub_") or not subscription_id[4:].isalnum() or len(subscription_id) > 40:
            return None
        try:
            return Subscription.from_json(json.loads(self.backend.get_bytes(self._key(subscription_id))))
        except ReleaseError:
            return None

    def unsubscribe(self, subscription: Subscription) -> Subscription:
        """Mark a subscription deleted: nothing more is sent; its delivery log stays."""
        if subscription.deleted_at is not None:
            return subscription
        gone = Subscription(**{**subscription.to_json(), "deleted_at": _stamp(_now())})
        self.backend.put_bytes(self._key(subscription.id), dumps(gone.to_json()))
        log.info("Agency %s deleted subscription %s", subscription.recipient, subscription.id)
        return gone

    # -- who may be told -------------------------------------------------------------------------

    def _registry(self) -> Registry:
        try:
            return load_registry(self.settings.recipients_file)
        except ConfigError as exc:
            log.error("Webhooks: cannot load the recipients registry, nobody is notified: %s", exc)
            return Registry()

    def _may_receive(self, registry: Registry, code: str, spec: DatasetSpec) -> bool:
        """The agency is registered, active, granted the dataset and still holds a valid token."""
        recipient = registry.get(code)
        if recipient is None or not can_read(recipient, spec):
            return False
        return any(not t.get("revoked_at") for t in Tokens(self.backend).list(code))

    # -- deliveries ------------------------------------------------------------------------------

    def _delivery_key(self, subscription_id: str, day: str, delivery_id: str) -> str:
        return f"{PREFIX}/deliveries/{subscription_id}/{day}/{delivery_id}.json"

    def payload(self, subscription: Subscription, delivery_id: str, spec: DatasetSpec, release: Release) -> bytes:
        """The JSON body sent for a release (links absolute when ``DATASHARE_CATALOG_URL`` is set)."""
        base = os.environ.get(CATALOG_URL_ENV, "").rstrip("/")
        page = f"{base}/datasets/{release.dataset_id}/v/{release.version}"
        name = f"{release.dataset_id}-v{release.version}"
        validation = release.manifest["datashare"].get("validation") or {}
        body = {
            "event": EVENT,
            "delivery": delivery_id,
            "subscription": subscription.id,
            "dataset": {
                "id": spec.id,
                "title": spec.title.model_dump(),
                "sector": spec.sector,
                "classification": spec.classification.sharing.value,
            },
            "release": {
                "version": release.version,
                "committed_at": release.record["committed_at"],
                "rows": release.rows,
                "manifest_sha256": release.record["manifest_sha256"],
                "validation": "passed" if validation.get("success") else "failed" if validation else "not_run",
                "files": release.files,
                "links": {
                    "page": page,
                    "api": f"{base}/api/v1/datasets/{release.dataset_id}/v/{release.version}",
                    "datapackage": f"{page}/files/datapackage.json",
                    "csv": f"{page}/exports/{name}.csv",
                    "xlsx": f"{page}/exports/{name}.xlsx",
                    "zip": f"{page}/exports/{name}.zip",
                },
            },
        }
        return json.dumps(body, ensure_ascii=False, sort_keys=True).encode("utf-8")

    def enqueue(self, spec: DatasetSpec, release: Release) -> list[dict[str, Any]]:
        """One delivery per subscription whose agency may read the dataset now; already made ones are kept."""
        registry = self._registry()
        made = []
        day = _now().strftime("%Y%m%d")
        for sub in self.subscriptions():
            if sub.deleted_at is not None or not sub.wants(spec.id):
                continue
            if not self._may_receive(registry, sub.recipient, spec):
                log.info("Webhooks: %s may not read %s; %s is not told", sub.recipient, spec.id, sub.id)
                continue
            delivery_id = f"dlv_{uuid.uuid5(uuid.NAMESPACE_URL, f'{sub.id}/{spec.id}/v{release.version}').hex[:20]}"
            key = self._delivery_key(sub.id, day, delivery_id)
            marker = f"{PREFIX}/made/{sub.id}/{delivery_id}.json"
            if not self.backend.put_if_absent(marker, dumps({"key": key})):
                key = json.loads(self.backend.get_bytes(marker))["key"]
                if self.backend.exists(key):
                    continue  # a retried record stage: this release was already queued for this subscription
            delivery = {
                "id": delivery_id,
                "subscription": sub.id,
                "recipient": sub.recipient,
                "event": EVENT,
                "dataset_id": spec.id,
                "version": release.version,
                "created_at": _stamp(_now()),
                "body": self.payload(sub, delivery_id, spec, release).decode("utf-8"),
                "state": "pending",
                "attempts": [],
                "next_attempt_at": _stamp(_now()),
            }
            if self.backend.put_if_absent(key, dumps(delivery)):
                made.append({**delivery, "key": key})
        return made

    def _save(self, key: str, delivery: dict[str, Any]) -> None:
        self.backend.put_bytes(key, dumps({k: v for k, v in delivery.items() if k != "key"}))

    def _claim(self, key: str, n: int) -> bool:
        """Take attempt ``n`` of a delivery; a claim older than :data:`STALE_CLAIM_S` belonged to a dead run."""
        claim = f"{key.removesuffix('.json')}.claim-{n}"
        if self.backend.put_if_absent(claim, dumps({"at": _stamp(_now()), "pid": os.getpid()})):
            return True
        try:
            held = _parse(json.loads(self.backend.get_bytes(claim))["at"])
        except (ReleaseError, ValueError, KeyError):
            return False
        return (_now() - held).total_seconds() > STALE_CLAIM_S and self.backend.put_if_absent(
            f"{claim}.retaken", dumps({"at": _stamp(_now())})
        )

    def attempt(self, key: str, delivery: dict[str, Any], specs: dict[str, DatasetSpec], registry: Registry) -> str:
        """Make the next attempt of a delivery if it is due; returns its state afterwards."""
        if delivery["state"] != "pending" or _parse(delivery["next_attempt_at"]) > _now():
            return delivery["state"]
        sub = self.get(delivery["subscription"])
        spec = specs.get(delivery["dataset_id"])
        if sub is None or sub.deleted_at is not None or spec is None:
            delivery["state"] = "cancelled"
            delivery["cancelled"] = "the subscription was deleted" if spec else "the dataset no longer exists"
            self._save(key, delivery)
            return "cancelled"
        if not self._may_receive(registry, sub.recipient, spec):
            delivery["state"] = "cancelled"
            delivery["cancelled"] = "the agency may no longer read the dataset"
            self._save(key, delivery)
            return "cancelled"
        secret = self.secret(sub)  # no key: stop here, before the attempt is claimed
        n = len(delivery["attempts"]) + 1
        if not self._claim(key, n):
            return "pending"  # another run is making this attempt
        body = delivery["body"].encode("utf-8")
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "datashare-webhooks/1",
            "X-Datashare-Event": delivery["event"],
            "X-Datashare-Delivery": delivery["id"],
            "X-Datashare-Timestamp": str(timestamp),
            "X-Datashare-Signature": signature(secret, timestamp, body),
        }
        answer = netguard.post(sub.url, body, headers, timeout_s=TIMEOUT_S)
        ok = answer.status is not None and 200 <= answer.status < 300
        delivery["attempts"].append(
            {
                "n": n,
                "at": _stamp(_now()),
                "status": answer.status,
                "error": answer.error,
                "ms": round(answer.seconds * 1000),
            }
        )
        if ok:
            delivery["state"] = "delivered"
        elif n >= _int_env(ATTEMPTS_ENV, 8):
            delivery["state"] = "failed"
        else:
            delay = min(MAX_DELAY_S, _int_env(BASE_ENV, 60) * 4 ** (n - 1))
            delivery["next_attempt_at"] = _stamp(_now() + timedelta(seconds=delay))
        self._save(key, delivery)
        outcome = f"HTTP {answer.status}" if answer.status is not None else answer.error
        log.log(
            logging.INFO if ok else logging.WARNING,
            "Webhook %s attempt %s to %s (%s v%s): %s",
            delivery["id"],
            n,
            sub.recipient,
            delivery["dataset_id"],
            delivery["version"],
            outcome,
        )
        return delivery["state"]

    def _specs(self) -> dict[str, DatasetSpec]:
        specs, errors = load_specs(self.settings.datasets_dir)
        for path, err in errors.items():
            log.error("Webhooks leave out %s: %s", path, err)
        return specs

    def pending(self) -> list[tuple[str, dict[str, Any]]]:
        """Deliveries made within the retry window that are still pending, oldest first."""
        today = _now().date()
        days = {(today - timedelta(days=d)).strftime("%Y%m%d") for d in range(RETRY_WINDOW_DAYS)}
        out = []
        for sub in self.subscriptions():
            for day in sorted(days):
                for key in self.backend.list(f"{PREFIX}/deliveries/{sub.id}/{day}"):
                    if key.endswith(".json"):
                        delivery = json.loads(self.backend.get_bytes(key))
                        if delivery.get("state") == "pending":
                            out.append((key, delivery))
        return sorted(out, key=lambda pair: pair[1]["created_at"])

    def deliver_pending(self) -> dict[str, int]:
        """Attempt every pending delivery that is due; counts by state afterwards."""
        specs, registry = self._specs(), self._registry()
        counts: dict[str, int] = {}
        for key, delivery in self.pending():
            state = self.attempt(key, delivery, specs, registry)
            counts[state] = counts.get(state, 0) + 1
        return counts

    def log_of(self, subscription: Subscription, limit: int = 100) -> list[dict[str, Any]]:
        """A subscription's deliveries, newest first, without bodies: event, release, state, attempts."""
        keys = [k for k in self.backend.list(f"{PREFIX}/deliveries/{subscription.id}") if k.endswith(".json")]
        out = []
        for key in keys:
            d = json.loads(self.backend.get_bytes(key))
            out.append({k: d.get(k) for k in ("id", "event", "dataset_id", "version", "created_at", "state")})
            out[-1]["attempts"] = d.get("attempts", [])
            out[-1]["next_attempt_at"] = d.get("next_attempt_at") if d.get("state") == "pending" else None
        out.sort(key=lambda d: (d["created_at"], d["id"]), reverse=True)
        return out[:limit]


def notify_release(
    store: ReleaseStore, spec: DatasetSpec, release: Release, *, settings: Settings | None = None
) -> dict[str, int]:
    """Queue and try at once the deliveries of a newly committed release (the record stage calls this).

    A receiver that is down does not fail the run: its delivery stays pending for
    :func:`deliver_pending`. Returns counts by state.
    """
    hooks = Webhooks(store, settings)
    try:
        made = hooks.enqueue(spec, release)
    except (WebhookError, ReleaseError, OSError) as exc:
        log.error("Webhooks for %s v%s could not be queued: %s", spec.id, release.version, exc)
        return {"error": 1}
    if not made:
        return {}
    registry = hooks._registry()
    counts: dict[str, int] = {}
    for delivery in made:
        try:
            state = hooks.attempt(delivery["key"], delivery, {spec.id: spec}, registry)
        except (WebhookError, ReleaseError, OSError) as exc:  # e.g. no deployment key: stays pending, logged
            log.error("Webhook %s not attempted: %s", delivery["id"], exc)
            state = "pending"
        counts[state] = counts.get(state, 0) + 1
    return counts


def deliver_pending(store: ReleaseStore | None = None, settings: Settings | None = None) -> dict[str, int]:
    """Retry every due pending delivery (the CLI's ``webhooks deliver`` and the retry DAG)."""
    settings = settings or Settings.from_env()
    return Webhooks(store or ReleaseStore.open(settings.release_uri), settings).deliver_pending()
