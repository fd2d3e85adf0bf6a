"""Per-file statistics from Parquet footers, and the Delta Sharing predicate hints judged against them.

A Delta Sharing client may send ``predicateHints`` (SQL comparisons such as ``station_code = 'HN01'``)
and ``jsonPredicateHints`` (the protocol's JSON tree). Both are hints: the server may return more files
than match, never fewer, and the client filters rows itself. So a file is left out only when its
footer statistics *prove* that no row can match; anything not understood (an unknown column, a
literal of another type, missing statistics, an operator we do not parse) keeps the file.

Footers are read once per file content (by SHA-256) and kept in memory: releases never change.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import math
import re
import threading
import urllib.request
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datashare.store import RangedReader

log = logging.getLogger(__name__)

STRING_STATS_MAX = 32
"""Delta truncates string statistics; we leave out longer ones rather than publish a wrong bound."""
_CACHE_MAX = 4096


@dataclass(frozen=True)
class ColumnStats:
    """What a footer says about one column of a file: bounds over non-null values and the null count."""

    min: Any
    max: Any
    nulls: int | None


@dataclass(frozen=True)
class FileStats:
    """A file's row count and per-column statistics (None where the footer cannot tell)."""

    rows: int
    columns: dict[str, ColumnStats | None]

    def to_delta(self) -> str:
        """The protocol's per-file statistics JSON (numRecords, minValues, maxValues, nullCount)."""
        mins: dict[str, Any] = {}
        maxs: dict[str, Any] = {}
        nulls: dict[str, int] = {}
        for name, stats in self.columns.items():
            if stats is None:
                continue
            if stats.nulls is not None:
                nulls[name] = stats.nulls
            low, high = _json_value(stats.min), _json_value(stats.max)
            if low is not None and high is not None:
                mins[name], maxs[name] = low, high
        return json.dumps(
            {"numRecords": self.rows, "minValues": mins, "maxValues": maxs, "nullCount": nulls},
            ensure_ascii=False,
            separators=(",", ":"),
        )


def _json_value(value: Any) -> Any:
    """A statistics bound as Delta writes it; None to leave it out (timestamps without zone, long strings, NaN)."""
    if isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, str):
        return value if len(value) <= STRING_STATS_MAX else None
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value.isoformat()
    return None  # naive timestamps: a bound written without its zone would mislead a reader


def footer_stats(source: Any, rows: int) -> FileStats:
    """Statistics of a Parquet file (a path or a seekable file object) from its footer alone."""
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(source).metadata
    schema = meta.schema.to_arrow_schema()
    columns: dict[str, ColumnStats | None] = {}
    for index, name in enumerate(schema.names):
        low = high = None
        nulls: int | None = 0
        known = True
        for group in range(meta.num_row_groups):
            chunk = meta.row_group(group).column(index)
            stats = chunk.statistics
            if stats is None:
                known, nulls = False, None
                break
            if nulls is not None:
                nulls = nulls + stats.null_count if stats.has_null_count else None
            if stats.null_count == chunk.num_values and not stats.has_min_max:
                continue  # only nulls
            if not stats.has_min_max:
                known = False
                continue
            try:
                low = stats.min if low is None or stats.min < low else low
                high = stats.max if high is None or stats.max > high else high
            except TypeError:
                known = False
        columns[name] = ColumnStats(low, high, nulls) if known else ColumnStats(None, None, nulls)
    return FileStats(rows=rows if rows >= 0 else meta.num_rows, columns=columns)


class _RangeFile(RangedReader):
    """A read-only, seekable view of a URL through HTTP ranges (for reading a footer on object storage)."""

    def __init__(self, url: str, size: int) -> None:
        super().__init__(size)
        self.url = url

    def read_range(self, start: int, end: int) -> bytes:
        request = urllib.request.Request(self.url, headers={"Range": f"bytes={start}-{end - 1}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            data: bytes = response.read()
        if response.status == 200:  # the server ignored the range: take our slice of the whole
            data = data[start:end]
        return data


class StatsCache:
    """Footer statistics by file digest, shared by the requests of one catalog (files never change)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: OrderedDict[str, FileStats] = OrderedDict()

    def get(
        self, sha256: str, rows: int, local: Path | None, url: Callable[[], str | None], size: int
    ) -> FileStats | None:
        """Statistics of a file, read from ``local`` or through HTTP ranges on ``url()``; None if unreadable."""
        with self._lock:
            found = self._items.get(sha256)
        if found is not None:
            return found
        try:
            if local is not None and local.is_file():
                stats = footer_stats(local, rows)
            else:
                address = url()
                if address is None:
                    return None
                import pyarrow as pa

                stats = footer_stats(pa.PythonFile(io.BufferedReader(_RangeFile(address, size), 1 << 16)), rows)
        except Exception as exc:  # best effort by the protocol: no statistics is a valid answer
            log.warning("No footer statistics for file %s: %s", sha256[:12], exc)
            return None
        with self._lock:
            self._items[sha256] = stats
            while len(self._items) > _CACHE_MAX:
                self._items.popitem(last=False)
        return stats


# -- judging predicates against statistics ----------------------------------------------------------
#
# Each judge answers two questions about a file: may some row make the predicate true? may some row
# make it false? Rows where it is NULL count as neither, as in SQL. "not" swaps the answers; a file
# is skipped only when no row may make the whole conjunction true.


@dataclass(frozen=True)
class Verdict:
    may_true: bool
    may_false: bool


UNKNOWN = Verdict(True, True)
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: a == b,
    "<>": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}
_FLIP = {"=": "=", "<>": "<>", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_JSON_OPS = {"equal": "=", "lessThan": "<", "lessThanOrEqual": "<=", "greaterThan": ">", "greaterThanOrEqual": ">="}


def _coerce(value: Any, like: Any) -> Any:
    """A literal in the type of a statistics bound; ``ValueError`` when it cannot be."""
    if isinstance(like, bool):
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("true", "false"):
            return str(value).lower() == "true"
        raise ValueError(value)
    if isinstance(like, int):
        return int(value)
    if isinstance(like, float):
        return float(value)
    if isinstance(like, dt.datetime):
        return value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
    if isinstance(like, dt.date):
        return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))
    if isinstance(like, str):
        return str(value)
    raise ValueError(value)


def _compare(stats: ColumnStats | None, rows: int, op: str, literal: Any) -> Verdict:
    """May ``column <op> literal`` be true / false for some non-null row of the file?"""
    if stats is None or stats.min is None or stats.max is None:
        if stats is not None and stats.nulls is not None and stats.nulls == rows:
            return Verdict(False, False)  # only nulls: the comparison is never true nor false
        return UNKNOWN
    try:
        value = _coerce(literal, stats.min)
        lo, hi = stats.min, stats.max
        if op == "=":
            return Verdict(lo <= value <= hi, not (lo == hi == value))
        if op == "<>":
            return Verdict(not (lo == hi == value), lo <= value <= hi)
        if op == "<":
            return Verdict(lo < value, hi >= value)
        if op == "<=":
            return Verdict(lo <= value, hi > value)
        if op == ">":
            return Verdict(hi > value, lo <= value)
        if op == ">=":
            return Verdict(hi >= value, lo < value)
    except (ValueError, TypeError, OverflowError):
        return UNKNOWN
    return UNKNOWN


def _is_null(stats: ColumnStats | None, rows: int) -> Verdict:
    if stats is None or stats.nulls is None:
        return UNKNOWN
    return Verdict(stats.nulls > 0, stats.nulls < rows)


_SQL = re.compile(
    r"""^\s*(?:
        (?P<col>[A-Za-z_][A-Za-z0-9_]*)\s*(?P<op><>|<=|>=|=|<|>)\s*(?P<lit>'(?:[^']|'')*'|-?\d+(?:\.\d+)?)
      | (?P<lit2>'(?:[^']|'')*'|-?\d+(?:\.\d+)?)\s*(?P<op2><>|<=|>=|=|<|>)\s*(?P<col2>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<col3>[A-Za-z_][A-Za-z0-9_]*)\s+IS\s+(?P<not>NOT\s+)?NULL
    )\s*$""",
    re.IGNORECASE | re.VERBOSE,
)


def _literal(text: str) -> Any:
    if text.startswith("'"):
        return text[1:-1].replace("''", "'")
    return float(text) if "." in text else int(text)


def _sql_verdict(hint: str, stats: FileStats) -> Verdict:
    """One SQL predicate hint of the protocol's subset; UNKNOWN for anything else."""
    match = _SQL.match(hint)
    if match is None:
        return UNKNOWN
    if match["col3"]:
        verdict = _is_null(stats.columns.get(match["col3"]), stats.rows)
        return Verdict(verdict.may_false, verdict.may_true) if match["not"] else verdict
    if match["col"]:
        return _compare(stats.columns.get(match["col"]), stats.rows, match["op"], _literal(match["lit"]))
    return _compare(stats.columns.get(match["col2"]), stats.rows, _FLIP[match["op2"]], _literal(match["lit2"]))


def _json_verdict(node: Any, stats: FileStats, depth: int = 0) -> Verdict:
    """A node of the protocol's JSON predicate tree; UNKNOWN for anything malformed or unsupported."""
    if not isinstance(node, dict) or depth > 50:
        return UNKNOWN
    op = node.get("op")
    children = node.get("children") or []
    if not isinstance(children, list):
        return UNKNOWN
    if op == "and" and len(children) >= 2:
        parts = [_json_verdict(c, stats, depth + 1) for c in children]
        return Verdict(all(p.may_true for p in parts), any(p.may_false for p in parts))
    if op == "or" and len(children) >= 2:
        parts = [_json_verdict(c, stats, depth + 1) for c in children]
        return Verdict(any(p.may_true for p in parts), all(p.may_false for p in parts))
    if op == "not" and len(children) == 1:
        inner = _json_verdict(children[0], stats, depth + 1)
        return Verdict(inner.may_false, inner.may_true)
    if op == "isNull" and len(children) == 1 and isinstance(children[0], dict) and children[0].get("op") == "column":
        return _is_null(stats.columns.get(str(children[0].get("name"))), stats.rows)
    if op in _JSON_OPS and len(children) == 2 and all(isinstance(c, dict) for c in children):
        left, right = children
        symbol = _JSON_OPS[op]
        if left.get("op") == "column" and right.get("op") == "literal":
            column, literal = left, right
        elif left.get("op") == "literal" and right.get("op") == "column":
            column, literal, symbol = right, left, _FLIP[symbol]
        else:
            return UNKNOWN
        return _compare(stats.columns.get(str(column.get("name"))), stats.rows, symbol, literal.get("value"))
    return UNKNOWN


def may_match(stats: FileStats | None, sql_hints: list[str], json_hint: Any) -> bool:
    """Whether a file may hold a row matching every hint (True whenever in doubt)."""
    if stats is None:
        return True
    if any(not _sql_verdict(h, stats).may_true for h in sql_hints):
        return False
    return json_hint is None or _json_verdict(json_hint, stats).may_true
