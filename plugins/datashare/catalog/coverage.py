"""What a release covers, read from its own Parquet files: the first and last time, the years, the provinces.

Temporal coverage is the data's own time, not the run's: the minimum and maximum of the dataset's
time column, read from the Parquet footers' statistics (the column is read only when a file has no
statistics). The time column is the spec's freshness column, else the first date/datetime key
column, else the first date/datetime column, else a ``month`` text column in ``YYYY-MM`` form.

Spatial coverage is the distinct province codes of the columns that hold them: ``province_code``
holds codes of the table in force before 1 July 2025 (the project's convention, as in every spec's
column description), ``province_code_2025`` codes of Decision 19/2025/QĐ-TTg. Each code is named in
its own table and in the other one (the 2025 successor of an old province; the old provinces merged
into a new one), from the bundled reference ``transforms/data/admin_units.json`` (DOMAIN.md §6), so
a search for either name finds the data. Releases are immutable, so the catalog computes this once
per (dataset, version) and keeps it.
"""

from __future__ import annotations

import functools
import logging
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

from datashare.spec import ColumnType, DatasetSpec
from datashare.store import Release, ReleaseStore

log = logging.getLogger(__name__)

OLD_COLUMN = "province_code"
NEW_COLUMN = "province_code_2025"
MAX_PLACES = 200
"""Distinct codes kept per release; more means the column is not a province code (logged)."""
_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
_PREFIXES = ("thành phố ", "tỉnh ", "tp. ", "tp ")

Table = Literal["pre_2025", "2025"]


@dataclass(frozen=True)
class Province:
    """A province as one code table names it."""

    code: str
    name: str
    table: Table


@dataclass(frozen=True)
class Place:
    """A province the data covers, with its counterparts in the other code table."""

    code: str
    name: str
    table: Table
    """Which code table the data's code belongs to."""
    related: tuple[Province, ...] = ()
    """pre_2025: the 2025 successor; 2025: the old provinces merged into it."""
    confirmed: bool = True
    """Whether the old-to-new mapping is confirmed (most are not yet: DOMAIN.md §6)."""

    def names(self) -> list[str]:
        """Every name the place goes by: its own and its counterparts'."""
        return [self.name, *(p.name for p in self.related)]


@dataclass(frozen=True)
class Coverage:
    """What one release covers."""

    time_column: str | None = None
    start: str | None = None
    """First time in the data (ISO 8601, as stored: Vietnam local time for datetime columns)."""
    end: str | None = None
    places: tuple[Place, ...] = ()
    years: tuple[int, ...] = field(default=())


@dataclass(frozen=True)
class Provinces:
    """Province names of both code tables and the 2025 mapping between them."""

    old: dict[str, str]
    new: dict[str, str]
    successor: dict[str, tuple[str, bool]]
    predecessors: dict[str, tuple[str, ...]]

    def place(self, code: str, table: Table) -> Place | None:
        """The place of a code in a table, with its counterparts; None for a code the table never had."""
        if table == "pre_2025":
            if code not in self.old:
                return None
            new, confirmed = self.successor.get(code, (None, False))
            related = (Province(new, self.new[new], "2025"),) if new in self.new else ()
            return Place(code, self.old[code], "pre_2025", related, confirmed and bool(related))
        if code not in self.new:
            return None
        olds = tuple(Province(o, self.old[o], "pre_2025") for o in self.predecessors.get(code, ()) if o in self.old)
        confirmed = all(self.successor.get(o.code, ("", False))[1] for o in olds)
        return Place(code, self.new[code], "2025", olds, confirmed)


@functools.cache
def provinces() -> Provinces:
    """The bundled reference of ``transforms.admin_codes`` as province names and mappings (read once)."""
    from transforms.admin_codes import load_reference

    ref = load_reference()
    old: dict[str, str] = {}
    new: dict[str, str] = {}
    for code, units in ref.units.items():
        for unit in units:
            if unit.level != "province":
                continue
            (old if unit.valid_to is not None else new)[code] = unit.name
    successor = {o: (n, c) for (o, level), (n, c) in ref.successors.items() if level == "province"}
    predecessors: dict[str, list[str]] = {}
    for o, (n, _) in sorted(successor.items()):
        predecessors.setdefault(n, []).append(o)
    return Provinces(old, new, successor, {k: tuple(v) for k, v in predecessors.items()})


def short_name(name: str) -> str:
    """A province name without its ``Tỉnh`` / ``Thành phố`` prefix: ``Thành phố Hà Nội`` -> ``Hà Nội``."""
    lowered = name.casefold()
    for prefix in _PREFIXES:
        if lowered.startswith(prefix):
            return name[len(prefix) :]
    return name


def time_column(spec: DatasetSpec) -> str | None:
    """The column whose first and last values are the data's temporal coverage (see the module doc)."""
    timed = [c for c in spec.columns if c.type in (ColumnType.date, ColumnType.datetime)]
    if spec.freshness.column:
        return spec.freshness.column
    for key in spec.key:
        if any(c.name == key for c in timed):
            return key
    if timed:
        return timed[0].name
    month = next((c for c in spec.columns if c.name == "month" and c.type == ColumnType.string), None)
    return month.name if month else None


@contextmanager
def _local_files(store: ReleaseStore, release: Release) -> Iterator[list[Path]]:
    """The release's data files as local paths; a remote store's are copied to a temporary folder first."""
    backend = store.backend
    keys = [f"{release.prefix}/{f['path']}" for f in release.files]
    paths = [backend.local_path(k) for k in keys]
    if all(p is not None for p in paths):
        yield [p for p in paths if p is not None]
        return
    with tempfile.TemporaryDirectory(prefix="datashare-coverage-") as tmp:
        local = []
        for i, key in enumerate(keys):
            target = Path(tmp) / f"{i}.parquet"
            backend.download(key, target)
            local.append(target)
        yield local


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=None).isoformat() if value.tzinfo is None else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    text = str(value)
    return text if _MONTH.match(text) else None


def _year(value: str | None) -> int | None:
    return int(value[:4]) if value and value[:4].isdigit() else None


def _min_max(paths: list[Path], column: str) -> tuple[Any, Any]:
    """Smallest and largest value of a column: footer statistics, the column itself where they are missing."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    lows: list[Any] = []
    highs: list[Any] = []
    for path in paths:
        pf = pq.ParquetFile(path)
        if column not in pf.schema_arrow.names:
            continue
        index = pf.schema_arrow.names.index(column)
        meta = pf.metadata
        stats = [meta.row_group(g).column(index).statistics for g in range(meta.num_row_groups)]
        if stats and all(s is not None and s.has_min_max for s in stats):
            lows.extend(s.min for s in stats)
            highs.extend(s.max for s in stats)
        else:
            found = pc.min_max(pq.read_table(path, columns=[column])[column]).as_py()
            if found["min"] is not None:
                lows.append(found["min"])
                highs.append(found["max"])
    if not lows:
        return None, None
    return min(lows), max(highs)


def _codes(paths: list[Path], column: str) -> list[str]:
    """Distinct non-null values of a text column across the files."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    seen: set[str] = set()
    for path in paths:
        if column not in pq.read_schema(path).names:
            continue
        values = pc.unique(pq.read_table(path, columns=[column])[column]).to_pylist()
        seen.update(str(v) for v in values if v is not None)
    return sorted(seen)


def compute(store: ReleaseStore, spec: DatasetSpec, release: Release) -> Coverage:
    """The coverage of one release (see the module doc); a file that cannot be read is logged, not fatal."""
    import pyarrow as pa

    column = time_column(spec)
    names = {c.name for c in spec.columns}
    place_columns = [(c, t) for c, t in ((OLD_COLUMN, "pre_2025"), (NEW_COLUMN, "2025")) if c in names]
    if not release.files or (column is None and not place_columns):
        return Coverage(time_column=column)
    try:
        with _local_files(store, release) as paths:
            low, high = _min_max(paths, column) if column else (None, None)
            codes = {c: _codes(paths, c) for c, _ in place_columns}
    except (OSError, pa.ArrowException) as exc:
        log.error("Coverage of %s v%s could not be read: %s", release.dataset_id, release.version, exc)
        return Coverage(time_column=column)
    start, end = _iso(low), _iso(high)
    first, last = _year(start), _year(end)
    years = tuple(range(first, last + 1)) if first and last and first <= last else ()
    ref = provinces()
    places: list[Place] = []
    for col, table in place_columns:
        found = codes[col]
        if len(found) > MAX_PLACES:
            log.warning("%s.%s holds %d distinct codes: not read as provinces", spec.id, col, len(found))
            continue
        for code in found:
            place = ref.place(code, table)  # type: ignore[arg-type]
            if place is None:
                log.warning("%s v%s: %s %r is in no province table", spec.id, release.version, col, code)
                continue
            places.append(place)
    return Coverage(time_column=column, start=start, end=end, places=tuple(places), years=years)
