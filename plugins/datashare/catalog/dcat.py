"""``/dcat.jsonld``: the open datasets as a DCAT-AP catalog in JSON-LD, for national and EU-style portals.

Only ``open`` datasets are listed, whoever asks: a harvester republishes what it reads. Each
dataset's distributions are the Parquet files of its newest visible release, with download URL,
media type, size and SHA-256 checksum (``spdx:Checksum``), so a harvester can verify what it fetches.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from datashare.catalog import i18n
from datashare.catalog.app import base_path, get_catalog
from datashare.catalog.service import Catalog, Reader, open_only
from datashare.spec import DatasetSpec
from datashare.store import Release

router = APIRouter(tags=["metadata"])

CONTEXT = {
    "dcat": "http://www.w3.org/ns/dcat#",
    "dct": "http://purl.org/dc/terms/",
    "foaf": "http://xmlns.com/foaf/0.1/",
    "spdx": "http://spdx.org/rdf/terms#",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
    "adms": "http://www.w3.org/ns/adms#",
}
IANA = "https://www.iana.org/assignments/media-types/"
LANGUAGE = "http://publications.europa.eu/resource/authority/language/"
PUBLIC = "http://publications.europa.eu/resource/authority/access-right/PUBLIC"
LICENCES = {
    "CC-BY-4.0": "https://creativecommons.org/licenses/by/4.0/",
    "CC-BY-SA-4.0": "https://creativecommons.org/licenses/by-sa/4.0/",
    "CC0-1.0": "https://creativecommons.org/publicdomain/zero/1.0/",
    "ODbL-1.0": "https://opendatacommons.org/licenses/odbl/1-0/",
}
"""SPDX licence ids to their canonical IRIs; other ids point at the SPDX list."""


def _texts(text: Any) -> list[dict[str, str]]:
    """A bilingual text as JSON-LD language-tagged literals."""
    return [{"@value": text.vi, "@language": "vi"}, {"@value": text.en, "@language": "en"}]


def _licence(licence: str) -> dict[str, str]:
    return {"@id": LICENCES.get(licence, f"https://spdx.org/licenses/{licence}.html"), "@type": "dct:LicenseDocument"}


def _publisher(origin: str) -> dict[str, Any]:
    return {
        "@id": f"{origin}#publisher",
        "@type": "foaf:Agent",
        "foaf:name": [
            {"@value": i18n.t("ministry", "vi"), "@language": "vi"},
            {"@value": i18n.t("ministry", "en"), "@language": "en"},
        ],
    }


def _stamp(value: str) -> dict[str, str]:
    return {"@value": value, "@type": "xsd:dateTime"}


def _distributions(origin: str, reader: Reader, release: Release, spec: DatasetSpec) -> list[dict[str, Any]]:
    out = []
    for f in release.files:
        url = origin + reader.file_url(release.dataset_id, release.version, f["path"])
        out.append(
            {
                "@id": url,
                "@type": "dcat:Distribution",
                "dct:title": f"{release.dataset_id} v{release.version} {f['path']}",
                "dcat:downloadURL": {"@id": url},
                "dcat:accessURL": {"@id": origin + reader.release_url(release.dataset_id, release.version)},
                "dcat:mediaType": {"@id": IANA + "application/vnd.apache.parquet"},
                "dct:format": "Parquet",
                "dcat:byteSize": {"@value": str(f["bytes"]), "@type": "xsd:nonNegativeInteger"},
                "spdx:checksum": {
                    "@type": "spdx:Checksum",
                    "spdx:algorithm": {"@id": "spdx:checksumAlgorithm_sha256"},
                    "spdx:checksumValue": {"@value": f["sha256"], "@type": "xsd:hexBinary"},
                },
                "dct:license": _licence(spec.licence),
                "dct:issued": _stamp(release.record["committed_at"]),
            }
        )
    return out


def catalog_document(origin: str, reader: Reader) -> dict[str, Any]:
    """The DCAT-AP catalog of open datasets; ``reader`` must be anonymous, ``origin`` is scheme://host."""
    home = origin + reader.base + "/"
    publisher = _publisher(home)
    datasets = []
    modified: list[str] = []
    for spec in sorted(reader.visible_specs().values(), key=lambda s: s.id):
        if not open_only(spec):
            continue
        latest = reader.latest_release(spec)
        versions = reader.versions(spec.id)
        page = origin + reader.dataset_url(spec.id)
        entry: dict[str, Any] = {
            "@id": page,
            "@type": "dcat:Dataset",
            "dct:identifier": spec.id,
            "dct:title": _texts(spec.title),
            "dct:description": _texts(spec.description),
            "dcat:keyword": [spec.sector, *spec.tags],
            "dct:license": _licence(spec.licence),
            "dct:accessRights": {"@id": PUBLIC},
            "dct:publisher": {"@id": publisher["@id"]},
            "dct:creator": {"@type": "foaf:Agent", "dct:identifier": spec.source.unit},
            "dcat:landingPage": {"@id": page},
            "dcat:distribution": [],
        }
        if latest is not None:
            first = reader.catalog.release(spec.id, versions[0])
            entry["dct:issued"] = _stamp(first.record["committed_at"])
            entry["dct:modified"] = _stamp(latest.record["committed_at"])
            entry["adms:version"] = str(latest.version)
            entry["dcat:distribution"] = _distributions(origin, reader, latest, spec)
            modified.append(latest.record["committed_at"])
        datasets.append(entry)
    doc: dict[str, Any] = {
        "@context": CONTEXT,
        "@id": home,
        "@type": "dcat:Catalog",
        "dct:title": [
            {"@value": i18n.t("catalog", "vi"), "@language": "vi"},
            {"@value": i18n.t("catalog", "en"), "@language": "en"},
        ],
        "dct:description": [
            {"@value": i18n.t("catalog_intro", "vi"), "@language": "vi"},
            {"@value": i18n.t("catalog_intro", "en"), "@language": "en"},
        ],
        "dct:publisher": publisher,
        "foaf:homepage": {"@id": home},
        "dct:language": [{"@id": LANGUAGE + "VIE"}, {"@id": LANGUAGE + "ENG"}],
        "dcat:dataset": datasets,
    }
    if modified:
        doc["dct:modified"] = _stamp(max(modified))
    return doc


@router.get(
    "/dcat.jsonld",
    summary="DCAT-AP catalog of the open datasets (JSON-LD)",
    response_class=JSONResponse,
    responses={200: {"content": {"application/ld+json": {}}}},
)
def dcat_catalog(request: Request, catalog: Annotated[Catalog, Depends(get_catalog)]) -> JSONResponse:
    """Open datasets only, whoever asks; a token is neither needed nor looked at."""
    origin = f"{request.url.scheme}://{request.url.netloc}"
    reader = catalog.reader(None, base_path(request))
    return JSONResponse(catalog_document(origin, reader), media_type="application/ld+json")
