"""Server-rendered pages: the dataset list, a dataset, a release, downloads and the sign-in form.

Jinja2 templates with autoescape on (a title or a station name can be hostile), inline CSS only (the one
stylesheet of :func:`datashare.display.stylesheet`, shared with the audit reports), no
script and no external URL, so the pages work with JavaScript off and inside Airflow's iframe.
"""

from __future__ import annotations

import logging
from pathlib import Path as FilePath
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from datashare.catalog import i18n, metadata
from datashare.catalog.app import base_path, get_caller, get_catalog, get_lang, get_reader, lang_of
from datashare.catalog.auth import (
    MAX_TOKEN_CHARS,
    TOKEN_COOKIE,
    Caller,
    check_token,
    client_address,
    presented_token,
)
from datashare.catalog.params import DatasetIdPath, VersionPath
from datashare.catalog.service import MAX_PARAM, Catalog, NotFound, Reader, Unauthorized
from datashare.display import stylesheet

log = logging.getLogger(__name__)

TEMPLATES = FilePath(__file__).with_name("templates")
SECTOR_PATTERN = r"^([a-z][a-z0-9_]{0,47})?$"
Sharing = Literal["", "open", "shared", "restricted"]

_env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined)
_env.globals.update(number=i18n.number, size=i18n.size, age=i18n.age, when=i18n.when, t=i18n.t)
_env.globals["stylesheet"] = stylesheet()  # datashare.display's one stylesheet, inlined by base.html

router = APIRouter(include_in_schema=False)


def _switch_url(request: Request, lang: i18n.Lang) -> str:
    """The current page in the other language (the other query parameters kept)."""
    params = [(k, v) for k, v in request.query_params.multi_items() if k != "lang"]
    params.append(("lang", i18n.other(lang)))
    return f"{request.url.path}?{urlencode(params)}"


def render(
    request: Request,
    template: str,
    lang: i18n.Lang,
    *,
    caller: Caller | None = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    """A page in ``lang``."""
    html = _env.get_template(template).render(
        lang=lang,
        base=base_path(request),
        switch_url=_switch_url(request, lang),
        caller=caller,
        **context,
    )
    return HTMLResponse(html, status_code=status, headers=headers)


def render_error(
    request: Request, status: int, key: str, lang: i18n.Lang, headers: dict[str, str], detail: str
) -> HTMLResponse:
    """The error page: a fixed text per status; malformed-input, conflict and rate-limit answers add the detail."""
    texts = {404: "not_found_text", 401: "invalid_token", 429: "too_many_requests_text", 409: f"{key}_text",
             503: f"{key}_text"}  # fmt: skip
    text_key = texts.get(status, "bad_request")
    return render(
        request,
        "error.html",
        lang,
        status=status,
        headers=headers,
        status_code=status,
        heading=key,
        text=text_key,
        detail=detail if status in (400, 409, 422, 429, 503) else None,
    )


Lang = Annotated[i18n.Lang, Depends(get_lang)]
ReaderDep = Annotated[Reader, Depends(get_reader)]
CallerDep = Annotated[Caller, Depends(get_caller)]
CatalogDep = Annotated[Catalog, Depends(get_catalog)]


@router.get("/", response_class=HTMLResponse)
def index(
    request: Request,
    lang: Lang,
    reader: ReaderDep,
    caller: CallerDep,
    q: Annotated[str, Query(max_length=MAX_PARAM)] = "",
    sector: Annotated[str, Query(pattern=SECTOR_PATTERN)] = "",
    classification: Annotated[Sharing, Query()] = "",
    province: Annotated[str, Query(pattern=r"^([0-9]{2})?$")] = "",
    year: Annotated[str, Query(pattern=r"^((19|20|21)[0-9]{2})?$")] = "",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> HTMLResponse:
    """The dataset list, with search, facets and filters."""
    result = reader.datasets(
        q=q or None,
        sector=sector or None,
        sharing=classification or None,
        province=province or None,
        year=int(year) if year else None,
        page=page,
    )
    query = {"q": q, "sector": sector, "classification": classification, "province": province, "year": year}
    pages = max(1, -(-result.total // result.per_page))

    def page_url(n: int) -> str:
        return f"{base_path(request)}/?{urlencode({**{k: v for k, v in query.items() if v}, 'page': n})}"

    return render(
        request,
        "index.html",
        lang,
        caller=caller,
        result=result,
        query=query,
        pages=pages,
        prev_url=page_url(page - 1) if page > 1 else None,
        next_url=page_url(page + 1) if page < pages else None,
        facet_url=lambda name, value: (
            f"{base_path(request)}/?"
            + urlencode({**{k: v for k, v in query.items() if v and k != name}, **({name: value} if value else {})})
        ),
    )


@router.get("/datasets/{dataset_id}", response_class=HTMLResponse)
def dataset_page(
    request: Request, dataset_id: DatasetIdPath, lang: Lang, reader: ReaderDep, caller: CallerDep
) -> HTMLResponse:
    """A dataset: description, schema, releases, downloads, SQL view; open data also shows its first rows."""
    from datashare.catalog.preview import preview_of

    ds = reader.dataset(dataset_id)
    preview = None
    if ds.classification.sharing == "open" and ds.releases:  # the only data meant for anyone
        latest = reader.catalog.release(ds.id, ds.releases[0].version)
        preview = preview_of(reader.catalog.store, reader.catalog.settings.release_uri, latest, ds.columns)
    return render(request, "dataset.html", lang, caller=caller, ds=ds, preview=preview)


@router.get("/datasets/{dataset_id}/v/{version}", response_class=HTMLResponse)
def release_page(
    request: Request, dataset_id: DatasetIdPath, version: VersionPath, lang: Lang, reader: ReaderDep, caller: CallerDep
) -> HTMLResponse:
    """One release: files, checksums, manifest and report links, validation summary."""
    from datashare.catalog.release_changes import SCHEMA_LABELS, since_previous

    release = reader.release(dataset_id, version)
    ds = reader.dataset(dataset_id)
    changes = since_previous(reader, dataset_id, version)
    return render(
        request,
        "release.html",
        lang,
        caller=caller,
        ds=ds,
        release=release,
        changes=changes,
        schema_labels=SCHEMA_LABELS,
    )


@router.get("/licences/{licence_id}", response_class=HTMLResponse)
def licence_page(
    request: Request,
    licence_id: Annotated[str, Path(max_length=100, pattern=r"^[A-Za-z0-9.+-]{1,100}$")],
    lang: Lang,
    reader: ReaderDep,
    caller: CallerDep,
) -> HTMLResponse:
    """The terms of a licence in both languages, with the datasets under it that the caller may read.

    Terms are public (a restricted dataset's terms say who may use it); the list names readable datasets only.
    """
    known = set(metadata.LICENCES) | {s.licence for s in reader.catalog.specs().values()}
    if licence_id not in known:
        raise NotFound()
    datasets = sorted((s for s in reader.visible_specs().values() if s.licence == licence_id), key=lambda s: s.id)
    return render(
        request,
        "licence.html",
        lang,
        caller=caller,
        licence=metadata.licence(licence_id),
        datasets=datasets,
        reader=reader,
    )


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, lang: Lang) -> HTMLResponse:
    """The sign-in form (works without a valid cookie, so a revoked one can be replaced)."""
    return render(request, "login.html", lang, error=False)


@router.post("/login")
def login(
    request: Request,
    catalog: CatalogDep,
    token: Annotated[str, Form(max_length=MAX_TOKEN_CHARS)],
) -> Response:
    """Check a token and keep it in an HttpOnly cookie; a bad token gets the form again with 401."""
    lang = lang_of(request)
    try:
        recipient = check_token(catalog, token.strip(), address=client_address(request, catalog))
    except Unauthorized:
        log.warning("Refused a sign-in with an invalid token")
        return render(request, "login.html", lang, status=401, error=True)
    log.info("Recipient %s signed in to the catalog", recipient.code)
    response = RedirectResponse(f"{base_path(request)}/", status_code=303)
    response.set_cookie(
        TOKEN_COOKIE,
        token.strip(),
        path=f"{base_path(request)}/",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        max_age=12 * 3600,
    )
    return response


@router.post("/logout")
def logout(request: Request) -> Response:
    """Forget the cookie token."""
    token, via = presented_token(request)
    if token and via == "cookie":
        log.info("A catalog session signed out")
    response = RedirectResponse(f"{base_path(request)}/", status_code=303)
    response.delete_cookie(TOKEN_COOKIE, path=f"{base_path(request)}/")
    return response
