"""The sector unit databases (land, water resources, water quality, public services), code lists and legacy text."""

import datetime as dt
import re
import unicodedata
from collections import Counter, defaultdict
from pathlib import Path

import pytest
import sqlalchemy as sa

from units import land, public_services, water_quality, water_resources
from units._common import PROVINCES_BY_CODE
from units.codes import (
    ADMIN_UNITS,
    CODE_MAPPINGS,
    LAND_USE_BY_CODE,
    NEW_TABLE_FROM,
    PRE_2025_COMMUNES,
    PRE_2025_PROVINCES,
    RETIRED_LAND_USE_CODES,
    map_to_2025,
    unit_valid_on,
)
from units.legacy_text import (
    TCVN3_BYTES,
    TCVN3_TABLE,
    VNI_BYTES,
    VNI_TABLE,
    as_stored,
    encode_tcvn3,
    encode_vni,
)


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def read(url: str, table: sa.Table) -> list[dict]:
    """Every row of a table in primary-key order, as dicts."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            query = sa.select(table).order_by(*table.primary_key.columns)
            return [dict(r._mapping) for r in conn.execute(query)]
    finally:
        engine.dispose()


# --- legacy text ------------------------------------------------------------------------------------

TONES = ("", "\u0300", "\u0309", "\u0303", "\u0301", "\u0323")


def vietnamese_letters() -> list[str]:
    """The 134 precomposed Vietnamese letters outside ASCII, built from base letters and tone marks."""
    lower = {unicodedata.normalize("NFC", b + t) for b in "aăâeêioôơuưy" for t in TONES} | {"đ"}
    lower = sorted(c for c in lower if not c.isascii())
    return lower + [c.upper() for c in lower]


def decode(text: str, table: dict[str, str]) -> str:
    """Invert an encoder table, longest match first (what the transforms decoder does)."""
    inverse = {v: k for k, v in table.items()}
    out, i = [], 0
    while i < len(text):
        for n in (2, 1):
            if text[i : i + n] in inverse and len(text[i : i + n]) == n:
                out.append(inverse[text[i : i + n]])
                i += n
                break
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def test_tables_cover_all_134_letters_one_to_one() -> None:
    letters = vietnamese_letters()
    assert len(letters) == 134 and all(len(c) == 1 for c in letters)
    for table in (TCVN3_TABLE, VNI_TABLE):
        assert sorted(table) == sorted(letters)
        assert len(set(table.values())) == 134
    assert all(len(b) == 1 for b in TCVN3_BYTES.values())
    assert all(len(b) in (1, 2) for b in VNI_BYTES.values())
    for raw, table in ((TCVN3_BYTES, TCVN3_TABLE), (VNI_BYTES, VNI_TABLE)):
        assert all(as_stored(raw[c]) == table[c] for c in letters)


@pytest.mark.parametrize(("encode", "table"), [(encode_tcvn3, TCVN3_TABLE), (encode_vni, VNI_TABLE)])
def test_every_letter_round_trips(encode, table) -> None:
    letters = vietnamese_letters()
    for letter in letters:
        assert decode(encode(letter), table) == letter
    text = " ".join(f"x{c}{c.lower()}y" for c in letters)
    assert decode(encode(text), table) == text
    assert decode(encode(unicodedata.normalize("NFD", text)), table) == text


def test_known_code_points_from_the_cited_tables() -> None:
    # TCVN3 / TCVN 5712 (libiconv, xvnkb): lower case at the ABC positions, capitals at VN1 positions.
    assert {c: TCVN3_BYTES[c] for c in "ảệưđĐÀỐÚ"} == {
        "ả": b"\xb6", "ệ": b"\xd6", "ư": b"\xad", "đ": b"\xae", "Đ": b"\xa7", "À": b"\x80", "Ố": b"\xff",
        "Ú": b"\x01",
    }  # fmt: skip
    assert {c: VNI_TABLE[c] for c in "ệỰỉỵđớắ"} == {
        "ệ": "eä", "Ự": "ÖÏ", "ỉ": "æ", "ỵ": "î", "đ": "ñ", "ớ": "ôù", "ắ": "aé",
    }  # fmt: skip
    assert encode_tcvn3("Nguyễn Văn Hùng, Hà Nội") == "NguyÔn V¨n Hïng, Hµ Néi"
    assert encode_vni("Nguyễn Văn Hùng, Hà Nội") == "Nguyeãn Vaên Huøng, Haø Noäi"
    assert as_stored(b"\x80\x81\x9d") == "€\x81\x9d"  # Windows-1252, its holes as C1 controls


def test_encoders_reject_what_legacy_text_cannot_hold() -> None:
    with pytest.raises(ValueError, match=r"TCVN3 cannot encode '€'.*position 4"):
        encode_tcvn3("Giá €5")
    with pytest.raises(ValueError, match="TCVN3 cannot encode"):
        encode_tcvn3("a\x11b")  # a control character TCVN 5712 uses for Ứ
    with pytest.raises(ValueError, match="VNI cannot encode"):
        encode_vni("北京")


# --- code lists -------------------------------------------------------------------------------------


def test_land_use_codes() -> None:
    domain = ("LUC", "LUK", "LUN", "BHK", "NHK", "LNC", "LNQ", "LNK", "RSX", "RPH", "RDD", "TSL", "TSN", "LMU",
              "ONT", "ODT", "SKC", "SKK", "SKS")  # fmt: skip
    for code in domain:
        entry = LAND_USE_BY_CODE[code]
        assert entry.confirmed and not entry.retired and entry.name_vi and entry.name_en
        assert unicodedata.is_normalized("NFC", entry.name_vi)
    assert RETIRED_LAND_USE_CODES and all(
        LAND_USE_BY_CODE[c].retired and not LAND_USE_BY_CODE[c].confirmed and LAND_USE_BY_CODE[c].valid_to
        for c in RETIRED_LAND_USE_CODES
    )
    assert all(re.fullmatch(r"[A-Z]{3}", c) for c in LAND_USE_BY_CODE)


def test_admin_units_have_validity_dates_and_unique_keys() -> None:
    assert set(PROVINCES_BY_CODE) <= {p.code for p in PRE_2025_PROVINCES}
    keys = Counter((u.level, u.code, u.valid_from) for u in ADMIN_UNITS)
    assert max(keys.values()) == 1
    for unit in ADMIN_UNITS:
        assert re.fullmatch(r"\d{2}" if unit.level == "province" else r"\d{5}", unit.code), unit
        assert unit.valid_to is None or unit.valid_from <= unit.valid_to
        if unit.valid_from >= NEW_TABLE_FROM:
            assert unit.valid_to is None
        else:
            assert unit.valid_to is not None and unit.valid_to < NEW_TABLE_FROM
    for commune in PRE_2025_COMMUNES:  # every old commune leads somewhere after 2025
        assert map_to_2025(commune.code, "commune") is not None, commune


def test_confirmed_2025_facts_and_placeholders() -> None:
    for old in ("10", "15"):
        mapping = map_to_2025(old, "province")
        assert (mapping.new_code, mapping.confirmed) == ("15", True)
    for old in ("35", "36", "37"):
        mapping = map_to_2025(old, "province")
        assert (mapping.new_code, mapping.confirmed) == ("37", True)
    assert map_to_2025("79", "province").confirmed is False  # the other 2025 mappings are placeholders
    before, after = (unit_valid_on("13285", "commune", d) for d in (dt.date(2025, 6, 30), dt.date(2025, 7, 1)))
    assert (before.parent_code, after.parent_code, after.name, after.confirmed) == ("35", "37", "Phường Phủ Lý", True)
    assert unit_valid_on("13669", "commune", NEW_TABLE_FROM).name == "Phường Nam Định"
    assert map_to_2025("13669", "commune").confirmed is True
    assert unit_valid_on("99999", "commune", NEW_TABLE_FROM) is None
    confirmed = {(m.level, m.old_code) for m in CODE_MAPPINGS if m.confirmed}
    assert confirmed == {("province", c) for c in ("10", "15", "35", "36", "37")} | {
        ("commune", "13285"),
        ("commune", "13669"),
    }
    merged = next(u for u in PRE_2025_COMMUNES if u.valid_to and u.valid_to.year == 2019)
    assert unit_valid_on(merged.code, "commune", dt.date(2022, 1, 1)) is None
    assert map_to_2025(merged.code, "commune").confirmed is False


# --- land -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def land_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, land.LandSummary, list[dict]]:
    url = sqlite_url(tmp_path_factory.mktemp("land") / "land.db")
    summary = land.generate(url, scale=0.01)
    return url, summary, read(url, land.parcels_table)


def test_land_counts_and_keys(land_db) -> None:
    _, summary, rows = land_db
    assert len(rows) == summary.rows == 2000
    assert [r["parcel_id"] for r in rows] == list(range(1, 2001))
    assert len({(r["commune_code"], r["map_sheet"], r["parcel_no"]) for r in rows}) == 2000
    communes = {c.code for c in PRE_2025_COMMUNES}
    assert all(r["commune_code"] in communes for r in rows)
    assert summary.first_updated_at == min(r["updated_at"] for r in rows)
    assert summary.last_updated_at == max(r["updated_at"] for r in rows)
    assert all(dt.datetime(2016, 1, 1) <= r["updated_at"] < dt.datetime(2025, 7, 1) for r in rows)
    assert all(r["area_m2"] > 0 for r in rows)


def test_land_dirt_is_present_and_counted(land_db) -> None:
    _, summary, rows = land_db
    uses = Counter(r["land_use_code"] for r in rows)
    retired = sum(n for c, n in uses.items() if c in RETIRED_LAND_USE_CODES)
    unknown = sum(n for c, n in uses.items() if c not in LAND_USE_BY_CODE)
    assert retired == summary.retired_codes and 0.002 <= retired / 2000 <= 0.004
    assert unknown == summary.unknown_codes == 4  # one in every 500 parcels
    nfd = [r["user_name"] for r in rows if not unicodedata.is_normalized("NFC", r["user_name"])]
    assert len(nfd) == summary.nfd_names > 10
    assert all(unicodedata.normalize("NFD", n) == n for n in nfd)
    bad = [r["citizen_id"] for r in rows if r["citizen_id"] is not None and len(r["citizen_id"]) != 12]
    assert len(bad) == summary.bad_citizen_ids == 4 and {len(b) for b in bad} <= {9, 11}
    organisations = [r for r in rows if r["citizen_id"] is None]
    assert len(organisations) == summary.organisations == 60
    assert any(r["user_name"].startswith(("Ông ", "Bà ")) for r in rows)
    assert sum(r["certificate_no"] is None for r in rows) > 50


def test_land_citizen_ids_have_the_real_structure(land_db) -> None:
    _, _, rows = land_db
    prefixes = {"0" + p.code for p in PRE_2025_PROVINCES}
    for r in rows:
        ident = r["citizen_id"]
        if ident is None or len(ident) != 12:
            continue
        assert ident.isdigit() and ident[:3] in prefixes, r
        century_gender, year = int(ident[3]), int(ident[4:6])
        assert century_gender in (0, 1, 2, 3)
        assert (40 <= year <= 99) if century_gender < 2 else (year <= 5), r
    same_province = sum(
        r["citizen_id"][1:3] == unit.parent_code
        for r in rows
        for unit in [unit_valid_on(r["commune_code"], "commune", dt.date(2019, 1, 1))]
        if r["citizen_id"] and len(r["citizen_id"]) == 12 and unit
    )
    assert same_province > 0.6 * len(rows)


def test_land_is_deterministic_and_scale_independent(land_db, tmp_path: Path) -> None:
    _, _, rows = land_db
    small, other = sqlite_url(tmp_path / "small.db"), sqlite_url(tmp_path / "other.db")
    assert land.generate(small, scale=0.005).rows == 1000
    assert read(small, land.parcels_table) == rows[:1000]
    land.generate(other, seed=7, scale=0.005)
    assert read(other, land.parcels_table) != rows[:1000]


def test_touch_parcels_makes_late_updates(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "touch.db")
    land.generate(url, scale=0.005)
    before = {r["parcel_id"]: r for r in read(url, land.parcels_table)}
    touched = land.touch_parcels(url, 7, seed=3)
    after = {r["parcel_id"]: r for r in read(url, land.parcels_table)}
    assert len(touched.parcel_ids) == 7
    assert touched.updated_at > max(r["updated_at"] for r in before.values())
    for pid, row in after.items():
        if pid in touched.parcel_ids:
            assert row["updated_at"] == touched.updated_at and row["area_m2"] != before[pid]["area_m2"]
            assert {k: v for k, v in row.items() if k not in ("updated_at", "area_m2")} == {
                k: v for k, v in before[pid].items() if k not in ("updated_at", "area_m2")
            }
        else:
            assert row == before[pid]
    with pytest.raises(LookupError, match="parcels"):
        land.touch_parcels(sqlite_url(tmp_path / "empty.db"), 1)


# --- water resources --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def water_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, water_resources.WaterResourcesSummary]:
    url = sqlite_url(tmp_path_factory.mktemp("water") / "water.db")
    return url, water_resources.generate(url, scale=0.1, days=10)


CLEAN_HOLDER = re.compile(r"^(Công ty|Ban Quản lý|Trung tâm) ")


def test_licences_shape_and_dirt(water_db) -> None:
    url, summary = water_db
    rows = read(url, water_resources.licences_table)
    assert len(rows) == summary.licences == 200
    assert all(re.fullmatch(r"\d+/GP-BTNMT", r["licence_no"]) for r in rows)
    assert {r["province_code"] for r in rows} <= set(PROVINCES_BY_CODE)
    assert {r["water_kind"] for r in rows} == {"surface", "ground"}
    assert {r["status"] for r in rows} <= {"active", "expired", "revoked"}

    decoded = Counter()
    for r in rows:
        if CLEAN_HOLDER.match(r["holder"]):
            continue
        matches = [name for name, table in (("tcvn3", TCVN3_TABLE), ("vni", VNI_TABLE))
                   if CLEAN_HOLDER.match(decode(r["holder"], table))]  # fmt: skip
        assert len(matches) == 1, r["holder"]
        decoded[matches[0]] += 1
    assert (decoded["tcvn3"], decoded["vni"]) == (summary.mojibake_tcvn3, summary.mojibake_vni)
    assert decoded["tcvn3"] > 0 and decoded["vni"] > 0 and 0.05 < decoded.total() / 200 < 0.16

    flow = re.compile(r"^\d{1,3}(\.\d{3})*(,\d)?$")
    bad_flows = [r["max_flow"] for r in rows if not flow.match(r["max_flow"])]
    assert len(bad_flows) == summary.bad_flows == 2
    assert any(f.startswith("-") or not re.search(r"\d", f) or "," in f for f in bad_flows)

    bad_dates = 0
    for r in rows:
        try:
            issued = dt.datetime.strptime(r["issued_on"], "%d/%m/%Y").date()
            expires = dt.datetime.strptime(r["expires_on"], "%d/%m/%Y").date()
        except ValueError:
            bad_dates += 1
            continue
        assert expires > issued
        assert r["status"] == "revoked" or (r["status"] == "expired") == (expires < water_resources.AS_OF)
    assert bad_dates == summary.bad_dates == 1


def test_wells_and_levels(water_db) -> None:
    url, summary = water_db
    licences = {r["licence_no"]: r for r in read(url, water_resources.licences_table)}
    wells = read(url, water_resources.wells_table)
    assert len(wells) == summary.wells == 30
    for w in wells:
        assert re.fullmatch(r"(QT|KT)\d{7}", w["well_code"]) and w["well_code"][2:4] == w["province_code"]
        if w["licence_no"] is None:
            assert w["well_code"].startswith("QT")
        else:
            licence = licences[w["licence_no"]]
            assert licence["water_kind"] == "ground" and licence["province_code"] == w["province_code"]
    levels = read(url, water_resources.well_levels_table)
    assert len(levels) == summary.level_rows == 30 * 10 - summary.missing_readings - summary.pending_entries
    assert all(r["updated_at"] <= dt.datetime(2025, 11, 11) for r in levels)  # only what was entered by the end
    assert {r["observed_at"].time() for r in levels} == {dt.time(7)}
    assert all(r["updated_at"] > r["observed_at"] for r in levels)
    late = sum(r["updated_at"] - r["observed_at"] > dt.timedelta(days=1) for r in levels)
    assert late == summary.late_entries
    assert all(-40 < r["level_m"] < 15 for r in levels)


def test_water_resources_append_day_equals_a_longer_run(tmp_path: Path) -> None:
    grown, full = sqlite_url(tmp_path / "grown.db"), sqlite_url(tmp_path / "full.db")
    start = dt.date(2025, 11, 1)
    water_resources.generate(grown, scale=0.02, days=3)
    assert water_resources.append_day(grown) == start + dt.timedelta(days=3)
    water_resources.generate(full, scale=0.02, days=4)
    for table in water_resources.metadata.sorted_tables:
        assert read(grown, table) == read(full, table), table.name
    with pytest.raises(LookupError, match="wells"):
        water_resources.append_day(sqlite_url(tmp_path / "empty.db"))


# --- water quality ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def quality_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, water_quality.WaterQualitySummary]:
    url = sqlite_url(tmp_path_factory.mktemp("quality") / "quality.db")
    return url, water_quality.generate(url, scale=0.1, days=28)


def test_samples_shape_and_text_values(quality_db) -> None:
    url, summary = quality_db
    sites = {s["site_code"]: s for s in read(url, water_quality.sites_table)}
    samples = read(url, water_quality.samples_table)
    assert len(sites) == summary.sites == 12 and len(samples) == summary.rows
    number = re.compile(r"^<?\d+([.,]\d+)?$")
    styles: dict[str, set[str]] = defaultdict(set)
    below = missing = 0
    for s in samples:
        site = sites[s["site_code"]]
        assert s["sample_id"] == f"{s['site_code']}-{s['sampled_at']:%Y%m%d}"
        assert (s["river"], s["province_code"]) == (site["river"], site["province_code"])
        for name, (_, _, automatic) in water_quality.PARAMETERS.items():
            value = s[name]
            if value is None:
                missing += not (site["kind"] == "automatic" and not automatic)
                continue
            assert site["kind"] == "periodic" or automatic, (name, s)
            assert number.match(value), (name, value)
            below += value.startswith("<")
            styles[s["site_code"]].update(c for c in ",." if c in value)
        ph = float(s["ph"].replace(",", ".")) if s["ph"] else 7.0
        assert 5.5 <= ph <= 9.0
    assert below == summary.below_limit > 0 and missing == summary.missing_values > 0
    assert all(len(style) <= 1 for style in styles.values())  # one decimal style per site
    assert {",", "."} == set().union(*styles.values())
    values = [s[n] for s in samples for n in water_quality.PARAMETERS if s[n]]
    assert any(re.fullmatch(r"<0,\d+", v) for v in values) and any(re.fullmatch(r"<0\.\d+", v) for v in values)
    automatic = [c for c, s in sites.items() if s["kind"] == "automatic"]
    days = {s["sampled_at"].date() for s in samples if s["site_code"] == automatic[0]}
    assert len(days) == 28  # the first site is automatic: one sample every day


def test_water_quality_append_day_equals_a_longer_run(tmp_path: Path) -> None:
    grown, full = sqlite_url(tmp_path / "grown.db"), sqlite_url(tmp_path / "full.db")
    water_quality.generate(grown, scale=0.05, days=5)
    assert water_quality.append_day(grown) == dt.date(2025, 11, 6)
    water_quality.generate(full, scale=0.05, days=6)
    for table in water_quality.metadata.sorted_tables:
        assert read(grown, table) == read(full, table), table.name
    other = sqlite_url(tmp_path / "other.db")
    water_quality.generate(other, seed=9, scale=0.05, days=6)
    assert read(other, water_quality.samples_table) != read(full, water_quality.samples_table)


# --- public services --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def services_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, public_services.PublicServicesSummary]:
    url = sqlite_url(tmp_path_factory.mktemp("services") / "services.db")
    return url, public_services.generate(url, scale=0.5, days=150, start=dt.date(2022, 6, 1))


def test_procedures_match_the_plan(services_db) -> None:
    url, summary = services_db
    rows = read(url, public_services.procedures_table)
    assert len(rows) == summary.procedures == 82
    levels = Counter(r["level"] for r in rows)
    assert (levels[3], levels[4]) == (67, 15)
    nsw = [r for r in rows if r["national_single_window"]]
    assert len(nsw) == 11 and all(r["level"] == 4 for r in nsw)
    assert all(re.fullmatch(r"[12]\.\d{6}", r["code"]) for r in rows) and rows[0]["code"] == "1.004227"
    assert len({r["name"] for r in rows}) == 82 and all(unicodedata.is_normalized("NFC", r["name"]) for r in rows)
    assert "Cấp giấy phép khai thác, sử dụng nước dưới đất" in {r["name"] for r in rows}


def test_dossiers_codes_times_and_statuses(services_db) -> None:
    url, summary = services_db
    procedures = {r["code"]: r for r in read(url, public_services.procedures_table)}
    rows = read(url, public_services.dossiers_table)
    assert len(rows) == summary.dossiers > 4000
    code = re.compile(r"^(\d{3}\.\d{2}\.\d{2}\.[A-Z]\d{2})-(\d{6})-(\d{4})$")
    numbers: dict[tuple[str, str], list[int]] = defaultdict(list)
    as_of = dt.datetime(2022, 10, 29)
    for r in rows:
        agency, day, number = code.match(r["dossier_code"]).groups()
        assert day == f"{r['received_at']:%y%m%d}" and agency == procedures[r["procedure_code"]]["agency_code"]
        numbers[(agency, day)].append(int(number))
        assert r["due_at"] > r["received_at"] and r["due_at"].time() == dt.time(17)
        done, status = r["completed_at"], r["status"]
        if status == "processing":
            assert done is None and r["updated_at"] == r["received_at"]
            continue
        assert r["received_at"] < done < as_of and r["updated_at"] == done
        if status == "early":
            assert done.date() < r["due_at"].date()
        elif status == "on_time":
            assert done.date() == r["due_at"].date() and done <= r["due_at"]
        elif status == "late":
            assert done > r["due_at"]
        else:
            assert status in ("returned", "withdrawn")
        if r["received_at"] < public_services.ONLINE_CLASSES_FROM:
            assert r["online_class"] is None
        else:
            assert r["online_class"] == "partial" or procedures[r["procedure_code"]]["level"] == 4
    assert all(sorted(n) == list(range(1, len(n) + 1)) for n in numbers.values())
    online = Counter(r["online_class"] for r in rows)
    assert online[None] > 0 and online["full"] > 0 and online["partial"] > 0

    statuses = Counter(r["status"] for r in rows)
    assert statuses == summary.by_status
    assert statuses["returned"] > 0 and statuses["withdrawn"] > 0 and statuses["processing"] > 0
    # Shares as DOMAIN §5 reports them, over dossiers old enough for any outcome to have happened.
    statuses = Counter(r["status"] for r in rows if r["due_at"] < as_of - dt.timedelta(days=45))
    processed = statuses.total() - statuses["processing"]
    assert 0.44 < statuses["early"] / processed < 0.53
    assert 0.94 < (statuses["early"] + statuses["on_time"] + statuses["late"]) / processed < 0.985


def test_public_services_append_day_completes_and_adds(tmp_path: Path) -> None:
    grown, full = sqlite_url(tmp_path / "grown.db"), sqlite_url(tmp_path / "full.db")
    start = dt.date(2022, 8, 10)
    public_services.generate(grown, scale=0.1, days=8, start=start)
    before = {r["dossier_code"]: r for r in read(grown, public_services.dossiers_table)}
    assert public_services.append_day(grown, scale=0.1) == start + dt.timedelta(days=8)
    after = read(grown, public_services.dossiers_table)
    public_services.generate(full, scale=0.1, days=9, start=start)
    assert after == read(full, public_services.dossiers_table)
    completed = [r for r in after if r["dossier_code"] in before and r != before[r["dossier_code"]]]
    assert completed and all(before[r["dossier_code"]]["status"] == "processing" for r in completed)


# --- command lines, bad arguments -------------------------------------------------------------------


def test_command_lines(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "cli.db")
    assert land.main(["generate", "--url", url, "--scale", "0.001"]) == 0
    assert land.main(["touch", "--url", url, "--n", "3"]) == 0
    assert water_resources.main(["generate", "--url", url, "--scale", "0.01", "--days", "2"]) == 0
    assert water_resources.main(["append-day", "--url", url]) == 0
    assert water_quality.main(["generate", "--url", url, "--scale", "0.02", "--days", "2"]) == 0
    assert water_quality.main(["append-day", "--url", url]) == 0
    args = ["--url", url, "--scale", "0.01"]
    assert public_services.main(["generate", *args, "--days", "3", "--start", "2022-08-14"]) == 0
    assert public_services.main(["append-day", *args]) == 0
    assert len(read(url, land.parcels_table)) == 200
    assert max(r["observed_at"] for r in read(url, water_resources.well_levels_table)).date() == dt.date(2025, 11, 3)
    assert max(r["received_at"] for r in read(url, public_services.dossiers_table)).date() == dt.date(2022, 8, 17)


@pytest.mark.parametrize("module", [land, water_resources, water_quality, public_services])
def test_bad_scale_is_rejected(module, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="scale"):
        module.generate(sqlite_url(tmp_path / "bad.db"), scale=0)


# --- real servers -----------------------------------------------------------------------------------


def _same_rows(url: str, reference: str, tables: list[sa.Table]) -> None:
    for table in tables:
        assert read(url, table) == read(reference, table), table.name


@pytest.mark.postgres
def test_postgresql_land_and_water_quality(postgres_db: str, tmp_path: Path) -> None:
    reference = sqlite_url(tmp_path / "reference.db")
    assert land.generate(postgres_db, scale=0.005) == land.generate(reference, scale=0.005)
    assert land.touch_parcels(postgres_db, 4) == land.touch_parcels(reference, 4)
    assert water_quality.generate(postgres_db, scale=0.05, days=3) == water_quality.generate(
        reference, scale=0.05, days=3
    )
    assert water_quality.append_day(postgres_db) == water_quality.append_day(reference)
    _same_rows(postgres_db, reference, [land.parcels_table, *water_quality.metadata.sorted_tables])
    names = [r["user_name"] for r in read(postgres_db, land.parcels_table)]
    assert any(not unicodedata.is_normalized("NFC", n) for n in names)  # NFD survives the round trip


@pytest.mark.mariadb
def test_mariadb_water_resources_and_public_services(mariadb_db: str, tmp_path: Path) -> None:
    reference = sqlite_url(tmp_path / "reference.db")
    kwargs = {"scale": 0.1, "days": 2}
    assert water_resources.generate(mariadb_db, **kwargs) == water_resources.generate(reference, **kwargs)
    assert water_resources.append_day(mariadb_db) == water_resources.append_day(reference)
    kwargs = {"scale": 0.05, "days": 10, "start": dt.date(2022, 8, 10)}
    assert public_services.generate(mariadb_db, **kwargs) == public_services.generate(reference, **kwargs)
    assert public_services.append_day(mariadb_db, scale=0.05) == public_services.append_day(reference, scale=0.05)
    _same_rows(
        mariadb_db, reference, [*water_resources.metadata.sorted_tables, *public_services.metadata.sorted_tables]
    )
    holders = [r["holder"] for r in read(mariadb_db, water_resources.licences_table)]
    assert any(not CLEAN_HOLDER.match(h) for h in holders)  # legacy mojibake stored as it is


# --- additions for the datasets: pending late entries, the reported WQI, the catalogues ------------


def test_late_readings_are_added_on_the_day_they_are_entered(tmp_path: Path) -> None:
    """An updated_at cursor never skips a reading: none is entered before the newest one already held."""
    grown, full = sqlite_url(tmp_path / "grown.db"), sqlite_url(tmp_path / "full.db")
    start = dt.date(2025, 11, 1)
    summary = water_resources.generate(grown, scale=1.0, days=30, start=start)
    assert summary.pending_entries > 0  # late readings of the last days are not entered yet
    before = max(r["updated_at"] for r in read(grown, water_resources.well_levels_table))
    water_resources.append_day(grown)
    added = [r for r in read(grown, water_resources.well_levels_table) if r["updated_at"] > before]
    assert any(r["observed_at"].date() < start + dt.timedelta(days=30) for r in added)  # a late one arrived
    water_resources.generate(full, scale=1.0, days=31, start=start)
    assert read(grown, water_resources.well_levels_table) == read(full, water_resources.well_levels_table)


def test_samples_carry_the_units_own_wqi(quality_db) -> None:
    url, _ = quality_db
    samples = read(url, water_quality.samples_table)
    assert all(isinstance(s["wqi"], int) and 1 <= s["wqi"] <= 100 for s in samples)
    assert len({s["wqi"] // 25 for s in samples}) >= 2  # more than one band
    dirty = [s["wqi"] for s in samples if s["river"] in ("Sông Tô Lịch", "Kênh Tân Hóa - Lò Gốm")]
    clean = [s["wqi"] for s in samples if s["river"] in ("Sông Hương", "Sông Đa Nhim")]
    if dirty and clean:
        assert sum(dirty) / len(dirty) < sum(clean) / len(clean)


def test_catalogues_and_the_committed_reference_file(tmp_path: Path) -> None:
    from transforms.admin_codes import load_reference
    from units import catalogues

    assert catalogues.REFERENCE_FILE.read_text(encoding="utf-8") == catalogues.reference_text(), (
        "transforms/data/simulated_admin_units.json is stale: run `python -m units.catalogues reference`"
    )
    ref = load_reference(catalogues.REFERENCE_FILE)
    for unit in ADMIN_UNITS:
        assert any(u.valid_from == unit.valid_from for u in ref.units[unit.code] if u.level == unit.level)
        if unit.valid_to is not None:
            assert ref.successors[(unit.code, unit.level)][0] == map_to_2025(unit.code, unit.level).new_code
    url = sqlite_url(tmp_path / "catalogues.db")
    made = catalogues.generate(url)
    assert made.admin_units == len(read(url, catalogues.admin_units_table)) == len(ADMIN_UNITS)
    assert made.land_use_codes == len(read(url, catalogues.land_use_codes_table)) == len(LAND_USE_BY_CODE)
