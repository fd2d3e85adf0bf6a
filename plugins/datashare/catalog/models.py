"""What the catalog shows of datasets and releases: typed models shared by the pages and the JSON API.

The API returns these models as they are, so ``/openapi.json`` documents every field; the pages
render the same objects. Nothing here is read from a request: the service fills them in after the
access check.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Verdict = Literal["passed", "failed", "not_run"]


class Model(BaseModel):
    """Base of the response models: immutable, unknown fields refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class LocalText(Model):
    """A text in Vietnamese and English."""

    vi: str = Field(description="Vietnamese (Unicode NFC).")
    en: str = Field(description="English.")


class ClassificationInfo(Model):
    """Classification by the Law on Data 2024."""

    sharing: Literal["open", "shared", "restricted"] = Field(description="Who may read the dataset.")
    importance: Literal["core", "important", "other"] = Field(description="Importance class.")


class Named(Model):
    """A code with its name in both languages."""

    code: str
    name: LocalText


class ContactInfo(Model):
    """Where to ask about a dataset: the owning unit's functional mailbox or web page (never a person)."""

    name: LocalText
    email: str | None = None
    url: str | None = None


class Concept(Model):
    """A concept of a controlled vocabulary (EU data themes, EU frequencies), with its IRI."""

    code: str
    iri: str
    name: LocalText


class LicenceInfo(Model):
    """A licence: its SPDX id, its name, its canonical URL (SPDX licences) and our terms page."""

    id: str = Field(description="SPDX id or LicenseRef-.")
    name: LocalText
    url: str | None = Field(default=None, description="Canonical URL of an SPDX licence.")
    terms_url: str = Field(description="The catalog's page with the terms in both languages.")


class Province(Model):
    """A province in one code table."""

    code: str
    name: str
    table: Literal["pre_2025", "2025"] = Field(description="Code table: before or from 1 July 2025.")


class PlaceInfo(Province):
    """A province the data covers, with its counterparts in the other code table."""

    related: list[Province] = Field(
        default_factory=list, description="pre_2025: the 2025 successor; 2025: the old provinces merged into it."
    )
    confirmed: bool = Field(description="Whether the old-to-new mapping is confirmed (DOMAIN.md §6).")


class CoverageInfo(Model):
    """What the data of a release covers, read from its own files."""

    time_column: str | None = Field(default=None, description="Column the time range is read from.")
    start: str | None = Field(default=None, description="First time in the data (ISO 8601, as stored).")
    end: str | None = Field(default=None, description="Last time in the data.")
    years: list[int] = Field(default_factory=list)
    places: list[PlaceInfo] = Field(default_factory=list, description="Provinces, by code and name.")


class Citation(Model):
    """How to cite the dataset (Decree 47/2020/NĐ-CP asks users to cite the source)."""

    text: LocalText
    bibtex: str


class KeywordsInfo(Model):
    """Search words in each language."""

    vi: list[str] = Field(default_factory=list)
    en: list[str] = Field(default_factory=list)


class FacetValue(Model):
    """One value of a facet and how many matching datasets have it."""

    value: str
    name: LocalText
    count: int


class Facets(Model):
    """Facet counts of a search; each facet is counted under the other facets' filters."""

    sector: list[FacetValue] = Field(default_factory=list)
    classification: list[FacetValue] = Field(default_factory=list)
    province: list[FacetValue] = Field(default_factory=list, description="Provinces of 1 July 2025.")
    year: list[FacetValue] = Field(default_factory=list)


class ColumnInfo(Model):
    """One column of the published schema."""

    name: str = Field(description="Column name in Parquet files and the SQL view.")
    type: str = Field(description="Logical type (Frictionless Table Schema name).")
    nullable: bool = Field(description="Whether the column may hold nulls.")
    description: LocalText
    unit: str | None = Field(default=None, description="Unit of measure.")
    personal_data: Literal["none", "pseudonymise", "mask", "drop", "keep"] = Field(
        description="How personal data in this column is handled before publication."
    )


class FileInfo(Model):
    """A file of a release that can be downloaded."""

    name: str = Field(description="Path inside the release, e.g. data/part-00000.parquet.")
    bytes: int | None = Field(default=None, description="Size in bytes (data files).")
    sha256: str | None = Field(default=None, description="Hex SHA-256 of the file (data files).")
    rows: int | None = Field(default=None, description="Rows in the file (data files).")
    media_type: str = Field(description="IANA media type.")
    url: str = Field(description="Download URL; the same access rule applies.")


class ExportInfo(Model):
    """The whole release as one file in a format people open, made on first request and cached."""

    format: Literal["csv", "xlsx", "zip", "provenance"] = Field(
        description="csv: UTF-8 with BOM; xlsx: typed cells and a provenance sheet; zip: Parquet files, "
        "datapackage.json and the validation report; provenance: the CSV's provenance note."
    )
    name: str = Field(description="File name, e.g. air_quality_hourly-v2.csv.")
    media_type: str = Field(description="IANA media type.")
    url: str = Field(description="Download URL; the same access rule applies; HEAD and Range supported.")
    available: bool = Field(description="False when the format cannot hold the release (XLSX over Excel's rows).")
    note: str | None = Field(default=None, description="Why the format is not available (Vietnamese / English).")


class ValidationInfo(Model):
    """The validation summary sealed in the release's manifest."""

    verdict: Verdict
    evaluated: int | None = Field(default=None, description="Rules evaluated.")
    passed: int | None = Field(default=None, description="Rules passed.")
    failed: int | None = Field(default=None, description="Rules failed.")
    failed_rules: list[str] = Field(default_factory=list, description="Ids of the failed rules.")
    suite_name: str | None = Field(default=None, description="Great Expectations suite.")
    quarantined_rows: int = Field(default=0, description="Rows set aside by row-level rules.")


class ReleaseSummary(Model):
    """A release as listed on a dataset page."""

    version: int = Field(description="Release number, from 1.")
    committed_at: str = Field(description="When the release became visible (UTC, ISO 8601).")
    rows: int
    bytes: int = Field(description="Total size of the data files.")
    verdict: Verdict
    files: list[FileInfo] = Field(description="Data files with their checksums.")
    exports: list[ExportInfo] = Field(default_factory=list, description="The release as one CSV, XLSX or zip file.")
    url: str = Field(description="The release's page.")
    report_url: str = Field(description="The validation report (HTML).")
    notes: LocalText = Field(description="Version notes: what this release is, in words.")


class ReleaseDetail(ReleaseSummary):
    """One release: files, checksums, manifest, validation summary."""

    dataset_id: str
    manifest_sha256: str = Field(description="SHA-256 of datapackage.json, sealed in the commit record.")
    manifest_url: str
    validation: ValidationInfo
    data_interval: dict[str, str | None] = Field(default_factory=dict, description="Airflow data interval.")
    source_cursor: str | None = Field(default=None, description="Incremental cursor reached by this release.")
    previous_version: int | None = Field(default=None, description="The release this one chains to.")
    coverage: CoverageInfo


class DatasetSummary(Model):
    """A dataset as listed in the catalog."""

    id: str = Field(description="Dataset id: DAG id and SQL view name.")
    title: LocalText
    description: LocalText
    sector: str
    sector_name: LocalText
    classification: ClassificationInfo
    latest_version: int | None = Field(default=None, description="Newest visible release.")
    latest_committed_at: str | None = Field(default=None, description="When it was released (UTC).")
    age_hours: float | None = Field(default=None, description="Hours since the newest release.")
    max_age_hours: int = Field(description="Freshness target of the spec.")
    fresh: bool | None = Field(default=None, description="Newest release younger than the target.")
    verdict: Verdict | None = Field(default=None, description="Validation verdict of the newest release.")
    url: str = Field(description="The dataset's page.")
    score: float | None = Field(default=None, description="Search relevance (higher first); null without a query.")


class DatasetDetail(DatasetSummary):
    """A dataset with its schema and releases."""

    owner_unit: str
    owner_unit_name: LocalText
    contact: ContactInfo
    licence: str
    licence_info: LicenceInfo
    themes: list[Concept] = Field(description="EU data themes of the dataset's sector.")
    frequency: Concept = Field(description="Update frequency (EU frequency vocabulary), from the schedule.")
    coverage: CoverageInfo = Field(description="What the newest release covers.")
    citation: Citation
    keywords: KeywordsInfo
    key: list[str]
    tags: list[str]
    columns: list[ColumnInfo]
    sql_view: str | None = Field(
        description="The view to query in the SQL share in use (<schema>.<id> on PostgreSQL, <id> in the embedded "
        "SQLite share), or null when not published over SQL."
    )
    releases: list[ReleaseSummary] = Field(description="Visible releases, newest first.")


class DatasetPage(Model):
    """A page of the dataset list."""

    items: list[DatasetSummary]
    total: int = Field(description="Datasets matching the query that the caller may read.")
    page: int
    per_page: int
    sectors: list[str] = Field(description="Sectors of the datasets the caller may read (for filters).")
    sector_names: list[Named] = Field(default_factory=list, description="The same sectors with their names.")
    facets: Facets = Field(default_factory=Facets)


class Problem(Model):
    """An error answer."""

    detail: str
