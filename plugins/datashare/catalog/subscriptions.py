"""Webhook subscriptions over the API: create, list, show, delete, and read the delivery log.

Only an agency presenting its token in ``Authorization: Bearer`` manages subscriptions (a browser
cookie is not enough: these calls change state, and a page must not be able to make them on a
signed-in person's behalf). An agency sees and deletes only its own subscriptions; another agency's
id answers 404 like an unknown one. Subscribing to a dataset the agency may not read answers 404,
exactly as its page would. What is delivered, when and how it is signed: :mod:`datashare.notify.webhooks`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path
from fastapi.responses import JSONResponse, Response
from pydantic import Field

from datashare.catalog.app import get_caller, get_catalog, get_reader
from datashare.catalog.auth import Caller
from datashare.catalog.models import Model, Problem
from datashare.catalog.service import Catalog, CatalogError, NotFound, Reader
from datashare.exceptions import TargetRefused, WebhookError
from datashare.notify.netguard import MAX_URL_CHARS, URL_PATTERN
from datashare.spec import DATASET_ID_MAX, DATASET_ID_SHAPE

SUBSCRIPTION_ID = r"^sub_[0-9a-f]{16}$"
DATASET_ID_SCHEMA = {"pattern": DATASET_ID_SHAPE, "maxLength": DATASET_ID_MAX}
"""A followed dataset's id: checked by the catalog like a URL's (400 if malformed, 404 if unknown or unreadable)."""
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "The URL or a dataset id is malformed."},
    401: {"model": Problem, "description": "No token in the Authorization header, or an invalid one."},
    403: {
        "model": Problem,
        "description": "The URL is well formed but its host has no address, or one webhooks "
        "may not go to (loopback, private, link-local... unless the deployment allows that network).",
    },
    404: {"model": Problem, "description": "No such subscription or dataset, or not yours to see."},
    409: {"model": Problem, "description": "The agency already holds the most subscriptions allowed."},
    422: {"model": Problem, "description": "A field has the wrong type or shape."},
    503: {"model": Problem, "description": "Webhooks are not configured on this deployment (no key)."},
}
router = APIRouter(prefix="/api/v1/subscriptions", tags=["subscriptions"], responses=ERRORS)
NO_STORE = {"Cache-Control": "no-store"}


class TokenRequired(CatalogError):
    """Subscriptions belong to agencies: the call needs a token in the Authorization header."""

    status = 401
    key = "unauthorized"

    def __init__(self) -> None:
        super().__init__("Send the agency's token as 'Authorization: Bearer <token>' to manage subscriptions.")


class Refused(CatalogError):
    """The subscription cannot be made as asked."""


class TargetForbidden(CatalogError):
    """A well-formed URL pointing where webhooks may not go: the request is understood, and refused."""

    status = 403
    key = "bad_request"


class TooMany(CatalogError):
    """The agency holds the most subscriptions allowed."""

    status = 409
    key = "bad_request"


class NotConfigured(CatalogError):
    """No deployment key: no secret can be derived, so nothing can be signed."""

    status = 503
    key = "bad_request"


class SubscriptionRequest(Model):
    """A new subscription."""

    url: str = Field(
        max_length=MAX_URL_CHARS,
        json_schema_extra={"pattern": URL_PATTERN},  # checked by datashare.notify.netguard (400), documented here
        description="https:// (or http://) URL that receives the POSTs: a public address, or one in a network "
        "the deployment allows; no user name or password, no #fragment.",
    )
    datasets: list[Annotated[str, Field(json_schema_extra=DATASET_ID_SCHEMA)]] | None = Field(
        default=None,
        max_length=100,
        description="Dataset ids to follow; omitted or null: every dataset the agency may read, now and later.",
    )


class SubscriptionInfo(Model):
    """A subscription as its agency sees it (never the secret)."""

    id: str
    url: str
    datasets: list[str] | None
    created_at: str = Field(description="UTC, ISO 8601.")
    deleted_at: str | None = None


class SubscriptionCreated(SubscriptionInfo):
    """A new subscription with its signing secret, shown this once."""

    secret: str = Field(description="Verifies X-Datashare-Signature; shown only in this answer.")


class Attempt(Model):
    """One try to deliver."""

    n: int
    at: str
    status: int | None = Field(description="The receiver's HTTP status; null when none came.")
    error: str | None = Field(description="Why no status came (refused target, timeout, connection error).")
    ms: int = Field(description="Milliseconds the attempt took.")


class Delivery(Model):
    """A notification of one release to one subscription."""

    id: str
    event: str
    dataset_id: str
    version: int
    created_at: str
    state: str = Field(description="pending, delivered, failed (attempts exhausted) or cancelled.")
    attempts: list[Attempt]
    next_attempt_at: str | None = None


def _agency(caller: Caller) -> str:
    if caller.recipient is None or caller.via != "header":
        raise TokenRequired()
    return caller.recipient.code


def _hooks(catalog: Catalog) -> Any:
    from datashare.notify.webhooks import Webhooks

    return Webhooks(catalog.store, catalog.settings)


def _own(catalog: Catalog, agency: str, subscription_id: str) -> Any:
    sub = _hooks(catalog).get(subscription_id)
    if sub is None or sub.recipient != agency:
        raise NotFound()
    return sub


CallerDep = Annotated[Caller, Depends(get_caller)]
CatalogDep = Annotated[Catalog, Depends(get_catalog)]
SubscriptionId = Annotated[str, Path(pattern=SUBSCRIPTION_ID, description="Subscription id.")]


@router.post("", status_code=201, response_model=SubscriptionCreated, summary="Subscribe a webhook")
def create_subscription(
    request: Annotated[SubscriptionRequest, Body()],
    caller: CallerDep,
    catalog: CatalogDep,
    reader: Annotated[Reader, Depends(get_reader)],
) -> JSONResponse:
    """Check the URL (public address, or a network the deployment allows), then store the subscription."""
    _agency(caller)
    from datashare.notify.webhooks import TooManySubscriptions, WebhookKeyMissing

    datasets = None if request.datasets is None else [reader.spec(d).id for d in request.datasets]
    try:
        sub, secret = _hooks(catalog).subscribe(caller.recipient, request.url, datasets)
    except WebhookKeyMissing as exc:
        raise NotConfigured(str(exc)) from None
    except TooManySubscriptions as exc:
        raise TooMany(str(exc)) from None
    except TargetRefused as exc:
        raise TargetForbidden(str(exc)) from None
    except WebhookError as exc:
        raise Refused(str(exc)) from None
    body = SubscriptionCreated(**sub.public(), secret=secret).model_dump()
    return JSONResponse(body, status_code=201, headers=NO_STORE)


@router.get("", response_model=list[SubscriptionInfo], summary="The agency's subscriptions")
def list_subscriptions(caller: CallerDep, catalog: CatalogDep) -> list[SubscriptionInfo]:
    """Active subscriptions of the caller's agency, oldest first."""
    agency = _agency(caller)
    return [SubscriptionInfo(**s.public()) for s in _hooks(catalog).subscriptions(agency) if s.deleted_at is None]


@router.get("/{subscription_id}", response_model=SubscriptionInfo, summary="One subscription")
def get_subscription(subscription_id: SubscriptionId, caller: CallerDep, catalog: CatalogDep) -> SubscriptionInfo:
    """One of the caller's subscriptions (deleted ones too, with their deletion time)."""
    return SubscriptionInfo(**_own(catalog, _agency(caller), subscription_id).public())


@router.delete("/{subscription_id}", status_code=204, summary="Delete a subscription")
def delete_subscription(subscription_id: SubscriptionId, caller: CallerDep, catalog: CatalogDep) -> Response:
    """Stop deliveries (pending ones are cancelled); the delivery log stays readable."""
    sub = _own(catalog, _agency(caller), subscription_id)
    _hooks(catalog).unsubscribe(sub)
    return Response(status_code=204)


@router.get("/{subscription_id}/deliveries", response_model=list[Delivery], summary="Delivery log")
def list_deliveries(subscription_id: SubscriptionId, caller: CallerDep, catalog: CatalogDep) -> list[Delivery]:
    """The subscription's newest 100 deliveries: each attempt's time, HTTP status or error."""
    hooks = _hooks(catalog)
    sub = _own(catalog, _agency(caller), subscription_id)
    return [Delivery(**d) for d in hooks.log_of(sub)]
