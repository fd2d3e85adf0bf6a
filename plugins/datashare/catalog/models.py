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


class ReleaseDetail(ReleaseSummary):
    """One release: files, checksums, manifest, validation summary."""

    dataset_id: str
    manifest_sha256: str = Field(description="SHA-256 of datapackage.json, sealed in the commit record.")
    manifest_url: str
    validation: ValidationInfo
    data_interval: dict[str, str | None] = Field(default_factory=dict, description="Airflow data interval.")
    source_cursor: str | None = Field(default=None, description="Incremental cursor reached by this release.")
    previous_version: int | None = Field(default=None, description="The release this one chains to.")


class DatasetSummary(Model):
    """A dataset as listed in the catalog."""

    id: str = Field(description="Dataset id: DAG id and SQL view name.")
    title: LocalText
    description: LocalText
    sector: str
    classification: ClassificationInfo
    latest_version: int | None = Field(default=None, description="Newest visible release.")
    latest_committed_at: str | None = Field(default=None, description="When it was released (UTC).")
    age_hours: float | None = Field(default=None, description="Hours since the newest release.")
    max_age_hours: int = Field(description="Freshness target of the spec.")
    fresh: bool | None = Field(default=None, description="Newest release younger than the target.")
    verdict: Verdict | None = Field(default=None, description="Validation verdict of the newest release.")
    url: str = Field(description="The dataset's page.")


class DatasetDetail(DatasetSummary):
    """A dataset with its schema and releases."""

    owner_unit: str
    licence: str
    key: list[str]
    tags: list[str]
    columns: list[ColumnInfo]
    sql_view: str | None = Field(description="<schema>.<id> in the SQL share, or null when not published over SQL.")
    releases: list[ReleaseSummary] = Field(description="Visible releases, newest first.")


class DatasetPage(Model):
    """A page of the dataset list."""

    items: list[DatasetSummary]
    total: int = Field(description="Datasets matching the query that the caller may read.")
    page: int
    per_page: int
    sectors: list[str] = Field(description="Sectors of the datasets the caller may read (for filters).")


class Problem(Model):
    """An error answer."""

    detail: str
