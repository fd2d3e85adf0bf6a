"""The catalog's read model: which datasets, releases and files a caller may see, and what they show.

Pages, the JSON API and downloads all go through :class:`Reader`, so there is one access rule
(``datashare.access.can_read``) and one answer for "not yours": :class:`NotFound`, exactly as for an
id that does not exist, so names of datasets a caller may not read never leak. Nothing here builds a
storage key from user input: ids must match the spec id pattern and be a known, readable spec, and
file names must be in the release's own list of files.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datashare.access import Recipient, Registry, Tokens, can_read, load_registry
from datashare.catalog import coverage as cov
from datashare.catalog import i18n, metadata, search
from datashare.catalog.models import (
    Citation,
    ClassificationInfo,
    ColumnInfo,
    Concept,
    ContactInfo,
    CoverageInfo,
    DatasetDetail,
    DatasetPage,
    DatasetSummary,
    ExportInfo,
    Facets,
    FacetValue,
    FileInfo,
    KeywordsInfo,
    LicenceInfo,
    LocalText,
    Named,
    PlaceInfo,
    Province,
    ReleaseDetail,
    ReleaseSummary,
    ValidationInfo,
    Verdict,
)
from datashare.catalog.names import Names, load_names
from datashare.exceptions import ConfigError, ReleaseError
from datashare.settings import Settings
from datashare.spec import DATASET_ID_SHAPE, DatasetSpec, Sharing, load_specs
from datashare.store import OpensStore, Release

if TYPE_CHECKING:
    from datashare.access.log import AccessLog
    from datashare.catalog.limits import Limits

log = logging.getLogger(__name__)

ID_RE = re.compile(DATASET_ID_SHAPE.removeprefix("^").removesuffix("$"))
MAX_PARAM = 200
PER_PAGE = 20
MEDIA_TYPES = {
    ".parquet": "application/vnd.apache.parquet",
    ".json": "application/json",
    ".html": "text/html; charset=utf-8",
    ".csv": "text/csv; charset=utf-8",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".zip": "application/zip",
    ".txt": "text/plain; charset=utf-8",
}
EXTRA_FILES = ("datapackage.json", "validation/report.html", "validation/result.json")
"""Files of a release besides its data files; served only if present in the store."""
_RELEASE_CACHE_MAX = 1024


class CatalogError(Exception):
    """An answer other than 200, with the status and a message safe to show to anyone."""

    status = 400
    key = "bad_request"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class BadRequest(CatalogError):
    """Malformed input: nothing was looked up."""


class NotFound(CatalogError):
    """Unknown, or not readable by this caller: the two are indistinguishable on purpose."""

    status = 404
    key = "not_found"

    def __init__(self) -> None:
        super().__init__("Not found: no such dataset, release or file, or you may not see it.")


class Unauthorized(CatalogError):
    """A token was presented but is not valid (unknown, forged, revoked, or of an unknown recipient)."""

    status = 401
    key = "unauthorized"

    def __init__(self) -> None:
        super().__init__("The access token is invalid or has been revoked.")


def check_id(dataset_id: str) -> str:
    """A dataset id from a URL, refused unless it matches the spec id pattern exactly."""
    if len(dataset_id) > MAX_PARAM or not ID_RE.fullmatch(dataset_id):
        raise BadRequest(f"not a dataset id: ids match {DATASET_ID_SHAPE}")
    return dataset_id


@dataclass(frozen=True)
class ServedFile:
    """A release file that passed every check, ready to be sent."""

    dataset_id: str
    version: int
    name: str
    key: str
    media_type: str
    sha256: str | None
    filename: str | None = None
    """Name offered to the browser; by default ``<id>-v<N>-<name>``."""
    headers: dict[str, str] = field(default_factory=dict)
    """Extra answer headers (e.g. a ``Link`` to the release's provenance)."""


def _file_signature(path: Path) -> tuple[int, int] | None:
    """When a file last changed and its size (a change means: read it again); None when it cannot be read."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size)


class Catalog(OpensStore):
    """Specs, registry and release store of one deployment; caches what is immutable or unchanged on disk."""

    def __init__(self, settings: Settings, limits: Limits | None = None) -> None:
        self.settings = settings
        self._specs: tuple[tuple[Any, ...], dict[str, DatasetSpec]] | None = None
        self._registry: tuple[Any, Registry] | None = None
        self._releases: dict[tuple[str, int], Release] = {}
        self._limits = limits
        self._names: tuple[Any, Names] | None = None
        self._coverage: dict[tuple[str, int], cov.Coverage] = {}
        self._documents: dict[str, tuple[DatasetSpec, Names, int | None, search.Document]] = {}

    @cached_property
    def limits(self) -> Limits:
        """Per-caller rate limits of this catalog (``DATASHARE_CATALOG_*`` unless given)."""
        from datashare.catalog.limits import Limits

        return self._limits or Limits()

    @cached_property
    def access_log(self) -> AccessLog:
        """The download log beside the releases (``_access/downloads``), buffered in this process."""
        from datashare.access.log import AccessLog

        return AccessLog(self.store.backend)

    @property
    def tokens(self) -> Tokens:
        """HTTP tokens kept as hashes in the store."""
        return Tokens(self.store.backend)

    def specs(self) -> dict[str, DatasetSpec]:
        """Valid specs by id, re-read when a spec file changes; invalid files are logged and left out."""
        folder = self.settings.datasets_dir
        paths = sorted(folder.glob("*.yaml")) if folder.is_dir() else []
        signature = tuple((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in paths)
        if self._specs is None or self._specs[0] != signature:
            specs, errors = load_specs(folder)
            for path, err in errors.items():
                log.error("Catalog leaves out %s: %s", path, err)
            self._specs = (signature, specs)
        return self._specs[1]

    def registry(self) -> Registry:
        """The recipients registry; when missing or broken, an empty one (nobody authenticates), logged."""
        path: Path = self.settings.recipients_file
        signature = _file_signature(path)
        if self._registry is None or self._registry[0] != signature:
            try:
                registry = load_registry(path)
            except ConfigError as exc:
                log.error("Catalog cannot load the recipients registry; no token will be accepted: %s", exc)
                registry = Registry()
            self._registry = (signature, registry)
        return self._registry[1]

    @property
    def names_file(self) -> Path:
        """Names of sectors and units, and the units' contact points."""
        return self.settings.home / "config" / "units.yaml"

    def names(self) -> Names:
        """Sector and unit names, re-read when the file changes; when missing or broken, empty (codes shown), logged."""
        path = self.names_file
        signature = _file_signature(path)
        if self._names is None or self._names[0] != signature:
            try:
                names = load_names(path)
            except ConfigError as exc:
                log.error("Catalog shows codes instead of names: %s", exc)
                names = Names()
            missing = sorted(
                {f"sector {s.sector}" for s in self.specs().values() if s.sector not in names.sectors}
                | {f"unit {s.source.unit}" for s in self.specs().values() if s.source.unit not in names.units}
            )
            if missing:
                log.warning("%s names no %s: shown as codes", path.name, ", ".join(missing))
            self._names = (signature, names)
        return self._names[1]

    def coverage(self, spec: DatasetSpec, release: Release) -> cov.Coverage:
        """What a release covers (immutable, so computed once per process and version)."""
        cache_key = (release.dataset_id, release.version)
        found = self._coverage.get(cache_key)
        if found is None:
            found = cov.compute(self.store, spec, release)
            if len(self._coverage) >= _RELEASE_CACHE_MAX:
                self._coverage.pop(next(iter(self._coverage)))
            self._coverage[cache_key] = found
        return found

    def document(self, spec: DatasetSpec, release: Release | None) -> search.Document:
        """The search entry of a dataset; rebuilt only when its spec, the names or its newest release change."""
        names = self.names()
        version = release.version if release else None
        cached = self._documents.get(spec.id)
        if cached is not None and cached[0] == spec and cached[1] is names and cached[2] == version:
            return cached[3]
        coverage = self.coverage(spec, release) if release else None
        doc = search.build_document(spec, names, coverage)
        self._documents[spec.id] = (spec, names, version, doc)
        return doc

    @cached_property
    def share_is_sqlite(self) -> bool:
        """Whether the SQL share in use is the embedded SQLite file, which has no schemas."""
        return self.settings.share_url().startswith("sqlite")

    def sql_view(self, spec: DatasetSpec) -> str | None:
        """The name that works in the share in use: ``<schema>.<id>`` on PostgreSQL, the bare id in SQLite."""
        if not spec.publish.sql:
            return None
        return spec.id if self.share_is_sqlite else f"{self.settings.share_schema}.{spec.id}"

    def recipient_of(self, token: str) -> Recipient:
        """The registered recipient a token belongs to; :class:`Unauthorized` otherwise."""
        code = self.tokens.lookup(token)
        recipient = self.registry().get(code) if code else None
        if recipient is None:
            raise Unauthorized()
        return recipient

    def release(self, dataset_id: str, version: int) -> Release:
        """A committed release (immutable, so cached)."""
        cache_key = (dataset_id, version)
        cached = self._releases.get(cache_key)
        if cached is None:
            cached = self.store.release(dataset_id, version)
            if len(self._releases) >= _RELEASE_CACHE_MAX:
                self._releases.pop(next(iter(self._releases)))
            self._releases[cache_key] = cached
        return cached

    def reader(self, recipient: Recipient | None, base: str = "", origin: str = "") -> Reader:
        """What ``recipient`` (None: anonymous) may see, with links under ``base`` (the mount prefix).

        ``origin`` (scheme://host) makes the links that travel outside the site absolute (citations).
        """
        return Reader(self, recipient, base, origin)


def verdict_of(release: Release) -> Verdict:
    """passed / failed / not_run from the manifest's validation summary."""
    validation = release.manifest["datashare"].get("validation") or {}
    if not validation:
        return "not_run"
    return "passed" if validation.get("success") else "failed"


def _media_type(name: str) -> str:
    return MEDIA_TYPES.get(Path(name).suffix, "application/octet-stream")


class Reader:
    """The catalog as one caller sees it during one request."""

    def __init__(self, catalog: Catalog, recipient: Recipient | None, base: str, origin: str = "") -> None:
        self.catalog = catalog
        self.recipient = recipient
        self.base = base.rstrip("/")
        self.origin = origin.rstrip("/")
        self._withdrawn: dict[str, dict[int, str]] = {}
        self._versions: dict[str, list[int]] = {}

    # -- access ------------------------------------------------------------------------------

    def visible_specs(self) -> dict[str, DatasetSpec]:
        """Specs the caller may read."""
        return {i: s for i, s in self.catalog.specs().items() if can_read(self.recipient, s)}

    def spec(self, dataset_id: str) -> DatasetSpec:
        """A readable spec by id; :class:`NotFound` when unknown or not readable (the same answer)."""
        spec = self.visible_specs().get(check_id(dataset_id))
        if spec is None:
            raise NotFound()
        return spec

    def withdrawn(self, dataset_id: str) -> dict[int, str]:
        """Withdrawn versions of a dataset with their reasons (one listing of its markers per request)."""
        if dataset_id not in self._withdrawn:
            self._withdrawn[dataset_id] = self.catalog.store.withdrawn(dataset_id)
        return self._withdrawn[dataset_id]

    def versions(self, dataset_id: str) -> list[int]:
        """Committed, not withdrawn versions, ascending; none when the dataset's store objects cannot be read.

        A damaged dataset is logged and shown without releases: it never takes another dataset's
        page, or the list, down with it.
        """
        if dataset_id not in self._versions:
            try:
                withdrawn = self.withdrawn(dataset_id)
                self._versions[dataset_id] = [v for v in self.catalog.store.versions(dataset_id) if v not in withdrawn]
            except ReleaseError as exc:
                log.error("Catalog cannot read the releases of %s: %s", dataset_id, exc)
                self._versions[dataset_id] = []
        return self._versions[dataset_id]

    def _readable(self, dataset_id: str, version: int) -> Release | None:
        """A release, or None (logged) when its record or manifest cannot be read."""
        try:
            return self.catalog.release(dataset_id, version)
        except ReleaseError as exc:
            log.error("Catalog leaves out %s v%s: %s", dataset_id, version, exc)
            return None

    def _release(self, spec: DatasetSpec, version: int) -> Release:
        release = self._readable(spec.id, version) if version in self.versions(spec.id) else None
        if release is None:
            raise NotFound()
        return release

    def visible_release(self, dataset_id: str, version: int) -> Release:
        """A release the caller may see (readable dataset, committed, not withdrawn); else :class:`NotFound`."""
        return self._release(self.spec(dataset_id), version)

    # -- links -------------------------------------------------------------------------------

    def absolute(self, path: str) -> str:
        """A link as an absolute URL when the request's origin is known (citations travel outside the site)."""
        return self.origin + path

    def dataset_url(self, dataset_id: str) -> str:
        return f"{self.base}/datasets/{dataset_id}"

    def release_url(self, dataset_id: str, version: int) -> str:
        return f"{self.dataset_url(dataset_id)}/v/{version}"

    def file_url(self, dataset_id: str, version: int, name: str) -> str:
        return f"{self.release_url(dataset_id, version)}/files/{name}"

    # -- views -------------------------------------------------------------------------------

    def summary(self, spec: DatasetSpec) -> DatasetSummary:
        """A dataset as listed, with its newest visible release."""
        return DatasetSummary(**self._summary_fields(spec))

    def _summary_fields(self, spec: DatasetSpec) -> dict[str, Any]:
        latest = self.latest_release(spec)
        committed = latest.record["committed_at"] if latest else None
        hours = i18n.age_hours(committed)
        return {
            "id": spec.id,
            "title": LocalText(**spec.title.model_dump()),
            "description": LocalText(**spec.description.model_dump()),
            "sector": spec.sector,
            "sector_name": LocalText(**self.catalog.names().sector_name(spec.sector).model_dump()),
            "classification": ClassificationInfo(**spec.classification.model_dump(mode="json")),
            "latest_version": latest.version if latest else None,
            "latest_committed_at": committed,
            "age_hours": None if hours is None else round(hours, 2),
            "max_age_hours": spec.freshness.max_age_hours,
            "fresh": None if hours is None else hours <= spec.freshness.max_age_hours,
            "verdict": verdict_of(latest) if latest else None,
            "url": self.dataset_url(spec.id),
        }

    def datasets(
        self,
        *,
        q: str | None = None,
        sector: str | None = None,
        sharing: str | None = None,
        province: str | None = None,
        year: int | None = None,
        page: int = 1,
    ) -> DatasetPage:
        """A page of readable datasets matching a search (see :mod:`datashare.catalog.search`), best first."""
        visible = self.visible_specs()
        docs = [self.catalog.document(s, self.latest_release(s)) for s in visible.values()]
        filters = search.Filters(sector=sector, sharing=sharing, province=province, year=year)
        found = search.run(docs, q or "", filters)
        start = (page - 1) * PER_PAGE
        names = self.catalog.names()
        items = [
            DatasetSummary(**{**self._summary_fields(visible[i]), "score": round(value, 2) if q else None})
            for i, value in found.ranked[start : start + PER_PAGE]
        ]
        sectors = sorted({s.sector for s in visible.values()})
        return DatasetPage(
            items=items,
            total=len(found.ranked),
            page=page,
            per_page=PER_PAGE,
            sectors=sectors,
            sector_names=[Named(code=c, name=LocalText(**names.sector_name(c).model_dump())) for c in sectors],
            facets=self._facets(found),
        )

    def _facets(self, found: search.Result) -> Facets:
        names = self.catalog.names()
        places = cov.provinces().new

        def values(counts: Any, name: Any) -> list[FacetValue]:
            return [
                FacetValue(value=str(v), name=name(v), count=n)
                for v, n in sorted(counts.items(), key=lambda p: (-p[1], str(p[0])))
            ]

        return Facets(
            sector=values(found.sectors, lambda v: LocalText(**names.sector_name(v).model_dump())),
            classification=values(found.sharing, lambda v: LocalText(vi=i18n.t(v, "vi"), en=i18n.t(v, "en"))),
            province=values(
                found.provinces, lambda v: LocalText(vi=places.get(v) or v, en=cov.short_name(places.get(v) or v))
            ),
            year=sorted(values(found.years, lambda v: LocalText(vi=str(v), en=str(v))), key=lambda f: f.value),
        )

    def coverage_info(self, spec: DatasetSpec, release: Release | None) -> CoverageInfo:
        """What a release covers, as the API shows it."""
        if release is None:
            return CoverageInfo(time_column=cov.time_column(spec))
        found = self.catalog.coverage(spec, release)
        return CoverageInfo(
            time_column=found.time_column,
            start=found.start,
            end=found.end,
            years=list(found.years),
            places=[
                PlaceInfo(
                    code=p.code,
                    name=p.name,
                    table=p.table,
                    related=[Province(code=r.code, name=r.name, table=r.table) for r in p.related],
                    confirmed=p.confirmed,
                )
                for p in found.places
            ],
        )

    def licence_url(self, licence_id: str) -> str:
        """Our terms page of a licence."""
        return f"{self.base}/licences/{licence_id}"

    def dataset(self, dataset_id: str) -> DatasetDetail:
        """A readable dataset with schema and visible releases, newest first."""
        spec = self.spec(dataset_id)
        readable = (self._readable(spec.id, v) for v in reversed(self.versions(spec.id)))
        releases = [self._release_summary(r) for r in readable if r is not None]
        columns = [
            ColumnInfo(
                name=c.name,
                type=c.type.value,
                nullable=c.nullable,
                description=LocalText(**c.description.model_dump()),
                unit=c.unit,
                personal_data=c.personal_data.value,
            )
            for c in spec.columns
        ]
        names = self.catalog.names()
        known = names.units.get(spec.source.unit)
        unit_name = LocalText(**names.unit_name(spec.source.unit).model_dump())
        latest = self.latest_release(spec)
        terms = metadata.licence(spec.licence)
        freq = metadata.frequency(spec, self.catalog.specs())
        url = self.dataset_url(spec.id) if latest is None else self.release_url(spec.id, latest.version)
        return DatasetDetail(
            **self._summary_fields(spec),
            owner_unit=spec.source.unit,
            owner_unit_name=unit_name,
            contact=ContactInfo(name=unit_name, email=known.email if known else None, url=known.url if known else None),
            licence=spec.licence,
            licence_info=LicenceInfo(
                id=terms.id,
                name=LocalText(**terms.name.model_dump()),
                url=terms.url,
                terms_url=self.licence_url(terms.id),
            ),
            themes=[
                Concept(code=c, iri=metadata.DATA_THEME + c, name=LocalText(**metadata.theme_name(c).model_dump()))
                for c in names.themes(spec.sector)
            ],
            frequency=Concept(
                code=freq, iri=metadata.FREQUENCY + freq, name=LocalText(**metadata.frequency_name(freq).model_dump())
            ),
            coverage=self.coverage_info(spec, latest),
            citation=Citation(
                text=LocalText(
                    vi=metadata.citation(spec, names, latest, self.absolute(url), "vi"),
                    en=metadata.citation(spec, names, latest, self.absolute(url), "en"),
                ),
                bibtex=metadata.bibtex(spec, names, latest, self.absolute(url)),
            ),
            keywords=KeywordsInfo(vi=list(spec.keywords.vi), en=list(spec.keywords.en)),
            key=list(spec.key),
            tags=list(spec.tags),
            columns=columns,
            sql_view=self.catalog.sql_view(spec),
            releases=releases,
        )

    def _data_files(self, release: Release) -> list[FileInfo]:
        return [
            FileInfo(
                name=f["path"],
                bytes=f["bytes"],
                sha256=f["sha256"],
                rows=f["rows"],
                media_type=_media_type(f["path"]),
                url=self.file_url(release.dataset_id, release.version, f["path"]),
            )
            for f in release.files
        ]

    def _release_summary(self, release: Release) -> ReleaseSummary:
        return ReleaseSummary(**self._release_fields(release))

    def _release_fields(self, release: Release) -> dict[str, Any]:
        return {
            "version": release.version,
            "committed_at": release.record["committed_at"],
            "rows": release.rows,
            "bytes": sum(int(f["bytes"]) for f in release.files),
            "verdict": verdict_of(release),
            "files": self._data_files(release),
            "exports": self.exports(release),
            "url": self.release_url(release.dataset_id, release.version),
            "report_url": self.file_url(release.dataset_id, release.version, "validation/report.html"),
            "notes": self._notes(release),
        }

    def export_url(self, release: Release, fmt: str) -> str:
        """Where the whole release is downloaded in ``fmt`` (csv, xlsx, zip, provenance)."""
        from datashare.releases.exports import export_names

        filename = export_names(release.dataset_id, release.version)[fmt]
        return f"{self.release_url(release.dataset_id, release.version)}/exports/{filename}"

    def exports(self, release: Release) -> list[ExportInfo]:
        """The release as one file per format; an XLSX too large for Excel says why instead."""
        from datashare.releases.exports import FORMATS, MEDIA_TYPES, export_names, xlsx_refusal

        names = export_names(release.dataset_id, release.version)
        refusal = xlsx_refusal(release)
        return [
            ExportInfo(
                format=fmt,  # type: ignore[arg-type]
                name=names[fmt],
                media_type=MEDIA_TYPES[fmt],
                url=self.export_url(release, fmt),
                available=not (fmt == "xlsx" and refusal),
                note=refusal if fmt == "xlsx" else None,
            )
            for fmt in FORMATS
        ]

    def _notes(self, release: Release) -> LocalText:
        spec = self.catalog.specs().get(release.dataset_id)
        found = self.catalog.coverage(spec, release) if spec else cov.Coverage()
        return LocalText(**metadata.version_notes(release, found.start, found.end).model_dump())

    def release(self, dataset_id: str, version: int) -> ReleaseDetail:
        """One visible release of a readable dataset."""
        release = self._release(self.spec(dataset_id), version)
        ds = release.manifest["datashare"]
        summary = ds.get("validation") or {}
        quarantine = summary.get("quarantine") or {}
        validation = ValidationInfo(
            verdict=verdict_of(release),
            evaluated=summary.get("evaluated"),
            passed=summary.get("passed"),
            failed=summary.get("failed"),
            failed_rules=[str(r) for r in summary.get("failed_rules") or []],
            suite_name=summary.get("suite_name"),
            quarantined_rows=int(quarantine.get("rows") or 0) if isinstance(quarantine, dict) else 0,
        )
        previous = ds.get("previous") or {}
        return ReleaseDetail(
            **self._release_fields(release),
            dataset_id=release.dataset_id,
            manifest_sha256=release.record["manifest_sha256"],
            manifest_url=self.file_url(release.dataset_id, release.version, "datapackage.json"),
            validation=validation,
            data_interval=dict(ds.get("data_interval") or {}),
            source_cursor=ds.get("source_cursor"),
            previous_version=previous.get("version"),
            coverage=self.coverage_info(self.spec(dataset_id), release),
        )

    def file(self, dataset_id: str, version: int, name: str) -> ServedFile:
        """A file of a visible release, named exactly as in the release's own list; else :class:`NotFound`."""
        release = self._release(self.spec(dataset_id), version)
        digests = {f["path"]: f["sha256"] for f in release.files}
        allowed = [*digests, *EXTRA_FILES]
        match = next((a for a in allowed if a == name), None)  # the key is built from our list, not from input
        if match is None:
            raise NotFound()
        key = f"{release.prefix}/{match}"
        try:
            present = self.catalog.store.backend.exists(key)
        except ReleaseError:
            present = False
        if not present:
            raise NotFound()
        return ServedFile(
            dataset_id=release.dataset_id,
            version=release.version,
            name=match,
            key=key,
            media_type=_media_type(match),
            sha256=digests.get(match),
        )

    def latest_release(self, spec: DatasetSpec) -> Release | None:
        """The newest visible (and readable) release of a spec the caller may read."""
        for version in reversed(self.versions(spec.id)):
            release = self._readable(spec.id, version)
            if release is not None:
                return release
        return None


def open_only(spec: DatasetSpec) -> bool:
    """Whether a dataset is open data (the only kind DCAT lists)."""
    return spec.classification.sharing == Sharing.open
