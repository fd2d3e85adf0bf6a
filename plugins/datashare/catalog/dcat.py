"""``/dcat.jsonld``: the open datasets as a DCAT-AP 3.0.1 catalog in JSON-LD, for national and EU-style portals.

Only ``open`` datasets with at least one visible release are listed, whoever asks: a harvester
republishes what it reads, and a dataset without a release has nothing to download. The document
passes the official DCAT-AP 3.0.1 SHACL shapes (tests run pyshacl on them offline):

- every controlled value is an IRI of the EU vocabulary that DCAT-AP names (file type, frequency,
  data theme, access right, language, country, ADMS publisher and licence types), declared inline with
  its ``skos:inScheme`` so a validator without network access can check it;
- agents have names and types; each dataset has a contact point (its unit's functional mailbox),
  keywords with their language, themes (EU data themes and our sector list), temporal coverage
  (the data's own first and last time), spatial coverage (Vietnam, and the provinces the data covers
  as concepts of our province lists, by name and code) and version notes;
- each distribution is a Parquet file of the newest visible release with its description, format,
  media type, size, licence and SHA-256 checksum (``spdx:Checksum``).

The context is inline (no remote context is fetched by anyone reading it offline).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from datashare.catalog import i18n, metadata
from datashare.catalog.app import base_path, get_catalog, origin_of
from datashare.catalog.coverage import Coverage, Place
from datashare.catalog.names import Name
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
    "skos": "http://www.w3.org/2004/02/skos/core#",
    "vcard": "http://www.w3.org/2006/vcard/ns#",
    "dcatap": "http://data.europa.eu/r5r/",
}
EU = metadata.EU
IANA = "https://www.iana.org/assignments/media-types/"
PARQUET_MEDIA_TYPE = "application/vnd.apache.parquet"
FILE_TYPE = EU + "file-type/"
LANGUAGE = EU + "language/"
COUNTRY = EU + "country/"
ACCESS_RIGHT = EU + "access-right/"
PUBLISHER_TYPE = "http://purl.org/adms/publishertype/"
LICENCE_TYPE = "http://purl.org/adms/licencetype/"
LICENCE_TYPES = {"CC-BY-4.0": "Attribution", "CC-BY-SA-4.0": "ShareAlike", "CC0-1.0": "PublicDomain"}
"""ADMS licence type of each SPDX licence we may publish open data under."""


def _texts(vi: str, en: str) -> list[dict[str, str]]:
    """A text in both languages as JSON-LD language-tagged literals."""
    return [{"@value": vi, "@language": "vi"}, {"@value": en, "@language": "en"}]


def _named(name: Name) -> list[dict[str, str]]:
    return _texts(name.vi, name.en)


SCHEME_TITLES = {
    LICENCE_TYPE + "1.0": "ADMS licence type",
    PUBLISHER_TYPE + "1.0": "ADMS publisher type",
    metadata.DATA_THEME[:-1]: "Data theme",
    EU + "planned-availability": "Planned availability",
}


def _scheme(iri: str) -> dict[str, Any]:
    """A concept scheme the shapes want typed; a typed scheme must carry a title."""
    return {"@id": iri, "@type": "skos:ConceptScheme", "dct:title": {"@value": SCHEME_TITLES[iri], "@language": "en"}}


def _concept(
    iri: str, scheme: str, label: str | None = None, *, scheme_is_typed: bool = False, kind: str | None = None
) -> dict[str, Any]:
    """A concept of a controlled vocabulary, with its scheme (and the class DCAT-AP's range expects)."""
    node: dict[str, Any] = {
        "@id": iri,
        "@type": ["skos:Concept", kind] if kind else "skos:Concept",
        "skos:inScheme": _scheme(scheme) if scheme_is_typed else {"@id": scheme},
    }
    if label:
        node["skos:prefLabel"] = {"@value": label, "@language": "en"}
    return node


def _licence(home: str, licence_id: str) -> dict[str, Any]:
    """A licence document: the canonical IRI of an SPDX licence, else our terms page; with its ADMS type."""
    found = metadata.licence(licence_id)
    node: dict[str, Any] = {
        "@id": found.url or f"{home}licences/{licence_id}",
        "@type": "dct:LicenseDocument",
        "dct:title": _named(found.name),
    }
    kind = LICENCE_TYPES.get(licence_id)
    if kind:
        node["dct:type"] = _concept(LICENCE_TYPE + kind, LICENCE_TYPE + "1.0", kind, scheme_is_typed=True)
    else:
        node["dct:type"] = _concept(
            LICENCE_TYPE + "RestrictedUse", LICENCE_TYPE + "1.0", "Restricted use", scheme_is_typed=True
        )
    return node


def _agent(iri: str, name: Name, kind: str) -> dict[str, Any]:
    """A named agent with its ADMS publisher type (NationalAuthority for the ministry and its units)."""
    return {
        "@id": iri,
        "@type": "foaf:Agent",
        "foaf:name": _named(name),
        "dct:type": _concept(PUBLISHER_TYPE + kind, PUBLISHER_TYPE + "1.0", kind, scheme_is_typed=True),
    }


def _stamp(value: str) -> dict[str, str]:
    return {"@value": value, "@type": "xsd:dateTime"}


def _time(value: str) -> dict[str, str]:
    """A coverage bound typed as what it is: a date-time, a date or a month."""
    if "T" in value:
        return {"@value": value, "@type": "xsd:dateTime"}
    if len(value) == 7:
        return {"@value": value, "@type": "xsd:gYearMonth"}
    return {"@value": value, "@type": "xsd:date"}


def _place(home: str, place: Place) -> dict[str, Any]:
    """A province as a concept of our province list of its code table (no EU or GeoNames IRI exists offline)."""
    scheme = f"{home}provinces/{place.table}"
    node = _concept(f"{scheme}/{place.code}", scheme, kind="dct:Location")
    node["skos:prefLabel"] = {"@value": place.name, "@language": "vi"}
    node["skos:notation"] = place.code
    related = [f"{home}provinces/{p.table}/{p.code}" for p in place.related]
    if related:
        node["skos:related"] = [{"@id": r} for r in related]
    return node


def _distributions(origin: str, home: str, reader: Reader, release: Release, spec: DatasetSpec) -> list[dict[str, Any]]:
    out = []
    count = len(release.files)
    for number, f in enumerate(release.files, start=1):
        url = origin + reader.file_url(release.dataset_id, release.version, f["path"])
        rows_vi, rows_en = i18n.number(f["rows"], "vi"), i18n.number(f["rows"], "en")
        out.append(
            {
                "@id": url,
                "@type": "dcat:Distribution",
                "dct:title": _texts(
                    f"{spec.title.vi}, phiên bản {release.version}, tệp {number}/{count}",
                    f"{spec.title.en}, version {release.version}, file {number} of {count}",
                ),
                "dct:description": _texts(
                    f"Tệp Parquet {f['path']} của phiên bản {release.version}: {rows_vi} dòng; kiểm tra bằng "
                    "mã băm SHA-256 kèm theo.",
                    f"Parquet file {f['path']} of version {release.version}: {rows_en} rows; check it against the "
                    "SHA-256 checksum given.",
                ),
                "dcat:downloadURL": {"@id": url},
                "dcat:accessURL": {"@id": origin + reader.release_url(release.dataset_id, release.version)},
                "dcat:mediaType": {"@id": IANA + PARQUET_MEDIA_TYPE, "@type": "dct:MediaType"},
                "dct:format": _concept(FILE_TYPE + "PARQUET", FILE_TYPE[:-1], "Parquet", kind="dct:MediaTypeOrExtent"),
                "dcat:byteSize": {"@value": str(f["bytes"]), "@type": "xsd:nonNegativeInteger"},
                "spdx:checksum": {
                    "@type": "spdx:Checksum",
                    "spdx:algorithm": {"@id": "spdx:checksumAlgorithm_sha256", "@type": "spdx:ChecksumAlgorithm"},
                    "spdx:checksumValue": {"@value": f["sha256"], "@type": "xsd:hexBinary"},
                },
                "dct:license": _licence(home, spec.licence),
                "dct:issued": _stamp(release.record["committed_at"]),
                # Releases are immutable: a file stays at its URL unless the release is withdrawn.
                "dcatap:availability": _concept(
                    EU + "planned-availability/STABLE", EU + "planned-availability", "stable", scheme_is_typed=True
                ),
            }
        )
    return out


def _coverage(home: str, coverage: Coverage) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "dct:spatial": [
            _concept(COUNTRY + "VNM", COUNTRY[:-1], "Viet Nam"),
            *(_place(home, p) for p in coverage.places),
        ]
    }
    if coverage.start and coverage.end:
        entry["dct:temporal"] = {
            "@type": "dct:PeriodOfTime",
            "dcat:startDate": _time(coverage.start),
            "dcat:endDate": _time(coverage.end),
        }
    return entry


def _dataset(origin: str, home: str, reader: Reader, spec: DatasetSpec, publisher: str) -> dict[str, Any] | None:
    """One open dataset with its newest visible release; None when it has none."""
    latest = reader.latest_release(spec)
    if latest is None:
        return None
    catalog = reader.catalog
    names = catalog.names()
    versions = reader.versions(spec.id)
    first = catalog.release(spec.id, versions[0])
    coverage = catalog.coverage(spec, latest)
    unit = names.units.get(spec.source.unit)
    unit_name = names.unit_name(spec.source.unit)
    page = origin + reader.dataset_url(spec.id)
    frequency = metadata.frequency(spec, catalog.specs())
    notes = metadata.version_notes(latest, coverage.start, coverage.end)
    contact: dict[str, Any] = {"@type": ["vcard:Kind", "vcard:Organization"], "vcard:fn": _named(unit_name)}
    if unit and unit.email:
        contact["vcard:hasEmail"] = {"@id": f"mailto:{unit.email}"}
    if unit and unit.url:
        contact["vcard:hasURL"] = {"@id": unit.url}
    keywords = [{"@value": k, "@language": "vi"} for k in spec.keywords.vi]
    keywords += [{"@value": k, "@language": "en"} for k in spec.keywords.en]
    if not keywords:  # a spec without keywords still gives words: its sector's name
        keywords = _named(names.sector_name(spec.sector))
    sector = names.sector_name(spec.sector)
    themes = [
        _concept(metadata.DATA_THEME + code, metadata.DATA_THEME[:-1], metadata.theme_name(code).en)
        for code in names.themes(spec.sector)
    ]
    themes.append(
        {
            "@id": f"{home}sectors/{spec.sector}",
            "@type": "skos:Concept",
            "skos:inScheme": {"@id": f"{home}sectors"},
            "skos:prefLabel": _named(sector),
            "skos:notation": spec.sector,
        }
    )
    return {
        "@id": page,
        "@type": "dcat:Dataset",
        "dct:identifier": spec.id,
        "dct:title": _texts(spec.title.vi, spec.title.en),
        "dct:description": _texts(spec.description.vi, spec.description.en),
        "dcat:keyword": keywords,
        "dcat:theme": themes,
        "dct:license": _licence(home, spec.licence),
        "dct:accessRights": _concept(ACCESS_RIGHT + "PUBLIC", ACCESS_RIGHT[:-1], "public", kind="dct:RightsStatement"),
        "dct:publisher": {"@id": publisher},
        "dct:creator": _agent(f"{home}units/{spec.source.unit}", unit_name, "NationalAuthority"),
        "dcat:contactPoint": contact,
        "dct:accrualPeriodicity": _concept(
            metadata.FREQUENCY + frequency,
            metadata.FREQUENCY[:-1],
            metadata.frequency_name(frequency).en,
            kind="dct:Frequency",
        ),
        "dcat:landingPage": {"@id": page, "@type": "foaf:Document"},
        "dct:issued": _stamp(first.record["committed_at"]),
        "dct:modified": _stamp(latest.record["committed_at"]),
        "dcat:version": str(latest.version),
        "adms:versionNotes": _named(notes),
        "dcat:distribution": _distributions(origin, home, reader, latest, spec),
        **_coverage(home, coverage),
    }


def catalog_document(origin: str, reader: Reader) -> dict[str, Any]:
    """The DCAT-AP catalog of open datasets; ``reader`` must be anonymous, ``origin`` is scheme://host."""
    home = origin + reader.base + "/"
    publisher = _agent(
        f"{home}#publisher", Name(vi=i18n.t("ministry", "vi"), en=i18n.t("ministry", "en")), "NationalAuthority"
    )
    datasets = []
    for spec in sorted(reader.visible_specs().values(), key=lambda s: s.id):
        if open_only(spec):
            entry = _dataset(origin, home, reader, spec, publisher["@id"])
            if entry is not None:
                datasets.append(entry)
    doc: dict[str, Any] = {
        "@context": CONTEXT,
        "@id": home,
        "@type": "dcat:Catalog",
        "dct:title": _texts(i18n.t("catalog", "vi"), i18n.t("catalog", "en")),
        "dct:description": _texts(i18n.t("catalog_intro", "vi"), i18n.t("catalog_intro", "en")),
        "dct:publisher": publisher,
        "foaf:homepage": {"@id": home, "@type": "foaf:Document"},
        "dct:language": [
            _concept(LANGUAGE + "VIE", LANGUAGE[:-1], "Vietnamese", kind="dct:LinguisticSystem"),
            _concept(LANGUAGE + "ENG", LANGUAGE[:-1], "English", kind="dct:LinguisticSystem"),
        ],
        "dct:license": _licence(home, "CC-BY-4.0"),
        "dct:spatial": _concept(COUNTRY + "VNM", COUNTRY[:-1], "Viet Nam"),
        "dcat:themeTaxonomy": [
            _scheme(metadata.DATA_THEME[:-1]),
            {
                "@id": f"{home}sectors",
                "@type": "skos:ConceptScheme",
                "dct:title": _texts("Lĩnh vực", "Sectors"),
            },
        ],
        "dcat:dataset": datasets,
    }
    stamps = sorted(d["dct:issued"]["@value"] for d in datasets)
    if stamps:
        doc["dct:issued"] = _stamp(stamps[0])
        doc["dct:modified"] = _stamp(max(d["dct:modified"]["@value"] for d in datasets))
    return doc


@router.get(
    "/dcat.jsonld",
    summary="DCAT-AP 3.0.1 catalog of the open datasets (JSON-LD)",
    response_class=JSONResponse,
    responses={200: {"content": {"application/ld+json": {"schema": {"type": "object"}}}}},
)
def dcat_catalog(request: Request, catalog: Annotated[Catalog, Depends(get_catalog)]) -> JSONResponse:
    """Open datasets only, whoever asks; a token is neither needed nor looked at."""
    origin = origin_of(request)
    reader = catalog.reader(None, base_path(request), origin)
    return JSONResponse(catalog_document(origin, reader), media_type="application/ld+json")
