"""Search, names and metadata of the catalog on tiny inline specs: folding, ranking, places, frequency, citation."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from typing import Any

import pytest
import yaml

from datashare.catalog import coverage, metadata, search
from datashare.catalog.names import Names, load_names
from datashare.exceptions import ConfigError
from datashare.quality.report import mask_sample
from datashare.spec import DatasetSpec, load_specs, parse_spec

REPO = Path(__file__).resolve().parents[2]


def _spec(dataset_id: str, **changes: Any) -> DatasetSpec:
    data = yaml.safe_load((REPO / "dags" / "datasets" / "air_quality_hourly.yaml").read_text(encoding="utf-8"))
    data.update(id=dataset_id, **changes)
    return parse_spec(data, source=f"{dataset_id}.yaml")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("Bụi mịn Hà Nội", ["bui", "min", "ha", "noi"]),
        (unicodedata.normalize("NFD", "ĐỒNG THÁP"), ["dong", "thap"]),
        ("PM2.5, air-quality", ["pm25", "airquality"]),
        ("station_code", ["stationcode"]),
    ],
)
def test_query_words_are_folded_and_joined(text: str, words: list[str]) -> None:
    assert search.query_words(text) == words


def test_index_words_keep_compounds_whole_and_by_parts() -> None:
    assert {"pm25", "pm2", "5", "airquality", "air", "quality"} <= search.index_words("PM2.5 air-quality")


def test_every_word_must_match_and_title_hits_rank_first() -> None:
    names = Names()
    in_title = _spec("dust_title", title={"vi": "Bụi mịn đô thị", "en": "Urban fine dust"})
    in_description = _spec(
        "dust_description",
        title={"vi": "Khí tượng", "en": "Weather"},
        description={"vi": "Có đo bụi mịn tại trạm.", "en": "Includes fine dust at the station."},
        keywords={"vi": [], "en": []},
    )
    docs = [search.build_document(s, names, None) for s in (in_description, in_title)]
    found = search.run(docs, "bui min", search.Filters())
    assert [i for i, _ in found.ranked] == ["dust_title", "dust_description"]
    assert [i for i, _ in search.run(docs, "bụi mịn đô thị", search.Filters()).ranked] == ["dust_title"]
    assert search.run(docs, "bụi zzz", search.Filters()).ranked == []


def test_places_are_found_by_old_and_new_names_and_facets_use_2025_provinces() -> None:
    ref = coverage.provinces()
    old = ref.place("74", "pre_2025")  # Bình Dương, merged into Hồ Chí Minh City on 1 July 2025
    assert old is not None and old.related[0].code == "79"
    new = ref.place("79", "2025")
    assert new is not None and {"74", "77", "79"} <= {p.code for p in new.related}
    assert ref.place("15", "pre_2025").related[0].name.endswith("Lào Cai")  # Yên Bái's code went to Lào Cai
    doc = search.build_document(_spec("binh_duong"), Names(), coverage.Coverage(places=(old,), years=(2025, 2026)))
    for query in ("Bình Dương", "binh duong", "Hồ Chí Minh", "HCM", "Ho Chi Minh City", "2026"):
        assert search.score(doc, search.query_words(query), "") is not None, query
    assert search.score(doc, search.query_words("Hà Nội"), "") is None
    result = search.run([doc], "", search.Filters(province="79"))
    assert [i for i, _ in result.ranked] == ["binh_duong"] and result.provinces == {"79": 1}
    assert search.run([doc], "", search.Filters(province="74")).ranked == []  # facets name 2025 provinces


def test_place_aliases() -> None:
    assert {"Hà Nội", "hanoi", "Hà Nội City"} <= set(search.place_aliases("Thành phố Hà Nội"))
    assert "hcm" in search.place_aliases("Thành phố Hồ Chí Minh")


@pytest.mark.parametrize(
    ("schedule", "code"),
    [("@daily", "DAILY"), ("@weekly", "WEEKLY"), ("0 * * * *", "HOURLY"), ("30 2 * * *", "DAILY"),
     ("0 3 * * 1", "WEEKLY"), ("0 3 1 * *", "MONTHLY"), ("0 3 1 1 *", "ANNUAL"), ("*/5 * * * *", "IRREG")],
)  # fmt: skip
def test_frequency_from_the_schedule(schedule: str, code: str) -> None:
    assert metadata.frequency(_spec("x", schedule=schedule), {}) == code


def test_derived_dataset_takes_its_slowest_input_rhythm() -> None:
    specs, errors = load_specs(REPO / "dags" / "datasets")
    assert not errors
    assert metadata.frequency(specs["province_environment_indicators"], specs) == "DAILY"


def test_licences_have_urls_or_our_terms() -> None:
    assert metadata.licence("CC-BY-4.0").url == "https://creativecommons.org/licenses/by/4.0/"
    restricted = metadata.licence("LicenseRef-restricted-government-use")
    assert restricted.url is None and "Luật Dữ liệu" in restricted.summary.vi and "Law on Data" in restricted.summary.en
    assert metadata.licence("MIT").url == "https://spdx.org/licenses/MIT.html"


def test_bibtex_escapes_braces() -> None:
    spec = _spec("x", title={"vi": "Tên {lạ}", "en": "Odd } title"})
    entry = metadata.bibtex(spec, Names(), None, "http://h/datasets/x")
    assert entry.startswith("@misc{x,") and "\\{lạ\\}" in entry and "Odd \\} title" in entry
    assert entry.count("{") - entry.count("\\{") == entry.count("}") - entry.count("\\}")


def test_names_file_names_every_sector_and_unit_of_the_repository() -> None:
    names = load_names(REPO / "config" / "units.yaml")
    specs, _ = load_specs(REPO / "dags" / "datasets")
    for spec in specs.values():
        assert spec.sector in names.sectors, spec.sector
        assert spec.source.unit in names.units, spec.source.unit
        assert names.units[spec.source.unit].email or names.units[spec.source.unit].url
    for sector in names.sectors.values():
        assert unicodedata.is_normalized("NFC", sector.name.vi)


def test_broken_names_file_names_the_field(tmp_path: Path) -> None:
    path = tmp_path / "units.yaml"
    path.write_text("sectors:\n  land:\n    name: {vi: Đất}\n    themes: [NOPE]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"units\.yaml: sectors\.land\.name\.en"):
        load_names(path)


@pytest.mark.parametrize(
    ("value", "personal", "shown"),
    [
        ("001099012345", True, '"001*******45"'),
        ("Nguyễn Văn A", True, '"Ngu******* A"'),
        ("ABC", False, '"ABC"'),
        ("problem: id 001099012345 wrong", False, '"problem: id 001*******45 wrong"'),
        (None, True, "null"),
    ],
)
def test_samples_are_masked(value: Any, personal: bool, shown: str) -> None:
    assert mask_sample(value, personal) == shown
    assert not re.search(r"\d{9,}", mask_sample(value, personal))
