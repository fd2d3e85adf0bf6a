"""Dataset specs: the unit of sharing, declared in YAML and loaded into typed models.

A spec says where a dataset comes from, what it must look like, how it is checked, who may read it and
how it is published. Loading is strict: an unknown field, a wrong type or an impossible combination
raises :class:`SpecError` naming the file, the field and what was expected.

Every spec is loaded on its own, so one broken file costs only its own dataset: the file is read only
if it is a regular file of at most :data:`MAX_SPEC_BYTES`, as UTF-8, through :mod:`datashare.spec.safeyaml`
(one document, no duplicate keys, no aliases, bounded nesting). Dataset ids reserve the names the SQL
share, the release store and Airflow derive from them (see :func:`_dataset_id`).
"""

from __future__ import annotations

import logging
import re
import unicodedata
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from datashare.exceptions import SpecError

log = logging.getLogger(__name__)

MAX_SPEC_BYTES = 256 * 1024
"""Largest spec file read (256 KiB; the largest real spec is 13 KB). Larger files are refused unread."""
IDENTIFIER = r"^[a-z][a-z0-9_]{0,47}$"
DATASET_ID = r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$"
"""Dataset ids: lowercase words of letters and digits joined by single underscores, at most 48 characters."""
DATASET_ID_MAX = 48
DATASET_ID_SHAPE = rf"^[a-z][a-z0-9_]{{0,{DATASET_ID_MAX - 1}}}$"
"""The characters and length of a dataset id, without the finer rules of :data:`DATASET_ID`: what the
catalog checks an id from a URL against (400 otherwise) and documents for clients. An id of this shape
that no dataset has (``a__b``, ``pg_x``) is simply unknown: 404."""
RESERVED_ID_PREFIXES = ("datashare_", "sqlite_", "pg_")
"""``datashare_*`` names the project's own DAGs and SQL roles; SQLite refuses tables named ``sqlite_*``;
PostgreSQL's catalogs are ``pg_*``."""
SHARE_SUFFIXES = ("__v<N>", "__v<N>__load", "__p<digest>")
"""What the SQL share appends to an id to name a dataset's tables (:mod:`datashare.share.sqlshare`)."""
COLUMN_NAME = r"^[a-z_][a-z0-9_]{0,62}$"
CONN_ID = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,249}$"
Dialect = Literal["sqlite", "mysql", "postgresql"]
DIALECTS: tuple[str, ...] = ("sqlite", "mysql", "postgresql")
"""Database dialects a source query may be written for (SQLAlchemy names; MariaDB is mysql)."""


_DATASET_ID_RE = re.compile(DATASET_ID)


def _dataset_id(value: str) -> str:
    """Check a dataset id beyond its character set, saying why a name is refused.

    The SQL share names a dataset's objects ``<id>`` (the view), ``<id>__v<N>`` and ``<id>__v<N>__load``
    (version tables), ``<id>__p<digest>`` (data-file parts), and locks them down by the pattern
    ``^<id>__...``; the release store keeps everything under ``<id>/``. With no ``__`` in an id and no
    trailing ``_``, the part of any such name before its first ``__`` is exactly the id that owns it,
    so no two datasets can ever own, match or drop the same object.
    """
    if "__" in value:
        raise ValueError(
            f"{value!r} contains '__': the SQL share names a dataset's tables <id>__v<N> and <id>__p<digest>, "
            "so an id with '__' could take another dataset's names; use single underscores"
        )
    if value.endswith("_"):
        raise ValueError(f"{value!r} ends with '_': ids are words joined by single underscores")
    reserved = next((p for p in RESERVED_ID_PREFIXES if value.startswith(p) or value == p.rstrip("_")), None)
    if reserved is not None:
        raise ValueError(f"{value!r} starts with {reserved.rstrip('_')!r}, which is reserved; choose another id")
    if not _DATASET_ID_RE.fullmatch(value):  # pragma: no cover - the checks above leave nothing else
        raise ValueError(f"{value!r} does not match {DATASET_ID}")
    return value


DatasetId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=DATASET_ID_MAX), AfterValidator(_dataset_id)]
"""A dataset id (see :func:`_dataset_id`)."""


def is_dataset_id(value: object) -> bool:
    """Whether ``value`` is a valid dataset id (safe to turn into a file name)."""
    if not isinstance(value, str) or len(value) > DATASET_ID_MAX or not _DATASET_ID_RE.fullmatch(value):
        return False
    return not any(value.startswith(p) or value == p.rstrip("_") for p in RESERVED_ID_PREFIXES)


class Strict(BaseModel):
    """Base model: unknown fields are errors; models are immutable once loaded; no NaN or infinity."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Text(Strict):
    """A text in Vietnamese first, then English."""

    vi: str = Field(min_length=1, description="Vietnamese text (stored in Unicode NFC).")
    en: str = Field(min_length=1, description="English text.")

    @field_validator("vi", "en")
    @classmethod
    def _nfc(cls, value: str) -> str:
        return unicodedata.normalize("NFC", value)


class ColumnType(StrEnum):
    """Logical column types of the schema contract (Frictionless Table Schema names)."""

    string = "string"
    integer = "integer"
    number = "number"
    boolean = "boolean"
    date = "date"
    datetime = "datetime"
    decimal = "decimal"
    """Exact decimal number with the column's ``precision`` and ``scale`` (PostgreSQL numeric, MariaDB DECIMAL)."""


DEFAULT_TIMEZONE = "Asia/Ho_Chi_Minh"
"""Zone of naive source timestamps unless a column says otherwise: the units store Vietnam time."""


class PersonalData(StrEnum):
    """How a column holding personal data (Decree 13/2023) is handled before publication."""

    none = "none"
    """Not personal data."""
    pseudonymise = "pseudonymise"
    """Replaced by a keyed HMAC token: same input, same token, so joins still work."""
    mask = "mask"
    """Partly hidden (e.g. initials only)."""
    drop = "drop"
    """Removed from the published data."""
    keep = "keep"
    """Personal data published as is: only allowed for restricted datasets."""


class Column(Strict):
    """One column of the schema contract."""

    name: str = Field(pattern=COLUMN_NAME, description="Column name in the published data (snake_case).")
    type: ColumnType = Field(description="Logical type; the published Parquet and SQL types follow from it.")
    nullable: bool = Field(default=True, description="Whether the column may hold nulls.")
    description: Text = Field(description="What the column holds, with its unit of measure.")
    personal_data: PersonalData = Field(
        default=PersonalData.none, description="Personal-data handling before publication."
    )
    unit: str | None = Field(default=None, description="Unit of measure, e.g. µg/Nm³.")
    source_type: ColumnType | None = Field(
        default=None,
        description="Type in the source when a transform converts it (e.g. dd/mm/yyyy text); default: type.",
    )
    computed: bool = Field(
        default=False,
        description="Added by a transform (a mapped code, a flag), not read from the source.",
    )
    precision: int | None = Field(
        default=None,
        ge=1,
        le=38,
        description="decimal only (required): total number of significant digits, 1–38 (numeric(precision, scale)).",
    )
    scale: int | None = Field(
        default=None,
        ge=0,
        le=38,
        description="decimal only (required): digits after the decimal point, 0–precision; a value with more is "
        "never rounded (the row is quarantined or the run fails).",
    )
    timezone: str | None = Field(
        default=None,
        description="datetime only: IANA time zone of the source's naive values, and whose wall time 'local' "
        f"publishes; values carrying an offset are converted to it (default {DEFAULT_TIMEZONE}, Vietnam time).",
    )
    publish_time: Literal["local", "utc"] | None = Field(
        default=None,
        description="datetime only: 'local' (default) publishes naive wall time in 'timezone'; 'utc' publishes "
        "instants in UTC (a timestamp with time zone), naive source values read as 'timezone'.",
    )
    source_problems: bool = Field(
        default=False,
        description="Computed text column only: also receives source values the contract's type cannot hold "
        "exactly (the value is left null and the suite's rule expecting this column to be null quarantines the "
        "row); without such a column those values fail the run naming dataset, column and value.",
    )

    @model_validator(mode="after")
    def _computed_has_no_source_type(self) -> Column:
        if self.computed and self.source_type is not None:
            raise ValueError("source_type: a computed column is not read from the source, so it has no source type")
        return self

    @model_validator(mode="after")
    def _type_details(self) -> Column:
        """Precision and scale belong to decimals, time zones to timestamps, source problems to a computed text."""
        types = {self.type, self.source_type}
        if ColumnType.decimal in types:
            if self.precision is None or self.scale is None:
                raise ValueError("precision: a decimal column declares 'precision' and 'scale' (e.g. 12 and 2)")
            if self.scale > self.precision:
                raise ValueError(f"scale: {self.scale} is more than the precision {self.precision}")
        elif self.precision is not None or self.scale is not None:
            raise ValueError("precision: 'precision' and 'scale' belong to decimal columns")
        if ColumnType.datetime in types:
            if self.timezone is not None:
                _check_timezone(self.timezone)
        elif self.timezone is not None or self.publish_time is not None:
            raise ValueError("timezone: 'timezone' and 'publish_time' belong to datetime columns")
        if self.source_problems and not (self.computed and self.type == ColumnType.string):
            raise ValueError("source_problems: only a computed string column collects source problems")
        return self

    @property
    def zone(self) -> str:
        """The column's time zone (datetime columns): declared, or the default."""
        return self.timezone or DEFAULT_TIMEZONE

    @property
    def utc(self) -> bool:
        """Whether a datetime column publishes UTC instants rather than local wall time."""
        return self.publish_time == "utc"


def _check_timezone(name: str) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"timezone: {name!r} is not an IANA time zone (e.g. Asia/Ho_Chi_Minh, UTC)") from None


class Keywords(Strict):
    """Words people search for, in each language (the catalog's search and the DCAT keywords)."""

    vi: list[Annotated[str, Field(min_length=1, max_length=80)]] = Field(
        default_factory=list, description="Vietnamese keywords (Unicode NFC), e.g. bụi mịn."
    )
    en: list[Annotated[str, Field(min_length=1, max_length=80)]] = Field(
        default_factory=list, description="English keywords, e.g. fine particulate matter."
    )


class Partitions(Strict):
    """Key ranges extracted in parallel by mapped tasks (Airflow dynamic task mapping)."""

    column: str = Field(pattern=COLUMN_NAME, description="Integer key column split into equal-width ranges.")
    count: int = Field(ge=2, le=64, description="Number of ranges, i.e. of mapped extract tasks.")


class Source(Strict):
    """Where the data is read from: a unit's database (a table or a query), or other datasets' releases."""

    kind: Literal["database", "derived"] = Field(
        default="database",
        description="database: read a unit's database; derived: build from other datasets' latest releases.",
    )
    conn_id: str | None = Field(
        default=None, pattern=CONN_ID, description="database: Airflow connection id of the unit's database."
    )
    inputs: list[DatasetId] = Field(
        default_factory=list,
        description="derived: dataset ids read; the DAG runs when any of their Assets updates.",
    )
    builder: str | None = Field(
        default=None, pattern=r"^[a-z][a-z0-9_]*$", description="derived: registered builder (transforms/registry.py)."
    )
    table: str | None = Field(
        default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_.]{0,127}$", description="Table to read whole."
    )
    query: str | None = Field(
        default=None, min_length=1, description="SELECT statement to read; wrapped, never concatenated."
    )
    dialect_queries: dict[Dialect, str] | None = Field(
        default=None,
        description="SELECT per database dialect where SQL differs (e.g. month formatting); 'query' is the default.",
    )
    unit: str = Field(
        pattern=IDENTIFIER, description="Code of the owning unit; names the Airflow pool that bounds its connections."
    )
    max_connections: int = Field(
        default=2, ge=1, le=32, description="Pool slots: at most this many tasks hit the unit's database at once."
    )
    batch_rows: int = Field(default=100_000, ge=1_000, le=5_000_000, description="Rows fetched per streamed batch.")
    partitions: Partitions | None = Field(
        default=None, description="Extract in key ranges over parallel tasks; null: one extract task."
    )

    @model_validator(mode="after")
    def _table_xor_query(self) -> Source:
        if self.kind == "derived":
            from transforms.registry import BUILDERS

            if self.conn_id or self.table or self.query or self.dialect_queries or self.partitions:
                raise ValueError(
                    "a derived source reads releases: no conn_id, table, query, dialect_queries or partitions"
                )
            if not self.inputs:
                raise ValueError("a derived source needs 'inputs' (dataset ids)")
            twice = sorted({i for i in self.inputs if self.inputs.count(i) > 1})
            if twice:
                raise ValueError(f"inputs: {twice} listed more than once")
            if self.builder not in BUILDERS:
                raise ValueError(f"builder: {self.builder!r} is not registered; registered: {sorted(BUILDERS)}")
            return self
        if self.conn_id is None:
            raise ValueError("conn_id: a database source needs the Airflow connection id")
        if self.inputs or self.builder:
            raise ValueError("'inputs' and 'builder' belong to derived sources (kind: derived)")
        has_query = self.query is not None or self.dialect_queries is not None
        if (self.table is None) == (not has_query):
            raise ValueError("give exactly one of 'table' or 'query' (with or without 'dialect_queries')")
        if self.dialect_queries is not None and self.query is None:
            missing = [d for d in DIALECTS if d not in self.dialect_queries]
            if missing:
                raise ValueError(f"dialect_queries: no query for dialect(s) {missing} and no default 'query'")
        named = {"query": self.query} | {f"dialect_queries.{d}": q for d, q in (self.dialect_queries or {}).items()}
        for name, sql in named.items():
            if sql is not None and not re.match(r"^\s*(select|with)\b", sql, re.IGNORECASE):
                raise ValueError(f"'{name}' must be a single SELECT (or WITH ... SELECT) statement")
            if sql is not None and ";" in sql.strip().rstrip(";"):
                raise ValueError(f"'{name}' must be a single statement (no ';' inside)")
        return self

    def query_for(self, dialect: str) -> str | None:
        """The query to run on a database of ``dialect`` (SQLAlchemy's name; MariaDB counts as mysql)."""
        name = "mysql" if dialect == "mariadb" else dialect
        return (self.dialect_queries or {}).get(name, self.query)  # type: ignore[call-overload]


class Mode(Strict):
    """Extraction mode."""

    kind: Literal["snapshot", "incremental"] = Field(
        description="snapshot: read everything each run; incremental: read rows past the stored cursor."
    )
    cursor: str | None = Field(
        default=None, pattern=COLUMN_NAME, description="Incremental only: monotonically growing column."
    )

    @model_validator(mode="after")
    def _cursor_for_incremental(self) -> Mode:
        if self.kind == "incremental" and self.cursor is None:
            raise ValueError("incremental mode needs 'cursor' (the column whose growth marks new rows)")
        if self.kind == "snapshot" and self.cursor is not None:
            raise ValueError("'cursor' is only meaningful in incremental mode")
        return self


class TransformStep(Strict):
    """A named transform from ``transforms/`` with its arguments."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="Registered transform name.")
    args: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments of the transform.")

    @field_validator("name")
    @classmethod
    def _registered(cls, value: str) -> str:
        from transforms.registry import TRANSFORMS  # a dict of import paths: no transform code is imported

        if value not in TRANSFORMS:
            raise ValueError(f"unknown transform {value!r}; registered: {sorted(TRANSFORMS)}")
        return value


class Quarantine(Strict):
    """Row-level rejects allowed before the run fails."""

    max_share: float = Field(
        default=0.0, ge=0.0, le=0.2, description="Largest share of rows (0–0.2) that may be quarantined."
    )


class Sharing(StrEnum):
    """Sharing class of the Law on Data 2024, Art. 13."""

    open = "open"
    shared = "shared"
    restricted = "restricted"


class Importance(StrEnum):
    """Importance class of the Law on Data 2024, Art. 13."""

    core = "core"
    important = "important"
    other = "other"


class Classification(Strict):
    """Classification by sharing and by importance."""

    sharing: Sharing = Field(description="open: anyone; shared: any government recipient; restricted: named ones.")
    importance: Importance = Field(description="core / important / other (Decision 20/2025/QĐ-TTg lists).")


class Retention(Strict):
    """How many published versions stay queryable in the SQL share."""

    sql_versions: int = Field(default=3, ge=1, le=100, description="Version tables kept in the SQL share.")


class Publish(Strict):
    """Publish targets."""

    parquet: bool = Field(default=True, description="Publish Parquet releases in the release store.")
    sql: bool = Field(default=True, description="Load each release into the SQL share.")


class Freshness(Strict):
    """How old the newest data may be."""

    max_age_hours: int = Field(default=48, ge=1, description="Alert when the newest data is older than this.")
    column: str | None = Field(
        default=None,
        pattern=COLUMN_NAME,
        description="Timestamp column (Vietnam time) whose newest value the suite checks against max_age_hours, "
        "through the parameter freshness_min.",
    )


class RowCountChange(Strict):
    """How much a snapshot may shrink or grow against the previous release (parameters min_rows, max_rows)."""

    max_drop: float = Field(default=0.2, ge=0, le=1, description="Largest share of rows that may disappear.")
    max_growth: float = Field(default=1.0, ge=0, description="Largest growth, as a share of the previous rows.")


class DatasetSpec(Strict):
    """A dataset: everything needed to extract, check and publish it."""

    id: DatasetId = Field(
        description="Dataset id: file names, DAG id, SQL view name. Lowercase letters and digits in words "
        "joined by single underscores (no '__', which the SQL share's table names use), at most 48 characters, "
        "not starting with datashare_, sqlite_ or pg_."
    )
    title: Text = Field(description="Short title.")
    description: Text = Field(description="What the data is, where it comes from, what it is for.")
    sector: str = Field(pattern=IDENTIFIER, description="Sector, e.g. environment_monitoring.")
    owner: str = Field(
        pattern=r"^[^\x00-\x1f\x7f]{1,100}$", description="Team that answers for the DAG (Airflow owner)."
    )
    source: Source
    mode: Mode
    key: Annotated[list[Annotated[str, Field(pattern=COLUMN_NAME)]], Field(min_length=1)] = Field(
        description="Columns that identify a row; unique in every release."
    )
    columns: Annotated[list[Column], Field(min_length=1)] = Field(description="Schema contract, in order.")
    transforms: list[TransformStep] = Field(default_factory=list, description="Transforms applied in order.")
    suite: str | None = Field(
        default=None, pattern=IDENTIFIER, description="Suite in expectations/<suite>.json; defaults to the id."
    )
    quarantine: Quarantine = Field(default_factory=Quarantine)
    classification: Classification
    recipients: list[Annotated[str, Field(pattern=IDENTIFIER)]] = Field(
        default_factory=list, description="Agency codes granted a restricted dataset."
    )
    publish: Publish = Field(default_factory=Publish)
    retention: Retention = Field(default_factory=Retention)
    freshness: Freshness = Field(default_factory=Freshness)
    row_count_change: RowCountChange | None = Field(
        default=None, description="Snapshot datasets: bound on the row count against the previous release."
    )
    schedule: str | None = Field(
        max_length=100, description="Cron expression (5 fields) or preset (@daily); null: only on demand."
    )
    licence: str = Field(min_length=1, description="Licence of the published data, e.g. CC-BY-4.0.")
    tags: list[Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,49}$")]] = Field(
        default_factory=list, max_length=20, description="Extra Airflow tags (lowercase, at most 50 characters)."
    )
    keywords: Keywords = Field(
        default_factory=Keywords, description="Search words in each language; shown in the catalog and DCAT."
    )

    @field_validator("schedule")
    @classmethod
    def _schedule_shape(cls, value: str | None) -> str | None:
        if value is None:
            return value
        presets = {"@hourly", "@daily", "@weekly", "@monthly", "@yearly", "@once"}
        if value.startswith("@"):
            if value not in presets:
                raise ValueError(f"unknown preset {value!r}; expected one of {sorted(presets)}")
        else:
            from croniter import croniter  # what Airflow checks a cron schedule with

            if len(value.split()) != 5 or not croniter.is_valid(value):
                raise ValueError(f"{value!r} is not a valid 5-field cron expression")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> DatasetSpec:
        names = [c.name for c in self.columns]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"columns: duplicate column names {dupes}")
        for k in self.key:
            if k not in names:
                raise ValueError(f"key: column {k!r} is not in 'columns'")
        by_name = {c.name: c for c in self.columns}
        for k in self.key:
            if by_name[k].nullable:
                raise ValueError(f"key: column {k!r} must be declared nullable: false")
        if self.mode.cursor is not None and self.mode.cursor not in names:
            raise ValueError(f"mode.cursor: column {self.mode.cursor!r} is not in 'columns'")
        if self.freshness.column is not None and (
            self.freshness.column not in names or by_name[self.freshness.column].type != ColumnType.datetime
        ):
            raise ValueError(f"freshness.column: {self.freshness.column!r} must be a datetime column of 'columns'")
        if self.row_count_change is not None and self.mode.kind != "snapshot":
            raise ValueError("row_count_change: only snapshot datasets validate the whole release each run")
        if self.source.kind == "derived":
            if self.schedule is not None:
                raise ValueError("schedule: a derived dataset runs on its inputs' Assets; set schedule: null")
            if self.id in self.source.inputs:
                raise ValueError("source.inputs: a dataset cannot be its own input")
        for col in self.columns:
            if col.computed and (col.name in self.key or col.name == self.mode.cursor):
                raise ValueError(
                    f"columns.{col.name}.computed: key and cursor columns are read from the source, not computed"
                )
        parts = self.source.partitions
        if parts is not None:
            if parts.column not in names or by_name[parts.column].type != ColumnType.integer:
                raise ValueError(f"source.partitions.column: {parts.column!r} must be an integer column of 'columns'")
            if self.key[0] != parts.column:
                raise ValueError(
                    f"source.partitions.column: {parts.column!r} must be the first key column, so ranges "
                    "concatenated in order give the same rows in the same order as one extraction"
                )
        c = self.classification
        if c.sharing == Sharing.open and c.importance != Importance.other:
            raise ValueError(
                f"classification: {c.importance.value} data is never open (Law on Data 2024); "
                "use sharing 'shared' or 'restricted'"
            )
        if c.sharing == Sharing.restricted and not self.recipients:
            raise ValueError("recipients: a restricted dataset must name at least one recipient agency")
        if c.sharing != Sharing.restricted and self.recipients:
            raise ValueError("recipients: only restricted datasets name recipients (others follow their class)")
        for col in self.columns:
            if col.personal_data in (PersonalData.pseudonymise, PersonalData.mask) and col.type != ColumnType.string:
                raise ValueError(
                    f"columns.{col.name}.type: a {col.personal_data.value}d column is published as text; "
                    "declare type: string (and source_type for the source's type)"
                )
            if col.personal_data == PersonalData.keep and c.sharing != Sharing.restricted:
                raise ValueError(
                    f"columns.{col.name}.personal_data: 'keep' publishes personal data unmasked; "
                    f"not allowed for the {c.sharing.value} dataset"
                )
        if not (self.publish.parquet or self.publish.sql):
            raise ValueError("publish: at least one target (parquet or sql) must be on")
        return self

    @model_validator(mode="after")
    def _type_contract(self) -> DatasetSpec:
        """One column at most collects source problems; a cursor is a type with an order."""
        collectors = [c.name for c in self.columns if c.source_problems]
        if len(collectors) > 1:
            raise ValueError(f"columns: only one column may declare source_problems (found {collectors})")
        fresh = next((c for c in self.columns if c.name == self.freshness.column), None)
        if fresh is not None and (fresh.utc or fresh.zone != DEFAULT_TIMEZONE):
            raise ValueError(
                f"freshness.column: {fresh.name!r} must publish local {DEFAULT_TIMEZONE} time: the suite compares it "
                "with the freshness bound in Vietnam time"
            )
        if self.mode.cursor is not None:
            column = next((c for c in self.columns if c.name == self.mode.cursor), None)
            if column is not None and (column.source_type or column.type) == ColumnType.boolean:
                raise ValueError(
                    f"mode.cursor: column {column.name!r} is boolean; a cursor grows: integer, decimal, number, "
                    "date, datetime or string"
                )
        return self

    @property
    def suite_name(self) -> str:
        """Name of the suite file in ``expectations/``, without extension."""
        return self.suite or self.id

    def source_view(self) -> DatasetSpec:
        """The spec as extraction sees it: without the computed columns, which transforms add later."""
        if not any(c.computed for c in self.columns):
            return self
        return self.model_copy(update={"columns": [c for c in self.columns if not c.computed]})

    @property
    def pool(self) -> str:
        """Airflow pool that bounds connections to the source unit (derived datasets use the default pool)."""
        return "default_pool" if self.source.kind == "derived" else f"unit_{self.source.unit}"


def _field_path(loc: tuple[Any, ...], data: Any) -> str:
    """Render a pydantic error location, using column names instead of list indexes where we can."""
    parts: list[str] = []
    node = data
    for item in loc:
        if isinstance(item, int) and isinstance(node, list):
            entry = node[item] if item < len(node) else None
            name = entry.get("name") if isinstance(entry, dict) else None
            parts.append(f"{name}" if name else f"[{item}]")
            node = entry
        else:
            parts.append(str(item))
            node = node.get(item) if isinstance(node, dict) else None
    return ".".join(parts) or "(top level)"


_NAMED_FIELD = re.compile(r"^([a-z_][a-z0-9_]*(?:\.[a-z0-9_]+)*): ")


def parse_spec(data: Any, *, source: str) -> DatasetSpec:
    """Validate a loaded YAML document; ``source`` names the file in errors."""
    if not isinstance(data, dict):
        raise SpecError(f"{source}: expected a mapping of spec fields at the top level, got {type(data).__name__}")
    try:
        return DatasetSpec.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            field = _field_path(tuple(err["loc"]), data)
            msg = err["msg"].removeprefix("Value error, ")
            named = _NAMED_FIELD.match(msg) if err["type"] == "value_error" else None
            if not err["loc"] and ": " in msg:  # whole-spec checks name their field first
                field, msg = msg.split(": ", 1)
            elif named:  # so do checks of a part (source, columns...): "inputs: ..." is source.inputs
                field, msg = f"{field}.{named.group(1)}", msg[named.end() :]
            if err["type"] == "extra_forbidden":
                msg = "unknown field (check the spelling; see docs/spec.md for the fields)"
            elif err["type"] == "missing":
                msg = "required field is missing"
            lines.append(f"  - {field}: {msg}")
        raise SpecError(f"{source}: invalid dataset spec\n" + "\n".join(lines)) from None


def load_spec(path: Path) -> DatasetSpec:
    """Load one spec file; its name must match the spec's id. Every failure is a :class:`SpecError`."""
    from datashare.spec.safeyaml import load_yaml, read_text

    text = read_text(path, max_bytes=MAX_SPEC_BYTES, error=SpecError, what="spec")
    data = load_yaml(text, source=str(path), error=SpecError)
    spec = parse_spec(data, source=str(path))
    if path.stem != spec.id:
        raise SpecError(f"{path}: id: {spec.id!r} must equal the file name {path.stem!r}")
    return spec


def spec_path(folder: Path, dataset_id: str) -> Path:
    """The spec file of ``dataset_id`` in ``folder``; an id that is not one (``../x``) is refused, not joined."""
    if not is_dataset_id(dataset_id):
        raise SpecError(f"{dataset_id!r} is not a dataset id (ids match {DATASET_ID})")
    return folder / f"{dataset_id}.yaml"


def load_specs(folder: Path) -> tuple[dict[str, DatasetSpec], dict[Path, SpecError]]:
    """Load every ``*.yaml`` spec in a folder, each on its own; bad files are returned as errors, not raised.

    Hidden files (an editor's ``.#x.yaml`` lock, say) are not specs. A ``*.yml`` file is reported: it is
    surely meant as a spec, and would otherwise be ignored without a word.
    """
    paths = []
    for path in sorted(folder.glob("*.y*ml")):
        if not path.name.startswith(".") and path.suffix in (".yaml", ".yml"):
            paths.append(path)
    return load_spec_files(paths)


def load_spec_files(paths: list[Path]) -> tuple[dict[str, DatasetSpec], dict[Path, SpecError]]:
    """Load the given spec files, each on its own: one failure never stops the others."""
    specs: dict[str, DatasetSpec] = {}
    errors: dict[Path, SpecError] = {}
    for path in paths:
        if path.suffix == ".yml":
            errors[path] = SpecError(f"{path}: spec files end in .yaml: rename it {path.with_suffix('.yaml').name}")
            continue
        try:
            spec = load_spec(path)
        except SpecError as exc:
            errors[path] = exc
            continue
        except Exception as exc:  # a bug of ours must still cost only this spec, never the others
            log.exception("Unexpected error loading spec %s", path)
            errors[path] = SpecError(f"{path}: cannot be loaded: {type(exc).__name__}: {exc}")
            continue
        specs[spec.id] = spec
    return specs, errors


def spec_problems(
    specs: dict[str, DatasetSpec],
    errors: dict[Path, SpecError],
    folder: Path,
    expectations_dir: Path | None = None,
) -> dict[Path, list[str]]:
    """Every problem of a set of specs, per file: the files' own errors, then what only the whole set shows.

    A derived dataset whose input has no spec file in ``folder`` would never run; one whose inputs lead
    back to itself would feed on its own releases; a spec without its suite in ``expectations_dir``
    (when given) fails every run at validation.
    """
    problems: dict[Path, list[str]] = {path: [str(err)] for path, err in errors.items()}
    derived = {i: s.source.inputs for i, s in specs.items() if s.source.kind == "derived"}
    for dataset_id, spec in specs.items():
        path = folder / f"{dataset_id}.yaml"
        found = problems.setdefault(path, [])
        if expectations_dir is not None and not (expectations_dir / f"{spec.suite_name}.json").is_file():
            found.append(f"{path}: suite: {expectations_dir / (spec.suite_name + '.json')} does not exist")
        for name in derived.get(dataset_id, []):
            if name not in specs and not (folder / f"{name}.yaml").is_file():
                found.append(f"{path}: source.inputs: no dataset {name!r} ({folder / (name + '.yaml')} does not exist)")
        cycle = _cycle_through(dataset_id, derived)
        if cycle:
            found.append(f"{path}: source.inputs: the inputs lead back to this dataset ({' -> '.join(cycle)})")
    return {path: found for path, found in sorted(problems.items()) if found}


def _cycle_through(start: str, derived: dict[str, list[str]]) -> list[str] | None:
    """A path of inputs from ``start`` back to ``start``, if there is one."""
    stack: list[tuple[str, list[str]]] = [(i, [start, i]) for i in derived.get(start, [])]
    seen: set[str] = set()
    while stack:
        node, path = stack.pop()
        if node == start:
            return path
        if node in seen:
            continue
        seen.add(node)
        stack.extend((i, [*path, i]) for i in derived.get(node, []))
    return None


def _shown(ann: Any) -> str:
    """A field's type as a reader of the docs wants it: no pydantic metadata, enums as their values."""
    import types
    import typing
    from enum import Enum

    origin, args = typing.get_origin(ann), typing.get_args(ann)
    if origin is Annotated:
        return _shown(args[0])
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_shown(a) for a in args)
    if origin is Literal:
        return " or ".join(f"'{a}'" for a in args)
    if origin in (list, dict):
        return f"{origin.__name__}[{', '.join(_shown(a) for a in args)}]"
    if ann is type(None):
        return "null"
    if isinstance(ann, type) and issubclass(ann, Enum):
        return " or ".join(f"'{m.value}'" for m in ann)
    if isinstance(ann, type):
        return ann.__name__
    return str(ann).replace("typing.", "")


def _loading_rules() -> list[str]:
    return [
        "## How a spec file is read",
        "",
        "Each spec is loaded on its own: a broken one is reported with its file and field (by `datashare specs`,",
        "in the DAG processor's log, and as the import error of `dags/datashare_spec_errors.py` in Airflow's UI)",
        "and costs only its own DAG; every other dataset's DAG loads. A spec file",
        "",
        f"- is a regular file named `<id>.yaml` (a `.yml` file is reported, hidden files are ignored) of at most "
        f"{MAX_SPEC_BYTES // 1024} KiB, checked before it is read;",
        "- is UTF-8, and holds exactly one YAML document whose top level is a mapping;",
        "- gives each key once per mapping, at any depth (`classification: shared` then `classification: open` "
        'is an error, not "last wins");',
        f"- uses no aliases (`*name`) or merge keys (`<<`), and nests at most {_max_depth()} levels;",
        "- gives no NaN or infinite number.",
        "",
        "The id equals the file name and is lowercase letters and digits in words joined by single underscores "
        f"(`{DATASET_ID}`), at most {DATASET_ID_MAX} characters, not starting with "
        + ", ".join(f"`{p}`" for p in RESERVED_ID_PREFIXES)
        + ". The SQL share names a dataset's objects `<id>` (view), "
        + ", ".join(f"`<id>{s}`" for s in SHARE_SUFFIXES)
        + " (tables) and the release store keeps it under `<id>/`: with no `__` in any id, the part of such a name "
        "before its first `__` is the id that owns it, so two datasets can never own the same object.",
        "",
        "A derived dataset (`source.kind: derived`) runs when *any* of its inputs publishes a release (Airflow "
        "Asset expression `a | b | c`), built from the newest release of every input; an input without a spec, "
        "or inputs that lead back to the dataset itself, are reported as problems.",
        "",
    ]


def _max_depth() -> int:
    from datashare.spec.safeyaml import MAX_DEPTH

    return MAX_DEPTH


def fields_markdown() -> str:
    """Reference of every spec field, generated from the models' descriptions (docs/spec.md)."""
    from enum import Enum

    lines = [
        "# Dataset spec reference",
        "",
        "Generated from `plugins/datashare/spec/__init__.py` by `datashare specs --doc`; a test keeps it in step.",
        "",
        *_loading_rules(),
    ]
    seen: set[type[BaseModel]] = set()

    def table(model: type[BaseModel], title: str) -> None:
        if model in seen:
            return
        seen.add(model)
        lines.extend(
            [
                f"## {title}",
                "",
                (model.__doc__ or "").strip(),
                "",
                "| field | type | default | meaning |",
                "|---|---|---|---|",
            ]
        )
        nested: list[tuple[type[BaseModel], str]] = []
        for name, info in model.model_fields.items():
            ann = info.annotation
            shown = _shown(ann)
            value = None if info.is_required() else info.get_default(call_default_factory=True)
            default = "required" if info.is_required() else repr(value.value if isinstance(value, Enum) else value)
            meaning = info.description or (getattr(ann, "__doc__", None) or "").strip().splitlines()[0]
            meaning = meaning.replace("|", "\\|")
            lines.append(f"| `{name}` | {shown} | {default.replace('|', 'or')} | {meaning} |")
            for arg in (ann, *getattr(ann, "__args__", ())):
                for candidate in (arg, *getattr(arg, "__args__", ())):
                    if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                        nested.append((candidate, f"{title} › {name}"))
        lines.append("")
        for sub, sub_title in nested:
            table(sub, sub_title)

    table(DatasetSpec, "DatasetSpec")
    return "\n".join(lines).rstrip() + "\n"
