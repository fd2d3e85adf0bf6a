"""One formatter for numbers and times (Babel's CLDR data): Vietnamese and English as each writes them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from datashare import display
from datashare.catalog import i18n as catalog_i18n


@pytest.mark.parametrize(
    ("value", "lang", "text"),
    [
        (1234567, "vi", "1.234.567"),
        (1234567, "en", "1,234,567"),
        (999, "vi", "999"),
        (-12345, "vi", "-12.345"),
        (39.2, "vi", "39,2"),
        (39.0, "vi", "39,0"),
        (1234.56, "vi", "1.234,6"),
        (1234.56, "en", "1,234.6"),
        (None, "vi", "—"),
    ],
)
def test_numbers_as_each_language_writes_them(value: int | float | None, lang: display.Lang, text: str) -> None:
    assert display.number(value, lang) == text
    assert catalog_i18n.number(value, lang) == text  # the catalog's pages use the same formatter


def test_number_options_and_non_numbers() -> None:
    assert display.number(2.346, "vi", decimals=2) == "2,35" and display.number(2.5, "en", decimals=0) == "2"
    assert display.number(None, "en", empty="–") == "–"
    assert display.number(True, "en") == "True" and display.number("n/a", "vi") == "n/a"  # type: ignore[arg-type]


def test_sizes_keep_their_units() -> None:
    assert catalog_i18n.size(39_200, "vi") == "39,2 KB" and catalog_i18n.size(39_200, "en") == "39.2 KB"
    assert catalog_i18n.size(512, "vi") == "512 B" and catalog_i18n.size(2_500_000_000_000, "vi") == "2.500,0 GB"


def test_timestamps_in_utc() -> None:
    stamp = "2026-11-26T22:44:05.123456Z"
    assert display.timestamp(stamp) == "2026-11-26 22:44 UTC" == catalog_i18n.when(stamp)
    assert display.timestamp(datetime(2026, 11, 26, 22, 44, 5, tzinfo=UTC), seconds=True) == "2026-11-26 22:44:05 UTC"
    hanoi = datetime(2026, 11, 27, 5, 44, tzinfo=timezone(timedelta(hours=7)))
    assert display.timestamp(hanoi, "vi") == "2026-11-26 22:44 UTC"  # converted, never relabelled
    assert display.timestamp(datetime(2026, 1, 2, 3, 4)) == "2026-01-02 03:04 UTC"  # naive: read as UTC
    assert display.timestamp(None) == "—" and catalog_i18n.when("") == "—"
