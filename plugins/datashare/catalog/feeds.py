"""Atom feeds (RFC 4287) of new releases: one per dataset and one for the whole catalog.

``/feed.atom`` lists the newest releases of every dataset the caller may read; ``/datasets/<id>/feed.atom``
those of one dataset (404 when the caller may not read it, exactly like its page). A feed reader
without credentials sees open data; one that sends ``Authorization: Bearer <token>`` (or the catalog's
cookie) sees what the token's agency is granted, and nothing else: the feed goes through the same
:class:`~datashare.catalog.service.Reader` as the pages.

Withdrawn releases are not listed, as everywhere in the catalog: a reader that polled while a release
was listed keeps its copy of the entry, and learns of the withdrawal from the dataset page (a webhook
subscriber is told of new releases only, see :mod:`datashare.notify.webhooks`).

Entry ids are ``urn:uuid:`` names derived from the dataset, the version and the manifest's SHA-256,
so they never change and never collide across stores; titles and summaries carry both languages
(Vietnamese first), since an Atom entry holds one title.
"""

from __future__ import annotations

import re
import uuid
import xml.etree.ElementTree as ET
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from datashare.catalog import i18n
from datashare.catalog.app import get_reader
from datashare.catalog.params import DatasetIdPath
from datashare.catalog.service import Reader, verdict_of
from datashare.spec import DatasetSpec
from datashare.store import Release

router = APIRouter(include_in_schema=False)

ATOM = "http://www.w3.org/2005/Atom"
MEDIA_TYPE = "application/atom+xml; charset=utf-8"
MAX_ENTRIES = 100
EMPTY_UPDATED = "1970-01-01T00:00:00Z"
_NAMESPACE = uuid.UUID("6c1f0c52-8a4e-4f55-9d61-2f8a0d6c5e10")
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
VERDICT_WORDS = {
    "passed": ("Đạt", "passed"),
    "failed": ("Không đạt", "failed"),
    "not_run": ("chưa kiểm tra", "not run"),
}

ET.register_namespace("", ATOM)


def _text(value: str) -> str:
    """Text XML 1.0 can carry: characters it forbids are dropped (escaping is the serializer's)."""
    return _XML_INVALID.sub("", value)


def _el(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, f"{{{ATOM}}}{tag}", {k: _text(v) for k, v in attrs.items()})
    if text is not None:
        element.text = _text(text)
    return element


def entry_id(release: Release) -> str:
    """A permanent id for a release's entry."""
    name = f"{release.dataset_id}/v{release.version}/{release.record['manifest_sha256']}"
    return f"urn:uuid:{uuid.uuid5(_NAMESPACE, name)}"


def _origin(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"


def _entry(feed: ET.Element, reader: Reader, origin: str, spec: DatasetSpec, release: Release) -> None:
    entry = _el(feed, "entry")
    _el(entry, "id", entry_id(release))
    v = release.version
    _el(entry, "title", f"{spec.title.vi} · v{v} / {spec.title.en} · v{v}")
    committed = str(release.record["committed_at"])
    _el(entry, "published", committed)
    _el(entry, "updated", committed)
    page = origin + reader.release_url(release.dataset_id, v)
    _el(entry, "link", rel="alternate", type="text/html", href=page)
    _el(entry, "link", rel="alternate", type="text/csv", href=origin + reader.export_url(release, "csv"))
    manifest = origin + reader.file_url(release.dataset_id, v, "datapackage.json")
    _el(entry, "link", rel="describedby", type="application/json", href=manifest)
    for f in release.files:
        _el(
            entry,
            "link",
            rel="enclosure",
            type="application/vnd.apache.parquet",
            href=origin + reader.file_url(release.dataset_id, v, f["path"]),
            length=str(f["bytes"]),
        )
    _el(entry, "category", term=spec.sector)
    sharing = spec.classification.sharing.value
    _el(entry, "category", term=sharing, label=f"{i18n.t(sharing, 'vi')} / {i18n.t(sharing, 'en')}")
    vi_verdict, en_verdict = VERDICT_WORDS[verdict_of(release)]
    summary = (
        f"Phiên bản {v} của {spec.title.vi}: {i18n.number(release.rows, 'vi')} dòng, kiểm tra: {vi_verdict}. "
        f"/ Release {v} of {spec.title.en}: {i18n.number(release.rows, 'en')} rows, validation: {en_verdict}."
    )
    _el(entry, "summary", summary, type="text")


def render_feed(
    request: Request, reader: Reader, specs: list[DatasetSpec], *, title: str, feed_key: str, alternate: str
) -> Response:
    """The Atom document of the newest visible releases of ``specs``."""
    releases = [(spec, reader.catalog.release(spec.id, v)) for spec in specs for v in reader.versions(spec.id)]
    releases.sort(key=lambda pair: (str(pair[1].record["committed_at"]), pair[1].dataset_id, pair[1].version))
    newest = list(reversed(releases))[:MAX_ENTRIES]
    origin = _origin(request)
    feed = ET.Element(f"{{{ATOM}}}feed", {"{http://www.w3.org/XML/1998/namespace}lang": "vi"})
    _el(feed, "id", f"urn:uuid:{uuid.uuid5(_NAMESPACE, feed_key)}")
    _el(feed, "title", title)
    _el(feed, "subtitle", f"{i18n.t('feed_subtitle', 'vi')} / {i18n.t('feed_subtitle', 'en')}")
    _el(feed, "updated", str(newest[0][1].record["committed_at"]) if newest else EMPTY_UPDATED)
    author = _el(feed, "author")
    _el(author, "name", f"{i18n.t('ministry', 'vi')} / {i18n.t('ministry', 'en')}")
    _el(feed, "link", rel="self", type="application/atom+xml", href=origin + request.url.path)
    _el(feed, "link", rel="alternate", type="text/html", href=origin + alternate)
    _el(feed, "generator", "datashare")
    for spec, release in newest:
        _entry(feed, reader, origin, spec, release)
    body = ET.tostring(feed, encoding="utf-8", xml_declaration=True)
    headers = {"Cache-Control": "private, no-cache", "Vary": "Authorization, Cookie"}
    return Response(body, media_type=MEDIA_TYPE, headers=headers)


ReaderDep = Annotated[Reader, Depends(get_reader)]


@router.api_route("/feed.atom", methods=["GET", "HEAD"])
def catalog_feed(request: Request, reader: ReaderDep) -> Response:
    """New releases of every dataset the caller may read."""
    specs = sorted(reader.visible_specs().values(), key=lambda s: s.id)
    vi, en = (f"{i18n.t('catalog', lang)}: {i18n.t('feed_title', lang)}" for lang in ("vi", "en"))
    title = f"{vi} / {en}"
    return render_feed(request, reader, specs, title=title, feed_key="catalog", alternate=f"{reader.base}/")


@router.api_route("/datasets/{dataset_id}/feed.atom", methods=["GET", "HEAD"])
def dataset_feed(request: Request, dataset_id: DatasetIdPath, reader: ReaderDep) -> Response:
    """New releases of one dataset (404 when the caller may not read it)."""
    spec = reader.spec(dataset_id)
    title = f"{spec.title.vi}: {i18n.t('feed_title', 'vi')} / {spec.title.en}: {i18n.t('feed_title', 'en')}"
    return render_feed(
        request, reader, [spec], title=title, feed_key=f"dataset/{spec.id}", alternate=reader.dataset_url(spec.id)
    )
