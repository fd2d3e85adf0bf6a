"""Writers of the downloads people open: CSV, XLSX and a zip, streamed from a release's Parquet files.

Each reads the Parquet files batch by batch (:data:`BATCH_ROWS` rows), so memory stays bounded
whatever the release size, and writes the same bytes for the same release (no clock in the output),
so two catalog processes generating one file at once produce identical copies.

What each format does with values that spreadsheets would misread, and says so in the provenance note
(:mod:`datashare.releases.exports`) rather than changing anything silently:

- **CSV** (UTF-8 with a BOM, comma, CRLF, header row of column names): null is an empty field, an
  empty string is ``""``; dates ``YYYY-MM-DD``, timestamps ``YYYY-MM-DDTHH:MM:SS`` as stored (with
  ``.ffffff`` on the whole column when any value has a fraction of a second; the column description
  says which time zone, ``Z`` when the data carries UTC); booleans
  ``true``/``false``. A text value that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
  return would run as a formula when Excel opens the file (CSV injection), and no quoting prevents it:
  such values get a leading apostrophe ``'`` (OWASP's advice), counted per column in the note.
  Numbers are written as numbers: ``-3.5`` is data, not a formula.
- **XLSX**: typed cells (numbers, dates, date-times, booleans, text written as text, so nothing is ever
  evaluated as a formula and the values are exact); Excel's own limits are reported, not hidden: a text
  over 32,767 characters is cut by Excel's format, an integer beyond ±2^53 (Excel keeps 15 digits) and
  a date before 1900 are written as text, NaN/infinity as Excel errors.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

BATCH_ROWS = 65_536
BOM = b"\xef\xbb\xbf"
FORMULA_START = r"^[=+\-@\t\r]"
XLSX_MAX_TEXT = 32_767
XLSX_MAX_EXACT_INT = 2**53
WIDTH_SAMPLE_ROWS = 2_000
MIN_WIDTH, MAX_WIDTH = 8, 60


@dataclass
class WriteStats:
    """What a writer wrote and every value it had to handle specially, per column."""

    rows: int = 0
    formula_escaped: dict[str, int] = field(default_factory=dict)
    """CSV: text values given a leading apostrophe."""
    truncated: dict[str, int] = field(default_factory=dict)
    """XLSX: texts longer than Excel's 32,767 characters."""
    as_text: dict[str, int] = field(default_factory=dict)
    """XLSX: integers beyond ±2^53 and dates before 1900, written as text to stay exact."""
    errors: dict[str, int] = field(default_factory=dict)
    """XLSX: NaN and infinities, written as Excel errors (#NUM!, #DIV/0!)."""

    def add(self, counter: dict[str, int], column: str, n: int = 1) -> None:
        if n:
            counter[column] = counter.get(column, 0) + n


def release_schema(paths: Sequence[Path]) -> pa.Schema:
    """The Arrow schema of a release (its first file; every file of a release has the same schema)."""
    return pq.read_schema(paths[0])


def batches(paths: Sequence[Path], batch_rows: int = BATCH_ROWS) -> Iterator[pa.RecordBatch]:
    """Every row of the files in order, as record batches of at most ``batch_rows`` rows."""
    for path in paths:
        parquet = pq.ParquetFile(path)
        try:
            yield from parquet.iter_batches(batch_size=batch_rows)
        finally:
            parquet.close()


# -- CSV ----------------------------------------------------------------------------------------------


def fractional_timestamps(paths: Sequence[Path], schema: pa.Schema) -> set[str]:
    """Timestamp columns holding a value with a fraction of a second (read column by column, batch by batch)."""
    names = [f.name for f in schema if pa.types.is_timestamp(f.type)]
    found: set[str] = set()
    for path in paths:
        todo = [n for n in names if n not in found]
        if not todo:
            break
        parquet = pq.ParquetFile(path)
        try:
            for batch in parquet.iter_batches(batch_size=BATCH_ROWS * 4, columns=todo):
                for name in todo:
                    column = batch.column(name)
                    if pc.any(pc.not_equal(column, pc.floor_temporal(column, unit="second"))).as_py():
                        found.add(name)
        finally:
            parquet.close()
    return found


def _csv_column(column: pa.Array, name: str, stats: WriteStats, fractional: set[str]) -> pa.Array:
    """A column as the CSV shows it: ISO text for times, escaped text for formula-like strings.

    A timestamp column shows fractions of a second on every value when any value has one, and on
    none otherwise, so that one format parses the whole column.
    """
    kind = column.type
    if pa.types.is_timestamp(kind):  # Arrow's cast to text is four times faster than strftime
        unit = kind.unit if name in fractional else "s"
        target = pa.timestamp(unit, "UTC") if kind.tz is not None else pa.timestamp(unit)  # "...Z" when aware
        text = pc.cast(pc.cast(column, target), pa.string())
        return pc.replace_substring(text, " ", "T", max_replacements=1)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        risky = pc.fill_null(pc.match_substring_regex(column, FORMULA_START), False)
        count = pc.sum(risky).as_py() or 0
        if not count:
            return column
        stats.add(stats.formula_escaped, name, count)
        return pc.if_else(risky, pc.binary_join_element_wise("'", column, ""), column)
    return column


def write_csv(paths: Sequence[Path], target: Path) -> WriteStats:
    """Write the release as one CSV file (see the module docstring for the format)."""
    import pyarrow.csv as pcsv

    schema = release_schema(paths)
    fractional = fractional_timestamps(paths, schema)
    stats = WriteStats()
    out_schema: pa.Schema | None = None
    options = pcsv.WriteOptions(include_header=True, quoting_style="needed", quoting_header="none", eol="\r\n")
    with target.open("wb") as sink:
        sink.write(BOM)
        writer: Any = None
        try:
            for batch in batches(paths):
                columns = [_csv_column(batch.column(i), f.name, stats, fractional) for i, f in enumerate(schema)]
                if out_schema is None:
                    out_schema = pa.schema([pa.field(f.name, c.type) for f, c in zip(schema, columns, strict=True)])
                    writer = pcsv.CSVWriter(sink, out_schema, write_options=options)
                writer.write_batch(pa.RecordBatch.from_arrays(columns, schema=out_schema))
                stats.rows += batch.num_rows
            if writer is None:  # no rows: the header alone
                sink.write((",".join(schema.names) + "\r\n").encode("utf-8"))
        finally:
            if writer is not None:
                writer.close()
    return stats


# -- XLSX ---------------------------------------------------------------------------------------------


def _width(column: pa.Array, header: str) -> int:
    kind = column.type
    if pa.types.is_date(kind):
        longest = 10
    elif pa.types.is_timestamp(kind):
        longest = 19
    elif pa.types.is_boolean(kind):
        longest = 5
    else:
        sample = column.slice(0, WIDTH_SAMPLE_ROWS)
        lengths = pc.utf8_length(pc.cast(sample, pa.string())) if len(sample) else None
        longest = int(pc.max(lengths).as_py() or 0) if lengths is not None else 0
    return max(MIN_WIDTH, min(MAX_WIDTH, max(longest, len(header)) + 2))


CellWriter = Callable[[int, int, Any], None]
"""Writes one non-null value at (row, column)."""


def _cell_writers(schema: pa.Schema, sheet: Any, formats: dict[str, Any], stats: WriteStats) -> list[CellWriter]:
    """One function per column writing a non-null value into a cell with the right type."""
    writers: list[CellWriter] = []
    for f in schema:
        name, kind = f.name, f.type

        if pa.types.is_boolean(kind):

            def write(row: int, col: int, value: Any, name: str = name) -> None:
                sheet.write_boolean(row, col, value)

        elif pa.types.is_integer(kind):

            def write(row: int, col: int, value: Any, name: str = name) -> None:
                if -XLSX_MAX_EXACT_INT <= value <= XLSX_MAX_EXACT_INT:
                    sheet.write_number(row, col, value, formats["integer"])
                else:
                    stats.add(stats.as_text, name)
                    sheet.write_string(row, col, str(value))

        elif pa.types.is_floating(kind) or pa.types.is_decimal(kind):

            def write(row: int, col: int, value: Any, name: str = name) -> None:
                value = float(value)
                if math.isnan(value) or math.isinf(value):
                    stats.add(stats.errors, name)
                sheet.write_number(row, col, value)

        elif pa.types.is_date(kind):

            def write(row: int, col: int, value: Any, name: str = name) -> None:
                if value.year < 1900:
                    stats.add(stats.as_text, name)
                    sheet.write_string(row, col, value.isoformat())
                else:
                    sheet.write_datetime(row, col, value, formats["date"])

        elif pa.types.is_timestamp(kind):

            def write(row: int, col: int, value: Any, name: str = name) -> None:
                if value.tzinfo is not None:
                    value = value.astimezone(dt.UTC).replace(tzinfo=None)
                if value.year < 1900:
                    stats.add(stats.as_text, name)
                    sheet.write_string(row, col, value.isoformat())
                else:
                    sheet.write_datetime(row, col, value, formats["datetime"])

        else:

            def write(row: int, col: int, value: Any, name: str = name) -> None:
                if sheet.write_string(row, col, str(value)) == -2:
                    stats.add(stats.truncated, name)

        writers.append(write)
    return writers


def write_xlsx(
    paths: Sequence[Path],
    target: Path,
    *,
    sheet_name: str,
    created: dt.datetime,
    add_notes: Callable[[Any, Any, WriteStats], None],
) -> WriteStats:
    """Write the release as one XLSX sheet in xlsxwriter's constant-memory mode, then the notes sheet.

    ``add_notes(workbook, sheet, stats)`` fills the second sheet once the data is written (the
    provenance note, which reports what ``stats`` counted). Rows over Excel's limit are the caller's
    to refuse before calling.
    """
    import xlsxwriter

    schema = release_schema(paths)
    stats = WriteStats()
    workbook = xlsxwriter.Workbook(
        str(target),
        {"constant_memory": True, "nan_inf_to_errors": True, "strings_to_formulas": False, "strings_to_urls": False},
    )
    workbook.set_properties({"created": created})
    formats = {
        "header": workbook.add_format({"bold": True, "bottom": 1, "bg_color": "#F2F2F2"}),
        "date": workbook.add_format({"num_format": "yyyy-mm-dd"}),
        "datetime": workbook.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"}),
        "integer": workbook.add_format({"num_format": "0"}),
    }
    sheet = workbook.add_worksheet(sheet_name)
    notes = workbook.add_worksheet(NOTES_SHEET)
    writers = _cell_writers(schema, sheet, formats, stats)
    row = 0
    for batch in batches(paths):
        if row == 0:  # widths must be set before the first row in constant-memory mode
            for col, f in enumerate(schema):
                sheet.set_column(col, col, _width(batch.column(col), f.name))
            for col, name in enumerate(schema.names):
                sheet.write_string(0, col, name, formats["header"])
            row = 1
        columns = [batch.column(i).to_pylist() for i in range(batch.num_columns)]
        for values in zip(*columns, strict=True):
            for col, value in enumerate(values):
                if value is not None:
                    writers[col](row, col, value)
            row += 1
        stats.rows += batch.num_rows
    if row == 0:
        for col, name in enumerate(schema.names):
            sheet.set_column(col, col, max(MIN_WIDTH, len(name) + 2))
            sheet.write_string(0, col, name, formats["header"])
    sheet.freeze_panes(1, 0)
    sheet.autofilter(0, 0, max(stats.rows, 1), len(schema) - 1)
    add_notes(workbook, notes, stats)
    workbook.close()
    return stats


NOTES_SHEET = "Nguồn gốc - Provenance"


# -- zip ----------------------------------------------------------------------------------------------

_ZIP_STORED_SUFFIXES = (".parquet", ".zip", ".xlsx")


def write_zip(members: Sequence[tuple[str, Path]], target: Path, *, when: dt.datetime) -> None:
    """A zip of ``(name in the archive, local file)`` pairs, streamed file by file, with fixed times.

    Parquet is already compressed: it is stored, the rest deflated. Zip64 applies past 4 GiB.
    """
    stamp = (max(when.year, 1980), when.month, when.day, when.hour, when.minute, when.second)
    with zipfile.ZipFile(target, "w", allowZip64=True) as archive:
        for name, path in members:
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.external_attr = 0o644 << 16
            stored = name.endswith(_ZIP_STORED_SUFFIXES)
            info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
            with path.open("rb") as src, archive.open(info, "w", force_zip64=path.stat().st_size > 2**31) as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)


def safe_sheet_text(text: str) -> str:
    """Text for a notes cell: control characters (other than tab and newline) removed."""
    return re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f]", "", text)
