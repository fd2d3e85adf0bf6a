"""Shared code lists (danh mục dùng chung): land-use codes and administrative units before and after 2025.

Facts come from DOMAIN.md §4 and §6. Everything else is a PLACEHOLDER, flagged `confirmed=False`:

- Land-use codes: the 19 codes of DOMAIN §4 are confirmed; their Vietnamese and English names are
  the usual wording of the national list (the DOMAIN sources give the codes). The retired codes are
  illustrative placeholders: which codes the 2024 Land Law retired is UNCONFIRMED.
- Provinces before 1 July 2025: the GSO codes of `_common.PROVINCES` (used by every unit), plus the
  five that DOMAIN §6 names in the merger (Lào Cai, Yên Bái, Hà Nam, Nam Định, Ninh Bình).
- Communes before 2025: a PLACEHOLDER list of 5-digit codes and names, except the two wards whose
  codes DOMAIN §6 gives (13285 in Phủ Lý, 13669 in Nam Định). A few are retired in a placeholder
  2020 commune merger so that resolving a code "as of a date" matters.
- The 2025 reorganisation (Decision 19/2025/QĐ-TTg, in force 1 July 2025): the full list of 34
  provinces is UNCONFIRMED. Confirmed: 15 Lào Cai took Yên Bái's code; Ninh Bình keeps 37 and its
  new wards Phủ Lý and Nam Định reuse 13285 and 13669. Other old -> new mappings are placeholders.

A code alone does not name a unit: 13285 is an old ward until 30 June 2025 and a new one from
1 July 2025, so every unit carries its validity dates.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from units._common import PROVINCES

#: Decision 124/2004/QĐ-TTg, the pre-2025 code table. Used as every old unit's start date:
#: PLACEHOLDER, the real creation dates of individual units are UNCONFIRMED.
OLD_TABLE_FROM = dt.date(2004, 7, 8)
#: Decision 19/2025/QĐ-TTg takes effect; old units end the day before (DOMAIN §6).
NEW_TABLE_FROM = dt.date(2025, 7, 1)
OLD_TABLE_TO = NEW_TABLE_FROM - dt.timedelta(days=1)
#: PLACEHOLDER date of an illustrative commune merger before 2025.
COMMUNE_MERGER_2020 = dt.date(2020, 1, 1)


@dataclass(frozen=True)
class LandUseCode:
    """One land-use code of the national list."""

    code: str
    name_vi: str
    name_en: str
    group: str  # "agricultural" or "non_agricultural"
    retired: bool = False
    valid_to: dt.date | None = None  # last day in use, for retired codes
    confirmed: bool = True


LAND_USE_CODES: tuple[LandUseCode, ...] = (
    LandUseCode("LUC", "Đất chuyên trồng lúa nước", "Specialised wet-rice land", "agricultural"),
    LandUseCode("LUK", "Đất trồng lúa nước còn lại", "Other wet-rice land", "agricultural"),
    LandUseCode("LUN", "Đất trồng lúa nương", "Upland rice land", "agricultural"),
    LandUseCode("BHK", "Đất bằng trồng cây hàng năm khác", "Flat land for other annual crops", "agricultural"),
    LandUseCode("NHK", "Đất nương rẫy trồng cây hàng năm khác", "Upland fields for other annual crops", "agricultural"),
    LandUseCode("LNC", "Đất trồng cây công nghiệp lâu năm", "Perennial industrial-crop land", "agricultural"),
    LandUseCode("LNQ", "Đất trồng cây ăn quả lâu năm", "Perennial fruit-tree land", "agricultural"),
    LandUseCode("LNK", "Đất trồng cây lâu năm khác", "Other perennial-crop land", "agricultural"),
    LandUseCode("RSX", "Đất rừng sản xuất", "Production forest land", "agricultural"),
    LandUseCode("RPH", "Đất rừng phòng hộ", "Protection forest land", "agricultural"),
    LandUseCode("RDD", "Đất rừng đặc dụng", "Special-use forest land", "agricultural"),
    LandUseCode(
        "TSL", "Đất nuôi trồng thủy sản nước lợ, nước mặn", "Brackish and salt-water aquaculture land", "agricultural"
    ),
    LandUseCode("TSN", "Đất nuôi trồng thủy sản nước ngọt", "Freshwater aquaculture land", "agricultural"),
    LandUseCode("LMU", "Đất làm muối", "Salt-making land", "agricultural"),
    LandUseCode("ONT", "Đất ở tại nông thôn", "Rural residential land", "non_agricultural"),
    LandUseCode("ODT", "Đất ở tại đô thị", "Urban residential land", "non_agricultural"),
    LandUseCode("SKC", "Đất cơ sở sản xuất phi nông nghiệp", "Non-agricultural production land", "non_agricultural"),
    LandUseCode("SKK", "Đất khu công nghiệp", "Industrial-zone land", "non_agricultural"),
    LandUseCode("SKS", "Đất sử dụng cho hoạt động khoáng sản", "Mining land", "non_agricultural"),
    # PLACEHOLDER retired codes: codes of earlier lists still found on old parcels. Which codes were
    # really retired, and when, is UNCONFIRMED (DOMAIN §4).
    LandUseCode(
        "COC",
        "Đất cỏ dùng vào chăn nuôi",
        "Grassland for livestock",
        "agricultural",
        retired=True,
        valid_to=dt.date(2014, 12, 31),
        confirmed=False,
    ),
    LandUseCode(
        "RST",
        "Đất có rừng tự nhiên sản xuất",
        "Natural production forest land",
        "agricultural",
        retired=True,
        valid_to=dt.date(2014, 12, 31),
        confirmed=False,
    ),
    LandUseCode(
        "SKX",
        "Đất sản xuất vật liệu xây dựng, gốm sứ",
        "Building-material and ceramics production land",
        "non_agricultural",
        retired=True,
        valid_to=dt.date(2024, 7, 31),
        confirmed=False,
    ),
)
LAND_USE_BY_CODE: dict[str, LandUseCode] = {c.code: c for c in LAND_USE_CODES}
CURRENT_LAND_USE_CODES: tuple[str, ...] = tuple(c.code for c in LAND_USE_CODES if not c.retired)
RETIRED_LAND_USE_CODES: tuple[str, ...] = tuple(c.code for c in LAND_USE_CODES if c.retired)


@dataclass(frozen=True)
class AdminUnit:
    """An administrative unit as it stood between two dates (both inclusive; valid_to None = still in force)."""

    code: str
    name: str
    level: str  # "province" or "commune"
    valid_from: dt.date
    valid_to: dt.date | None
    parent_code: str | None = None
    confirmed: bool = True


@dataclass(frozen=True)
class CodeMapping:
    """A unit replaced by another from `effective` on (merger, or the 2025 reorganisation)."""

    level: str
    old_code: str
    new_code: str
    effective: dt.date
    confirmed: bool


# Provinces of DOMAIN §6 that no unit database samples, with their pre-2025 GSO codes.
_MERGER_PROVINCES: dict[str, str] = {
    "10": "Lào Cai",
    "15": "Yên Bái",
    "35": "Hà Nam",
    "36": "Nam Định",
    "37": "Ninh Bình",
}

PRE_2025_PROVINCES: tuple[AdminUnit, ...] = tuple(
    sorted(
        (
            AdminUnit(code, name, "province", OLD_TABLE_FROM, OLD_TABLE_TO)
            for code, name in {**{p.code: p.name for p in PROVINCES}, **_MERGER_PROVINCES}.items()
        ),
        key=lambda u: u.code,
    )
)

# 2025 province of each old province: (new code, new name, confirmed by DOMAIN §6). Only the
# Lào Cai / Ninh Bình merges are confirmed; the rest is a PLACEHOLDER (full list UNCONFIRMED).
_PROVINCE_2025: dict[str, tuple[str, str, bool]] = {
    "10": ("15", "Lào Cai", True),
    "15": ("15", "Lào Cai", True),
    "35": ("37", "Ninh Bình", True),
    "36": ("37", "Ninh Bình", True),
    "37": ("37", "Ninh Bình", True),
    "01": ("01", "Hà Nội", False),
    "22": ("22", "Quảng Ninh", False),
    "38": ("38", "Thanh Hóa", False),
    "40": ("40", "Nghệ An", False),
    "46": ("46", "Huế", False),
    "48": ("48", "Đà Nẵng", False),
    "56": ("56", "Khánh Hòa", False),
    "68": ("68", "Lâm Đồng", False),
    "75": ("75", "Đồng Nai", False),
    "19": ("19", "Thái Nguyên", False),
    "92": ("92", "Cần Thơ", False),
    "79": ("79", "TP. Hồ Chí Minh", False),
    "74": ("79", "TP. Hồ Chí Minh", False),
    "77": ("79", "TP. Hồ Chí Minh", False),
    "31": ("31", "Hải Phòng", False),
    "30": ("31", "Hải Phòng", False),
    "26": ("25", "Phú Thọ", False),
    "27": ("24", "Bắc Ninh", False),
}

NEW_PROVINCES: tuple[AdminUnit, ...] = tuple(
    sorted(
        {
            AdminUnit(
                new,
                name,
                "province",
                NEW_TABLE_FROM,
                None,
                confirmed=all(c for n, _, c in _PROVINCE_2025.values() if n == new),
            )
            for new, name, _ in _PROVINCE_2025.values()
        },
        key=lambda u: u.code,
    )
)

# PLACEHOLDER commune names, taken in turn; the first three of a province are wards (phường).
_COMMUNE_NAMES: tuple[str, ...] = (
    "Quang Trung",
    "Trần Phú",
    "An Bình",
    "Tân Phú",
    "Hòa Bình",
    "Minh Khai",
    "Đông Hòa",
    "Phú Lợi",
    "Tân Định",
    "Bình An",
    "Long Thạnh",
    "Hưng Đạo",
    "Thanh Xuân",
    "Vĩnh Niệm",
    "Nghĩa Hưng",
    "Xuân Lâm",
    "Đồng Tâm",
    "Phước Long",
    "Hải Thành",
    "Kim Sơn",
    "Thạch Bàn",
    "Yên Phú",
    "Cẩm Bình",
    "Lộc Hòa",
)
COMMUNES_PER_PROVINCE = 8
# The two confirmed codes: (old province, code, new name). Their old names are PLACEHOLDERS.
_CONFIRMED_WARDS: tuple[tuple[str, str, str], ...] = (
    ("35", "13285", "Phường Phủ Lý"),
    ("36", "13669", "Phường Nam Định"),
)


def _placeholder_communes(province: str) -> list[AdminUnit]:
    """A province's PLACEHOLDER communes: codes rise with the province code, as in the real table."""
    base = int(province) * 330 + 10
    units = []
    for i in range(COMMUNES_PER_PROVINCE):
        kind = "Phường" if i < 3 else "Xã"
        name = f"{kind} {_COMMUNE_NAMES[(int(province) + i) % len(_COMMUNE_NAMES)]}"
        merged = i == COMMUNES_PER_PROVINCE - 1 and int(province) % 3 == 0  # placeholder 2020 merger
        units.append(
            AdminUnit(
                f"{base + 7 * i:05d}",
                name,
                "commune",
                OLD_TABLE_FROM,
                COMMUNE_MERGER_2020 - dt.timedelta(days=1) if merged else OLD_TABLE_TO,
                parent_code=province,
                confirmed=False,
            )
        )
    return units


def _build() -> tuple[tuple[AdminUnit, ...], tuple[AdminUnit, ...], tuple[CodeMapping, ...]]:
    old: list[AdminUnit] = []
    new: list[AdminUnit] = []
    mappings: list[CodeMapping] = []
    for province in PRE_2025_PROVINCES:
        communes = _placeholder_communes(province.code)
        for old_province, code, _ in _CONFIRMED_WARDS:
            if old_province == province.code:  # the real ward joins the placeholder group it heads
                communes.insert(
                    0,
                    AdminUnit(
                        code,
                        "Phường Quang Trung",
                        "commune",
                        OLD_TABLE_FROM,
                        OLD_TABLE_TO,
                        parent_code=province.code,
                        confirmed=False,
                    ),
                )
        old.extend(communes)
        live = [c for c in communes if c.valid_to == OLD_TABLE_TO]
        for merged in (c for c in communes if c.valid_to != OLD_TABLE_TO):
            mappings.append(CodeMapping("commune", merged.code, live[-1].code, COMMUNE_MERGER_2020, False))
        new_province, _, _ = _PROVINCE_2025[province.code]
        for start in range(0, len(live), 3):  # placeholder: every three old communes make one new one
            group = live[start : start + 3]
            head = group[0]
            confirmed_name = {code: name for _, code, name in _CONFIRMED_WARDS}.get(head.code)
            new.append(
                AdminUnit(
                    head.code,
                    confirmed_name or head.name,
                    "commune",
                    NEW_TABLE_FROM,
                    None,
                    parent_code=new_province,
                    confirmed=confirmed_name is not None,
                )
            )
            mappings.extend(
                CodeMapping("commune", c.code, head.code, NEW_TABLE_FROM, confirmed_name is not None and c is head)
                for c in group
            )
    for old_code, (new_code, _, confirmed) in _PROVINCE_2025.items():
        mappings.append(CodeMapping("province", old_code, new_code, NEW_TABLE_FROM, confirmed))
    return tuple(old), tuple(new), tuple(mappings)


PRE_2025_COMMUNES, NEW_COMMUNES, CODE_MAPPINGS = _build()
ADMIN_UNITS: tuple[AdminUnit, ...] = PRE_2025_PROVINCES + NEW_PROVINCES + PRE_2025_COMMUNES + NEW_COMMUNES


def unit_valid_on(code: str, level: str, day: dt.date) -> AdminUnit | None:
    """The unit that carried `code` on `day`, or None when no unit did."""
    for unit in ADMIN_UNITS:
        if (
            unit.code == code
            and unit.level == level
            and unit.valid_from <= day
            and (unit.valid_to is None or day <= unit.valid_to)
        ):
            return unit
    return None


def map_to_2025(code: str, level: str) -> CodeMapping | None:
    """Follow an old code through earlier mergers to its post-2025 unit; `confirmed` only if every step is."""
    steps = {(m.level, m.old_code, m.effective): m for m in CODE_MAPPINGS}
    current, confirmed = code, True
    merger = steps.get((level, current, COMMUNE_MERGER_2020))
    if merger is not None:
        current, confirmed = merger.new_code, merger.confirmed
    final = steps.get((level, current, NEW_TABLE_FROM))
    if final is None:
        return None
    return CodeMapping(level, code, final.new_code, NEW_TABLE_FROM, confirmed and final.confirmed)
