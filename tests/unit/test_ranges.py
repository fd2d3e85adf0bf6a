"""Parsing of Range headers as RFC 9110 §14 asks: one range served, the rest ignored or refused with 416."""

from __future__ import annotations

import pytest

from datashare.catalog.ranges import Unsatisfiable, parse_range


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-99", (0, 99)),
        ("bytes=100-", (100, 999)),
        ("bytes=-8", (992, 999)),  # a Parquet footer: the last 8 bytes
        ("bytes=-5000", (0, 999)),  # a suffix longer than the file: the whole file
        ("bytes=990-5000", (990, 999)),  # an end past the file is cut to it
        ("BYTES = 5-5", (5, 5)),
        ("bytes=0-0,5-9", None),  # several ranges: the whole file (allowed by §14.2)
        ("items=0-9", None),  # an unknown unit must be ignored
        ("bytes=9-5", None),  # invalid: ignored
        ("bytes=a-b", None),
        ("bytes=-", None),
        ("bytes", None),
        ("bytes=--5", None),
    ],
)
def test_parse(header: str, expected: tuple[int, int] | None) -> None:
    assert parse_range(header, 1000) == expected


@pytest.mark.parametrize(("header", "size"), [("bytes=1000-", 1000), ("bytes=-0", 1000), ("bytes=0-", 0)])
def test_unsatisfiable(header: str, size: int) -> None:
    with pytest.raises(Unsatisfiable):
        parse_range(header, size)
