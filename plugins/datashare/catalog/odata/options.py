"""The system query options of one request, and the ``$skiptoken`` of server-driven paging.

Every option is accepted, refused with 400 (malformed, unknown) or refused with 501 (valid OData
this service does not implement): none is ignored. Names are case-insensitive and the ``$`` prefix
is optional, as in OData 4.01. Other (custom) query options are refused too, so a typo such as
``?filter_=...`` is never read as "no filter".

The skip token is opaque to clients: base64url of a small JSON document holding the release
version the first page was served from (so a client paging while a new release appears keeps
reading one release), the last row's ordering values and row number (keyset paging: each page starts
where the last ended, without re-reading what was served), how many rows were served (for
``$top``) and a digest of the options it belongs to. A token that fails to decode, or belongs to
other options, is a 400.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

from datashare.catalog.odata.errors import ODataError, bad_request, not_implemented
from datashare.catalog.odata.expr import (
    BOOL,
    DATE,
    DBL,
    DTO,
    INT,
    STRING,
    Node,
    OrderItem,
    parse_filter,
    parse_orderby,
)
from datashare.catalog.odata.model import EntityModel

MAX_SKIPTOKEN_CHARS = 8000
MAX_SKIP = 10**12
SUPPORTED = ("filter", "select", "orderby", "top", "skip", "count", "skiptoken", "format")
NOT_IMPLEMENTED = ("expand", "search", "apply", "compute", "index", "deltatoken", "schemaversion", "id", "levels")
_TAGS = {STRING: "s", INT: "i", DBL: "f", BOOL: "b", DATE: "d", DTO: "t"}


@dataclass(frozen=True)
class SkipToken:
    """Where the next page starts."""

    version: int
    digest: str
    last: list[Any]
    last_row: int
    served: int


@dataclass
class QueryOptions:
    """The parsed options of a request on an entity set."""

    raw: dict[str, str] = field(default_factory=dict)
    """Each supported option's text as received (for next links), by canonical name."""
    filter: Node | None = None
    select: tuple[str, ...] | None = None
    orderby: list[OrderItem] = field(default_factory=list)
    top: int | None = None
    skip: int = 0
    count: bool = False
    skiptoken: SkipToken | None = None

    def digest(self) -> str:
        """What a skip token must match: the options that decide which rows come next."""
        text = "\x00".join(self.raw.get(k, "") for k in ("filter", "orderby", "top"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def canonical_options(items: list[tuple[str, str]]) -> dict[str, str]:
    """Query options by canonical name (``filter`` for ``$filter``, ``$FILTER``, ``filter``); 400/501 on the rest."""
    out: dict[str, str] = {}
    for name, value in items:
        key = name.lower().removeprefix("$")
        if key in NOT_IMPLEMENTED:
            raise not_implemented(f"the query option ${key} is not supported", f"${key}")
        if key not in SUPPORTED:
            if name.startswith("@"):
                raise not_implemented(f"parameter aliases ({name}) are not supported", name)
            raise bad_request(f"unknown query option {name[:40]!r}", name[:40])
        if key in out:
            raise bad_request(f"the query option ${key} is given twice", f"${key}")
        out[key] = value
    return out


def _integer(raw: dict[str, str], name: str, upper: int) -> int | None:
    text = raw.get(name)
    if text is None:
        return None
    if not text.isdigit() or len(text) > 19 or int(text) > upper:
        raise bad_request(f"${name} must be an integer from 0 to {upper}, got {text[:40]!r}", f"${name}")
    return int(text)


def parse_options(raw: dict[str, str], model: EntityModel) -> QueryOptions:
    """The options of a request on ``model``'s entity set."""
    options = QueryOptions(raw={k: v for k, v in raw.items() if k != "skiptoken"})
    if "filter" in raw:
        options.filter = parse_filter(raw["filter"], model)
    if "orderby" in raw:
        options.orderby = parse_orderby(raw["orderby"], model)
    if "select" in raw:
        options.select = parse_select(raw["select"], model)
    options.top = _integer(raw, "top", 2**63 - 1)
    options.skip = _integer(raw, "skip", MAX_SKIP) or 0
    count = raw.get("count")
    if count is not None:
        if count not in ("true", "false"):
            raise bad_request(f"$count must be true or false, got {count[:40]!r}", "$count")
        options.count = count == "true"
    if "skiptoken" in raw:
        if "skip" in raw:
            raise bad_request("$skip and $skiptoken cannot be combined: follow the @odata.nextLink as given", "$skip")
        options.skiptoken = decode_skiptoken(raw["skiptoken"], options, model)
    return options


def parse_select(text: str, model: EntityModel) -> tuple[str, ...] | None:
    """``$select``: property names, or ``*`` for all of them (None)."""
    names: list[str] = []
    for part in text.split(","):
        name = part.strip()
        if name == "*":
            return None
        if "/" in name or "(" in name:
            raise not_implemented(f"$select: {name[:60]!r}: only property names can be selected", "$select")
        if name.endswith(".*"):
            raise not_implemented(f"$select: {name[:60]!r}: operations cannot be selected", "$select")
        if model.find(name) is None:
            raise bad_request(f"$select: {name[:60]!r} is not a property of {model.name}", "$select")
        if name not in names:
            names.append(name)
    if not names:
        raise bad_request("$select is empty", "$select")
    return tuple(names)


# -- skip tokens ----------------------------------------------------------------------------------


def _tag(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, bool):
        return {"b": value}
    if isinstance(value, int):
        return {"i": value}
    if isinstance(value, float):
        return {"f": repr(value) if math.isfinite(value) else str(value)}
    if isinstance(value, dt.datetime):
        return {"t": value.isoformat()}
    if isinstance(value, dt.date):
        return {"d": value.isoformat()}
    return {"s": str(value)}


def _untag(tagged: Any, edm_type: str) -> Any:
    if tagged is None:
        return None
    if not isinstance(tagged, dict) or len(tagged) != 1:
        raise ValueError("value")
    ((tag, value),) = tagged.items()
    if tag != _TAGS.get(edm_type):
        raise ValueError("type")
    if tag == "b" and isinstance(value, bool):
        return value
    if tag == "i" and isinstance(value, int) and not isinstance(value, bool):
        return value
    if tag == "f" and isinstance(value, str):
        return float(value)
    if tag == "t" and isinstance(value, str):
        return dt.datetime.fromisoformat(value)
    if tag == "d" and isinstance(value, str):
        return dt.date.fromisoformat(value)
    if tag == "s" and isinstance(value, str):
        return value
    raise ValueError("value")


def encode_skiptoken(token: SkipToken) -> str:
    """The opaque ``$skiptoken`` text (URL-safe, no padding)."""
    body = {
        "v": token.version,
        "h": token.digest,
        "o": [_tag(v) for v in token.last],
        "r": token.last_row,
        "n": token.served,
    }
    raw = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_skiptoken(text: str, options: QueryOptions, model: EntityModel) -> SkipToken:
    """A skip token of these options; 400 for anything else."""
    invalid = bad_request("$skiptoken is invalid: follow the @odata.nextLink as given", "$skiptoken")
    if len(text) > MAX_SKIPTOKEN_CHARS:
        raise invalid
    try:
        body = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        if not isinstance(body, dict) or body.get("h") != options.digest():
            raise invalid
        version, last_row, served, last = body["v"], body["r"], body["n"], body["o"]
        if not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in (version, last_row, served)):
            raise invalid
        if not isinstance(last, list) or len(last) != len(options.orderby):
            raise invalid
        values = [_untag(v, item.prop.type) for v, item in zip(last, options.orderby, strict=True)]
    except ODataError:
        raise
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError, OverflowError):
        raise invalid from None
    return SkipToken(version=version, digest=options.digest(), last=values, last_row=last_row, served=served)
