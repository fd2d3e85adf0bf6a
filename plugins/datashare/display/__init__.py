"""How things look to people: numbers and times in Vietnamese or English (Babel's CLDR data), and the stylesheet.

The catalog pages, the audit reports and the export notices all format through these functions, so a
Vietnamese reader sees ``1.234.567`` and ``39,2`` everywhere (CLDR's ``vi_VN``: ``.`` groups thousands,
``,`` marks decimals) and an English one ``1,234,567`` and ``39.2``. ``datashare.css`` beside this module is
the one stylesheet of the catalog pages and the audit reports: each page inlines it (:func:`stylesheet`),
its ``<body>`` class (``catalog``, ``audit``) selects the rules of its own kind.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from babel.dates import format_datetime
from babel.numbers import format_decimal

Lang = Literal["vi", "en"]
LOCALES: dict[str, str] = {"vi": "vi_VN", "en": "en_US"}
EMPTY = "—"


def number(value: int | float | None, lang: Lang, *, decimals: int = 1, empty: str = EMPTY) -> str:
    """A count with its thousands grouped (``1.234.567`` vi, ``1,234,567`` en); a float with ``decimals`` places."""
    if value is None:
        return empty
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    places = 0 if isinstance(value, int) else decimals
    pattern = "#,##0." + "0" * places if places > 0 else "#,##0"
    return format_decimal(value, format=pattern, locale=LOCALES[lang])


def timestamp(value: datetime | str | None, lang: Lang = "en", *, seconds: bool = False, empty: str = EMPTY) -> str:
    """A UTC time for people: ``2026-11-26 22:44 UTC`` (``seconds``: ``22:44:05``); ISO strings are read too."""
    if value is None or value == "":
        return empty
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    pattern = "yyyy-MM-dd HH:mm:ss" if seconds else "yyyy-MM-dd HH:mm"
    return format_datetime(value, pattern + " 'UTC'", tzinfo=UTC, locale=LOCALES[lang])


STYLESHEET = Path(__file__).with_name("datashare.css")


@functools.cache
def stylesheet() -> str:
    """The text of ``datashare.css``, for a template to inline in ``<style>`` (pages stay self-contained)."""
    return STYLESHEET.read_text(encoding="utf-8")
