"""Catalog search: words, not substrings; accents, case and the 2025 province merger do not matter.

Text is folded the same way for the index and the query: Unicode NFC, case-folded, diacritics
removed (``đ`` as ``d``), so "bụi mịn", "BUI MIN" and "bui min" are one query, and "Hà Nội",
"ha noi" and "Hanoi" find the same stations. Words are runs of letters and digits; a word written
with inner dots, dashes or underscores (``PM2.5``, ``air-quality``, ``station_code``) is indexed
whole (``pm25``) and by its parts.

Every query word must match a word of the dataset (exactly, or as the start of a word for words of
three letters or more). A dataset is indexed over its id, titles, keywords and tags, sector and unit
names (both languages), column names and descriptions, description, and what its newest release
covers: the provinces (named in both the pre- and post-2025 tables) and the years. Where a word
matches decides its weight, so a title hit ranks above a description hit.

A document is built from a spec, the names file and a release's coverage, all immutable or
versioned, so the catalog keeps documents per (spec, version) and rebuilds one only when its spec
or its newest visible release changes.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from datashare.catalog.coverage import Coverage, short_name
from datashare.catalog.names import Names
from datashare.spec import DatasetSpec

MIN_PREFIX = 3
"""Query words this long or longer also match the start of a longer word."""

WEIGHTS = {
    "title": 10.0,
    "id": 8.0,
    "keyword": 6.0,
    "place": 5.0,
    "sector": 4.0,
    "unit": 4.0,
    "year": 3.0,
    "column": 2.5,
    "description": 2.0,
}
"""How much a match in each field counts; the best field of each query word is kept."""
PREFIX_FACTOR = 0.5
PHRASE_BONUS = 5.0
"""Added when the whole query, folded, appears in a title."""

_COMPOUND = re.compile(r"[a-z0-9]+(?:[._\-/][a-z0-9]+)*")
_PART = re.compile(r"[a-z0-9]+")


def fold(text: str) -> str:
    """Text as search compares it: NFC, case-folded, without diacritics (``đ`` -> ``d``)."""
    lowered = unicodedata.normalize("NFC", text).casefold().replace("đ", "d")
    decomposed = unicodedata.normalize("NFD", lowered)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def index_words(text: str) -> set[str]:
    """Words a text is found by: each compound word whole (punctuation dropped) and by its parts."""
    words: set[str] = set()
    for compound in _COMPOUND.findall(fold(text)):
        parts = _PART.findall(compound)
        words.add("".join(parts))
        words.update(parts)
    return words


def query_words(text: str) -> list[str]:
    """The words of a query, in order, each compound joined: ``PM2.5 Hà Nội`` -> ``pm25 ha noi``."""
    seen: dict[str, None] = {}
    for compound in _COMPOUND.findall(fold(text)):
        seen["".join(_PART.findall(compound))] = None
    return list(seen)


def place_aliases(name: str) -> list[str]:
    """Ways people write a province: ``Thành phố Hà Nội`` -> ``Hà Nội``, ``Hanoi``, ``Hà Nội City``; ``HCM``."""
    short = short_name(name)
    joined = "".join(_PART.findall(fold(short)))
    aliases = [name, short, joined]
    kind = "City" if fold(name).startswith("thanh pho") else "Province"
    aliases.append(f"{short} {kind}")
    syllables = _PART.findall(fold(short))
    if len(syllables) >= 3:
        aliases.append("".join(s[0] for s in syllables))
    return aliases


@dataclass(frozen=True)
class Document:
    """One dataset as the index holds it."""

    dataset_id: str
    sector: str
    sharing: str
    provinces: frozenset[str]
    """2025 province codes the data covers (facet and filter)."""
    years: frozenset[int]
    weights: dict[str, float]
    """Word -> weight of the best field it occurs in."""
    titles: tuple[str, ...]
    """Folded titles, for the phrase bonus."""
    sorted_words: tuple[str, ...] = ()
    """The words in order, so the words a query word starts are found by bisection."""


def build_document(spec: DatasetSpec, names: Names, coverage: Coverage | None) -> Document:
    """The index entry of a dataset: its spec's words and what its newest release covers."""
    fields: list[tuple[str, Iterable[str]]] = [
        ("title", [spec.title.vi, spec.title.en]),
        ("id", [spec.id]),
        ("keyword", [*spec.tags, *spec.keywords.vi, *spec.keywords.en]),
        ("sector", [spec.sector, names.sector_name(spec.sector).vi, names.sector_name(spec.sector).en]),
        ("unit", [names.unit_name(spec.source.unit).vi, names.unit_name(spec.source.unit).en]),
        ("description", [spec.description.vi, spec.description.en]),
        (
            "column",
            [text for c in spec.columns for text in (c.name, c.description.vi, c.description.en, c.unit or "")],
        ),
    ]
    provinces: set[str] = set()
    years: frozenset[int] = frozenset()
    if coverage is not None:
        place_texts: list[str] = []
        for place in coverage.places:
            for name in place.names():
                place_texts.extend(place_aliases(name))
            place_texts.append(place.code)
            if place.table == "2025":
                provinces.add(place.code)
            provinces.update(p.code for p in place.related if p.table == "2025")
        fields.append(("place", place_texts))
        years = frozenset(coverage.years)
        fields.append(("year", [str(y) for y in sorted(years)]))
    weights: dict[str, float] = {}
    for name, texts in fields:
        weight = WEIGHTS[name]
        for text in texts:
            for word in index_words(text):
                if weights.get(word, 0.0) < weight:
                    weights[word] = weight
    return Document(
        dataset_id=spec.id,
        sector=spec.sector,
        sharing=spec.classification.sharing.value,
        provinces=frozenset(provinces),
        years=years,
        weights=weights,
        titles=(fold(spec.title.vi), fold(spec.title.en)),
        sorted_words=tuple(sorted(weights)),
    )


def score(doc: Document, words: Sequence[str], phrase: str) -> float | None:
    """The document's score for the query words; None unless every word matches."""
    total = 0.0
    for word in words:
        best = doc.weights.get(word, 0.0)
        if len(word) >= MIN_PREFIX:
            words_in_order = doc.sorted_words
            i = bisect.bisect_right(words_in_order, word)  # longer words starting with ``word`` follow it
            while i < len(words_in_order) and words_in_order[i].startswith(word):
                best = max(best, doc.weights[words_in_order[i]] * PREFIX_FACTOR)
                i += 1
        if best == 0.0:
            return None
        total += best
    if phrase and any(phrase in title for title in doc.titles):
        total += PHRASE_BONUS
    return total


@dataclass(frozen=True)
class Filters:
    """The facet filters of a search; empty means any."""

    sector: str | None = None
    sharing: str | None = None
    province: str | None = None
    year: int | None = None

    def keeps(self, doc: Document, *, skip: str = "") -> bool:
        """Whether a document passes every filter except ``skip`` (facet counts ignore their own filter)."""
        return (
            (skip == "sector" or not self.sector or doc.sector == self.sector)
            and (skip == "sharing" or not self.sharing or doc.sharing == self.sharing)
            and (skip == "province" or not self.province or self.province in doc.provinces)
            and (skip == "year" or self.year is None or self.year in doc.years)
        )


@dataclass(frozen=True)
class Result:
    """Ranked dataset ids and the facet counts of a search."""

    ranked: list[tuple[str, float]]
    sectors: Counter[str]
    sharing: Counter[str]
    provinces: Counter[str]
    years: Counter[int]


def run(docs: Sequence[Document], q: str, filters: Filters) -> Result:
    """Rank the documents matching every query word and filter; count each facet under the other filters."""
    words = query_words(q)
    phrase = " ".join(_PART.findall(fold(q)))
    scored: list[tuple[Document, float]] = []
    for doc in docs:
        value = score(doc, words, phrase) if words else 0.0
        if value is not None:
            scored.append((doc, value))
    ranked = sorted(((d.dataset_id, s) for d, s in scored if filters.keeps(d)), key=lambda p: (-p[1], p[0]))
    return Result(
        ranked=ranked,
        sectors=Counter(d.sector for d, _ in scored if filters.keeps(d, skip="sector")),
        sharing=Counter(d.sharing for d, _ in scored if filters.keeps(d, skip="sharing")),
        provinces=Counter(p for d, _ in scored if filters.keeps(d, skip="province") for p in d.provinces),
        years=Counter(y for d, _ in scored if filters.keeps(d, skip="year") for y in d.years),
    )
