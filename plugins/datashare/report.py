"""How validation reads to people: rules in plain words, and the bilingual HTML report for auditors.

Vietnamese first, English second. Inline CSS only: no script, no link, no image, no font, no URL of
any kind, so the page reads the same offline, years later, from inside a release. Every value that
comes from data or configuration is HTML-escaped (a station name can be hostile). Given the same
outcome the page is byte-identical, apart from the validation time it displays.
"""

from __future__ import annotations

import html
import json
import math
import unicodedata
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datashare.validation import RuleResult, ValidationOutcome

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

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", Arial, sans-serif;
       margin: 2rem auto; max-width: 80rem; padding: 0 1rem; color: #1f2328; line-height: 1.45; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; }
h2 { font-size: 1.2rem; margin-top: 2rem; }
.en { color: #59636e; font-weight: normal; }
.verdict { display: inline-block; font-size: 1.4rem; font-weight: bold; padding: .4rem 1rem;
           border-radius: .4rem; margin: .6rem 0; }
.verdict.pass { background: #dafbe1; color: #116329; border: 2px solid #1a7f37; }
.verdict.fail { background: #ffebe9; color: #a40e26; border: 2px solid #cf222e; }
dl.facts { display: grid; grid-template-columns: max-content auto; gap: .25rem 1.5rem; }
dl.facts dt { font-weight: 600; }
dl.facts dd { margin: 0; }
table { border-collapse: collapse; width: 100%; font-size: .92rem; }
th, td { border: 1px solid #d1d9e0; padding: .35rem .5rem; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
tr.fail td { background: #fff5f5; }
td.num { text-align: right; white-space: nowrap; }
.ok { color: #116329; font-weight: 600; }
.bad { color: #a40e26; font-weight: 600; }
code { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: .85rem;
       background: #f6f8fa; padding: 0 .2rem; border-radius: .2rem; word-break: break-all; }
.rule-en { color: #59636e; }
.rule-id { color: #59636e; font-size: .8rem; }
ul.samples { margin: 0; padding-left: 1rem; }
footer { margin-top: 2rem; color: #59636e; font-size: .85rem; }
@media print { body { margin: 0; max-width: none; } tr { break-inside: avoid; } }
"""


_FOOTER = (
    "Tỷ lệ lỗi tính trên các giá trị không trống; tối đa 10 giá trị lỗi mẫu cho mỗi quy tắc. "
    "Kết quả đầy đủ của Great Expectations nằm trong result.json bên cạnh báo cáo này.",
    "Unexpected % is of non-null values; at most 10 sample values per rule. "
    "The full Great Expectations result is in result.json next to this report.",
)


def _e(value: Any) -> str:
    """HTML-escape anything, quotes included."""
    return html.escape("" if value is None else str(value), quote=True)


def _bi(vi: str, en: str) -> str:
    """A bilingual label: Vietnamese, then English in a quieter tone."""
    return f'{_e(vi)} <span class="en">/ {_e(en)}</span>'


def _value_text(value: Any) -> str:
    """One sample value as JSON text (quotes show stray spaces), cut to a readable length."""
    text = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    return text if len(text) <= _SAMPLE_CHARS else text[:_SAMPLE_CHARS] + "…"


def _percent(value: float | None) -> str:
    """Percent with two decimals; tiny non-zero shares are not rounded to zero."""
    if value is None:
        return "–"
    if 0 < value < 0.01:
        return "&lt;0.01%"
    return f"{value:.2f}%"


def _rule_row(number: int, rule: RuleResult) -> str:
    """One table row: what the rule says, what it found."""
    if rule.error:
        verdict = f'<span class="bad">Lỗi / Error</span><br><code>{_e(rule.error)}</code>'
    elif rule.success:
        verdict = '<span class="ok">Đạt / Passed</span>'
    else:
        verdict = '<span class="bad">Không đạt / Failed</span>'
    items = "".join(f"<li><code>{_e(_value_text(v))}</code></li>" for v in rule.sample)
    samples = f'<ul class="samples">{items}</ul>' if items else ""
    observed = "" if rule.observed_value is None else f"<code>{_e(_value_text(rule.observed_value))}</code>"
    count = "–" if rule.unexpected_count is None else str(rule.unexpected_count)
    return (
        f'<tr class="{"pass" if rule.success else "fail"}">'
        f'<td class="num">{number}</td>'
        f"<td>{_e(rule.description_vi)}<br>"
        f'<span class="rule-en">{_e(rule.description_en)}</span><br>'
        f'<span class="rule-id">{_e(rule.rule)}</span></td>'
        f"<td>{_e(rule.column or '')}</td>"
        f"<td>{verdict}</td>"
        f'<td class="num">{count}</td>'
        f'<td class="num">{_percent(rule.unexpected_percent)}</td>'
        f"<td>{observed}</td>"
        f"<td>{samples}</td>"
        "</tr>"
    )


def _quarantine_section(quarantine: Mapping[str, Any] | None) -> str:
    """Rows set aside before validation, per rule; empty when none were."""
    if not quarantine or not quarantine.get("rows"):
        return ""
    share = f"{100 * float(quarantine['share']):.3f}%"
    limit = f"{100 * float(quarantine['threshold']):.3f}%"
    items = "".join(
        f"<tr><td><code>{_e(rule)}</code></td><td>{_e(count)}</td></tr>"
        for rule, count in sorted(quarantine.get("by_rule", {}).items())
    )
    intro = _bi(
        f"{quarantine['rows']} dòng ({share}, ngưỡng {limit}) vi phạm quy tắc theo dòng: đã cách ly, không công bố.",
        f"{quarantine['rows']} rows ({share}, threshold {limit}) broke row-level rules: quarantined, not published.",
    )
    head = f"<tr><th>{_bi('Quy tắc', 'Rule')}</th><th>{_bi('Số dòng', 'Rows')}</th></tr>"
    where = f"<p><code>{_e(quarantine.get('location', ''))}</code></p>"
    return f"<h2>{_bi('Dòng bị cách ly', 'Quarantined rows')}</h2>\n<p>{intro}</p>\n<table>{head}{items}</table>{where}"


def render_report(outcome: ValidationOutcome) -> str:
    """The whole report page of one validation outcome."""
    verdict_class, verdict = ("pass", "ĐẠT / PASSED") if outcome.success else ("fail", "KHÔNG ĐẠT / FAILED")
    when = outcome.validated_at.strftime("%Y-%m-%d %H:%M:%S UTC") if outcome.validated_at else "–"
    titles = " / ".join(t for t in (outcome.title_vi, outcome.title_en) if t)
    facts = [
        (("Bộ dữ liệu", "Dataset"), f"<code>{_e(outcome.dataset_id)}</code>"),
        (("Tên", "Title"), _e(titles) or "–"),
        (("Lần chạy", "Run"), f"<code>{_e(outcome.run_id)}</code>"),
        (("Thời điểm kiểm tra", "Validated at"), _e(when)),
        (("Bộ quy tắc", "Suite"), f"<code>{_e(outcome.suite_name)}</code>"),
        (("Số dòng đã kiểm tra", "Rows checked"), _e(outcome.rows)),
        (("Quy tắc đạt", "Rules passed"), f"{outcome.passed} / {outcome.evaluated}"),
        (("Quy tắc không đạt", "Rules failed"), _e(outcome.failed)),
        (("Phiên bản Great Expectations", "Great Expectations version"), _e(outcome.gx_version)),
    ]
    facts_html = "\n".join(f"<dt>{_bi(*label)}</dt><dd>{value}</dd>" for label, value in facts)
    failed = [r for r in outcome.rules if not r.success]
    failed_html = ""
    if failed:
        items = "".join(f"<li>{_bi(r.description_vi, r.description_en)}</li>" for r in failed)
        failed_html = f"<h2>{_bi('Quy tắc không đạt', 'Failed rules')}</h2>\n<ul>{items}</ul>"
    headers = [
        ("#", "#"), ("Quy tắc", "Rule"), ("Cột", "Column"), ("Kết quả", "Result"),
        ("Số giá trị lỗi", "Unexpected"), ("Tỷ lệ lỗi", "Unexpected %"),
        ("Giá trị đo được", "Observed"), ("Giá trị lỗi mẫu", "Sample values"),
    ]  # fmt: skip
    head_html = "".join(f"<th>{_e(vi)}</th>" if vi == en else f"<th>{_bi(vi, en)}</th>" for vi, en in headers)
    rows_html = "\n".join(_rule_row(i, r) for i, r in enumerate(outcome.rules, start=1))
    quarantine_html = _quarantine_section(outcome.quarantine)
    return f"""<!DOCTYPE html>
<html lang="vi">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Kết quả kiểm tra dữ liệu / Validation report: {_e(outcome.dataset_id)}</title>
<style>{_CSS}</style>
</head>
<body>
<header>
<h1>{_bi("Kết quả kiểm tra dữ liệu", "Validation report")}</h1>
<p class="verdict {verdict_class}">{verdict}</p>
</header>
<dl class="facts">
{facts_html}
</dl>
{failed_html}
{quarantine_html}
<h2>{_bi("Các quy tắc đã kiểm tra", "Rules checked")}</h2>
<table>
<thead><tr>{head_html}</tr></thead>
<tbody>
{rows_html}
</tbody>
</table>
<footer>{_bi(*_FOOTER)}</footer>
</body>
</html>
"""
