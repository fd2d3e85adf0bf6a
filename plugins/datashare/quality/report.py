"""How validation reads to people: rules in plain words, and the bilingual HTML report for auditors.

Vietnamese first, English second. The report and the validation history are Jinja2 templates
(``plugins/datashare/quality/templates``) with autoescape on (a station name can be hostile) and one shared
stylesheet inlined into each page: no script, no link, no image, no font, no URL of any kind, so a
page reads the same offline, years later, from inside a release. Landmarks (``header``, ``nav``,
``main``, labelled sections) let a screen reader move through it.

The report shows each rule's result on all rows checked and on the rows published (they differ
when rows were quarantined), how many rows each rule sent to quarantine, and a sample of the
offending values with personal data masked as the spec says; a digit run as long as a citizen ID
is masked whatever the column. It names no server path: quarantined rows are named by their key in
the release store. Given the same outcome the page is byte-identical, apart from the validation
time it displays.
"""

from __future__ import annotations

import functools
import html
import json
import math
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datashare.display import number, stylesheet, timestamp

if TYPE_CHECKING:
    from datashare.quality.validation import RuleResult, ValidationOutcome

_SAMPLE_CHARS = 200  # one sample value is cut after this many characters
_MAX_LISTED = 100  # values of a set spelled out in a rule's plain words before "…"

# --- plain words ---------------------------------------------------------------------------------


def rule_columns(kwargs: Mapping[str, Any]) -> list[str]:
    """The column(s) an expectation reads, from whichever kwarg its type uses."""
    if kwargs.get("column") is not None:
        return [str(kwargs["column"])]
    if kwargs.get("column_list"):
        return [str(c) for c in kwargs["column_list"]]
    return [str(kwargs[k]) for k in ("column_A", "column_B") if kwargs.get(k) is not None]


def _num(value: Any, lang: str) -> str:
    """A bound as people write it: 1000 not 1000.0; a decimal comma in Vietnamese."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer() and abs(value) < 1e15:
        value = int(value)
    text = "null" if value is None else str(value)
    return text.replace(".", ",") if lang == "vi" and isinstance(value, float) else text


def _listing(values: Any, lang: str) -> str:
    """Set members joined with commas, cut after a hundred."""
    items = list(values) if isinstance(values, list | tuple | set) else [values]
    text = ", ".join(_num(v, lang) for v in items[:_MAX_LISTED])
    return text + (", …" if len(items) > _MAX_LISTED else "")


def _bounds(kw: Mapping[str, Any], lang: str, *, count: bool = False) -> str:
    """'between a and b' / 'at least a' / 'at most b' in either language; counts read 'from a to b'."""
    lo, hi = kw.get("min_value"), kw.get("max_value")
    slo, shi = bool(kw.get("strict_min")), bool(kw.get("strict_max"))
    a, b = _num(lo, lang), _num(hi, lang)
    if lo is not None and hi is not None and not (slo or shi):
        if lang == "vi":
            return f"từ {a} đến {b}" if count else f"nằm trong khoảng {a} đến {b}"
        return f"between {a} and {b}"
    words = {  # (strict, not strict) for the lower bound, then for the upper bound
        ("vi", False): (("hơn", "ít nhất"), ("ít hơn", "nhiều nhất")),
        ("vi", True): (("lớn hơn", "không nhỏ hơn"), ("nhỏ hơn", "không lớn hơn")),
        ("en", False): (("more than", "at least"), ("fewer than", "at most")),
        ("en", True): (("greater than", "at least"), ("less than", "at most")),
    }[(lang, not count)]
    parts = []
    if lo is not None:
        parts.append(f"{words[0][0] if slo else words[0][1]} {a}")
    if hi is not None:
        parts.append(f"{words[1][0] if shi else words[1][1]} {b}")
    return (" và " if lang == "vi" else " and ").join(parts) or ("bất kỳ" if lang == "vi" else "any")


def _en_count(amount: str, noun: str) -> str:
    """'The table has at least 1 row' / '... 2 rows': English wants the plural unless the number is 1."""
    return f"The table has {amount} {noun}{'' if amount.endswith(' 1') else 's'}"


_STATS = {
    "expect_column_min_to_be_between": ("Giá trị nhỏ nhất", "The minimum"),
    "expect_column_max_to_be_between": ("Giá trị lớn nhất", "The maximum"),
    "expect_column_mean_to_be_between": ("Giá trị trung bình", "The mean"),
    "expect_column_median_to_be_between": ("Trung vị", "The median"),
    "expect_column_sum_to_be_between": ("Tổng", "The sum"),
    "expect_column_stdev_to_be_between": ("Độ lệch chuẩn", "The standard deviation"),
    "expect_column_unique_value_count_to_be_between": ("Số giá trị khác nhau", "The number of distinct values"),
    "expect_column_proportion_of_unique_values_to_be_between": (
        "Tỷ lệ giá trị không trùng", "The proportion of unique values"),
    "expect_column_proportion_of_non_null_values_to_be_between": (
        "Tỷ lệ giá trị không trống", "The proportion of non-null values"),
}  # fmt: skip

_Text = Callable[[Mapping[str, Any], str], tuple[str, str]]
_TEXTS: dict[str, _Text] = {
    "expect_table_row_count_to_be_between": lambda kw, c: (
        f"Bảng có {_bounds(kw, 'vi', count=True)} dòng", _en_count(_bounds(kw, "en", count=True), "row")),
    "expect_table_row_count_to_equal": lambda kw, c: (
        f"Bảng có đúng {kw.get('value')} dòng", _en_count(f"exactly {kw.get('value')}", "row")),
    "expect_table_column_count_to_be_between": lambda kw, c: (
        f"Bảng có {_bounds(kw, 'vi', count=True)} cột", _en_count(_bounds(kw, "en", count=True), "column")),
    "expect_table_column_count_to_equal": lambda kw, c: (
        f"Bảng có đúng {kw.get('value')} cột", _en_count(f"exactly {kw.get('value')}", "column")),
    "expect_table_columns_to_match_set": lambda kw, c: (
        f"Bảng có {'đúng' if kw.get('exact_match', True) else 'đủ'} các cột: {_listing(kw.get('column_set'), 'vi')}",
        f"The table has {'exactly' if kw.get('exact_match', True) else 'at least'} the columns: "
        f"{_listing(kw.get('column_set'), 'en')}"),
    "expect_table_columns_to_match_ordered_list": lambda kw, c: (
        f"Bảng có các cột theo đúng thứ tự: {_listing(kw.get('column_list'), 'vi')}",
        f"The table has the columns in this order: {_listing(kw.get('column_list'), 'en')}"),
    "expect_column_to_exist": lambda kw, c: (f"Bảng có cột {c}", f"The table has column {c}"),
    "expect_column_values_to_not_be_null": lambda kw, c: (
        f"Cột {c} không có giá trị trống (null)", f"Column {c} has no missing (null) values"),
    "expect_column_values_to_be_null": lambda kw, c: (
        f"Cột {c} chỉ có giá trị trống (null)", f"Column {c} holds only missing (null) values"),
    "expect_column_values_to_be_between": lambda kw, c: (
        f"Giá trị cột {c} {_bounds(kw, 'vi')}", f"Values of column {c} are {_bounds(kw, 'en')}"),
    "expect_column_values_to_be_in_set": lambda kw, c: (
        f"Giá trị cột {c} thuộc danh sách {len(kw.get('value_set') or [])} giá trị cho phép: "
        f"{_listing(kw.get('value_set'), 'vi')}",
        f"Values of column {c} are one of {len(kw.get('value_set') or [])} allowed values: "
        f"{_listing(kw.get('value_set'), 'en')}"),
    "expect_column_values_to_not_be_in_set": lambda kw, c: (
        f"Giá trị cột {c} không thuộc danh sách: {_listing(kw.get('value_set'), 'vi')}",
        f"Values of column {c} are none of: {_listing(kw.get('value_set'), 'en')}"),
    "expect_column_distinct_values_to_be_in_set": lambda kw, c: (
        f"Các giá trị khác nhau của cột {c} đều thuộc danh sách: {_listing(kw.get('value_set'), 'vi')}",
        f"The distinct values of column {c} are all in: {_listing(kw.get('value_set'), 'en')}"),
    "expect_column_values_to_match_regex": lambda kw, c: (
        f"Giá trị cột {c} khớp mẫu {kw.get('regex')}", f"Values of column {c} match the pattern {kw.get('regex')}"),
    "expect_column_values_to_not_match_regex": lambda kw, c: (
        f"Giá trị cột {c} không khớp mẫu {kw.get('regex')}",
        f"Values of column {c} do not match the pattern {kw.get('regex')}"),
    "expect_column_values_to_match_strftime_format": lambda kw, c: (
        f"Giá trị cột {c} đúng định dạng thời gian {kw.get('strftime_format')}",
        f"Values of column {c} follow the date-time format {kw.get('strftime_format')}"),
    "expect_column_values_to_be_unique": lambda kw, c: (
        f"Giá trị cột {c} không trùng lặp", f"Values of column {c} are unique"),
    "expect_compound_columns_to_be_unique": lambda kw, c: (
        f"Mỗi tổ hợp ({c}) chỉ xuất hiện một lần", f"Each combination of ({c}) appears only once"),
    "expect_column_value_lengths_to_be_between": lambda kw, c: (
        f"Độ dài giá trị cột {c} {_bounds(kw, 'vi')} ký tự",
        f"Values of column {c} are {_bounds(kw, 'en')} characters long"),
    "expect_column_value_lengths_to_equal": lambda kw, c: (
        f"Giá trị cột {c} dài đúng {kw.get('value')} ký tự",
        f"Values of column {c} are exactly {kw.get('value')} characters long"),
    "expect_column_values_to_be_of_type": lambda kw, c: (
        f"Cột {c} có kiểu dữ liệu {kw.get('type_')}", f"Column {c} has data type {kw.get('type_')}"),
    "expect_column_pair_values_to_be_equal": lambda kw, c: (
        f"Hai cột ({c}) có giá trị bằng nhau trên mỗi dòng", f"Columns ({c}) hold equal values on every row"),
    "expect_column_pair_values_a_to_be_greater_than_b": lambda kw, c: (
        f"Trên mỗi dòng, cột {kw.get('column_A')} lớn hơn{' hoặc bằng' if kw.get('or_equal') else ''} "
        f"cột {kw.get('column_B')}",
        f"On every row, column {kw.get('column_A')} is greater than{' or equal to' if kw.get('or_equal') else ''} "
        f"column {kw.get('column_B')}"),
}  # fmt: skip


def _stat_text(vi: str, en: str) -> _Text:
    """Plain words of a rule on a column aggregate (minimum, mean…)."""
    return lambda kw, c: (f"{vi} của cột {c} {_bounds(kw, 'vi')}", f"{en} of column {c} is {_bounds(kw, 'en')}")


_TEXTS.update({etype: _stat_text(vi, en) for etype, (vi, en) in _STATS.items()})

# kwargs the generic description leaves out: said elsewhere in the sentence, or GX-internal.
_DESCRIBED = frozenset(
    ("column", "column_list", "column_A", "column_B", "batch_id", "mostly", "row_condition", "condition_parser")
)


def describe_rule(expectation_type: str, kwargs: Mapping[str, Any]) -> tuple[str, str]:
    """(Vietnamese, English) plain words of a rule, e.g. "Giá trị cột pm25 nằm trong khoảng 0 đến 1000".

    Unknown expectation types get a generic sentence naming the type, the column and the arguments.
    """
    column = ", ".join(rule_columns(kwargs))
    text = _TEXTS.get(expectation_type)
    if text is not None:
        vi, en = text(kwargs, column)
    else:
        args = "; ".join(f"{k}={_json_text(v)}" for k, v in sorted(kwargs.items()) if k not in _DESCRIBED)[:300]
        where_vi, where_en = (f"trên cột {column}", f"on column {column}") if column else ("trên bảng", "on the table")
        vi = f"Quy tắc {expectation_type} {where_vi}" + (f" ({args})" if args else "")
        en = f"Rule {expectation_type} {where_en}" + (f" ({args})" if args else "")
    if kwargs.get("row_condition"):
        vi += f", chỉ xét các dòng thỏa {kwargs['row_condition']}"
        en += f", only for rows where {kwargs['row_condition']}"
    mostly = kwargs.get("mostly")
    if isinstance(mostly, int | float) and not isinstance(mostly, bool) and mostly < 1:
        vi += f" (với ít nhất {_num(round(mostly * 100, 4), 'vi')}% số giá trị)"
        en += f" (for at least {_num(round(mostly * 100, 4), 'en')}% of values)"
    return unicodedata.normalize("NFC", vi), unicodedata.normalize("NFC", en)


def _json_text(value: Any) -> str:
    """An argument value as compact JSON text, for the generic description."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


# --- HTML ---------------------------------------------------------------------------------------

TEMPLATES = Path(__file__).with_name("templates")
MASKED_MODES = frozenset({"pseudonymise", "mask", "drop", "keep"})
"""Personal-data handlings whose sample values the report masks (``keep`` too: a report travels further)."""
_LONG_DIGITS = re.compile(r"\d{9,}")
"""A run of digits as long as an ID number (9-digit old ID, 12-digit citizen ID), masked in any column."""

_FOOTER = (
    "Tỷ lệ lỗi tính trên các giá trị không trống; tối đa 10 giá trị lỗi mẫu cho mỗi quy tắc, dữ liệu cá nhân "
    "đã được che. Kết quả đầy đủ của Great Expectations nằm trong result.json bên cạnh báo cáo này.",
    "Unexpected % is of non-null values; at most 10 sample values per rule, personal data masked. "
    "The full Great Expectations result is in result.json next to this report.",
)


@functools.cache
def _env() -> Any:
    """The Jinja2 environment of the audit pages (autoescape on, undefined names fail)."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    return Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined)


def render_audit(template: str, **context: Any) -> str:
    """An audit page from its template, with the stylesheet of every page (:mod:`datashare.display`) and helpers."""
    return _env().get_template(template).render(css=stylesheet(), number=_count, percent=_percent, **context)


def _e(value: Any) -> str:
    """HTML-escape anything, quotes included (for fragments built outside the templates)."""
    return html.escape("" if value is None else str(value), quote=True)


def _bi(vi: str, en: str) -> str:
    """A bilingual label: Vietnamese, then English in a quieter tone (escaped)."""
    return f'{_e(vi)} <span class="en" lang="en">/ {_e(en)}</span>'


def _count(value: Any) -> str:
    """A count with thousands separated (1,234): the report is read in both languages."""
    return number(value, "en") if isinstance(value, int) and not isinstance(value, bool) else str(value)


def _value_text(value: Any) -> str:
    """One sample value as JSON text (quotes show stray spaces), cut to a readable length."""
    text = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    return text if len(text) <= _SAMPLE_CHARS else text[:_SAMPLE_CHARS] + "…"


def _percent(value: float | None) -> str:
    """Percent with two decimals; tiny non-zero shares are not rounded to zero."""
    if value is None:
        return "–"
    if 0 < value < 0.01:
        return "<0.01%"
    return f"{value:.2f}%"


def _mask_text(text: str) -> str:
    """First 3 and last 2 characters kept, the rest starred (the citizen-ID convention of the transforms)."""
    if len(text) <= 5:
        return "*" * len(text)
    return text[:3] + "*" * (len(text) - 5) + text[-2:]


def mask_sample(value: Any, personal: bool) -> str:
    """A sample value as the report shows it: masked when its column holds personal data; long digit runs always."""
    if value is None:
        return "null"
    if personal:
        return json.dumps(_mask_text(str(value)), ensure_ascii=False)
    text = _value_text(value)
    return _LONG_DIGITS.sub(lambda m: _mask_text(m.group(0)), text)


@dataclass(frozen=True)
class RuleRow:
    """One rule as the report's table shows it."""

    checked: RuleResult
    """The rule on all rows checked (before any quarantine)."""
    published: RuleResult | None
    """The rule on the rows published; None when nothing was published."""
    quarantined: int | None
    """Rows this rule sent to quarantine; None when no quarantine was attempted."""
    observed: str | None
    samples: tuple[str, ...]


def rule_rows(outcome: ValidationOutcome) -> list[RuleRow]:
    """Each rule on all rows checked and on the rows published, its quarantined rows and masked samples."""
    personal = {c for c, mode in (outcome.personal_data or {}).items() if mode in MASKED_MODES}
    checked = outcome.all_rows or outcome.rules
    current = {r.rule: r for r in outcome.rules}
    quarantine = outcome.quarantine or {}
    by_rule = quarantine.get("by_rule") or {}
    set_aside = bool(quarantine) and not quarantine.get("over_threshold")
    rows = []
    for rule in checked:
        published = current.get(rule.rule) if outcome.success else None
        columns = set((rule.column or "").split(","))
        hidden = bool(columns & personal)
        observed = None
        if rule.observed_value is not None:
            observed = mask_sample(rule.observed_value, hidden) if hidden else _value_text(rule.observed_value)
        rows.append(
            RuleRow(
                checked=rule,
                published=published,
                quarantined=int(by_rule.get(rule.rule, 0)) if set_aside else None,
                observed=observed,
                samples=tuple(mask_sample(v, hidden) for v in rule.sample),
            )
        )
    return rows


def _quarantine_view(quarantine: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The quarantine figures as the report shows them; None when no row broke a row-level rule."""
    if not quarantine or not quarantine.get("rows"):
        return None
    return {
        "rows": int(quarantine["rows"]),
        "share": f"{100 * float(quarantine['share']):.3f}%",
        "threshold": f"{100 * float(quarantine['threshold']):.3f}%",
        "over_threshold": bool(quarantine.get("over_threshold")),
        "by_rule": sorted((str(r), int(n)) for r, n in (quarantine.get("by_rule") or {}).items()),
        "key": quarantine.get("key"),
    }


def render_report(outcome: ValidationOutcome) -> str:
    """The whole report page of one validation outcome."""
    when = timestamp(outcome.validated_at, seconds=True, empty="–")
    titles = " / ".join(t for t in (outcome.title_vi, outcome.title_en) if t)
    checked_rows = outcome.rows_checked if outcome.rows_checked is not None else outcome.rows
    quarantine = outcome.quarantine or {}
    set_aside = int(quarantine.get("rows") or 0) if not quarantine.get("over_threshold") else 0
    facts: Sequence[tuple[tuple[str, str], str]] = [
        (("Bộ dữ liệu", "Dataset"), outcome.dataset_id),
        (("Tên", "Title"), titles or "–"),
        (("Lần chạy", "Run"), outcome.run_id),
        (("Thời điểm kiểm tra", "Validated at"), when),
        (("Bộ quy tắc", "Suite"), outcome.suite_name),
        (("Số dòng đã kiểm tra", "Rows checked"), _count(checked_rows)),
        (("Số dòng bị cách ly", "Rows quarantined"), _count(set_aside)),
        (("Số dòng công bố", "Rows published"), _count(outcome.rows) if outcome.success else "0"),
        (("Quy tắc đạt (trên các dòng công bố)", "Rules passed (on the rows published)"),
         f"{outcome.passed} / {outcome.evaluated}"),
        (("Quy tắc không đạt", "Rules failed"), _count(outcome.failed)),
        (("Phiên bản Great Expectations", "Great Expectations version"), outcome.gx_version),
    ]  # fmt: skip
    failed = [r for r in (outcome.all_rows or outcome.rules) if not r.success]
    return render_audit(
        "report.html",
        o=outcome,
        facts=facts,
        failed=failed,
        quarantine=_quarantine_view(outcome.quarantine),
        rows=rule_rows(outcome),
        footer=_FOOTER,
    )
