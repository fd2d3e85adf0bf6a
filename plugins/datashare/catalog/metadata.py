"""Facts about a dataset that people and harvesters need besides its data: terms, rhythm, citation, notes.

- **Licence**: an SPDX id with its canonical URL, and a terms page of ours for every licence (a
  ``LicenseRef-`` licence has no other text anywhere).
- **Update frequency**: from the spec's schedule, as a concept of the EU frequency vocabulary; a
  derived dataset runs when its inputs change, so it takes the slowest input's rhythm.
- **Citation**: Decree 47/2020/NĐ-CP asks users of shared data to cite the source; the text and the
  BibTeX entry name the ministry, the owning unit, the title, the version and its URL.
- **Version notes**: what a release is, in words, from its sealed manifest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from datashare.catalog import i18n
from datashare.catalog.names import Name, Names
from datashare.spec import DatasetSpec
from datashare.store import Release

EU = "http://publications.europa.eu/resource/authority/"
FREQUENCY = EU + "frequency/"
DATA_THEME = EU + "data-theme/"


@dataclass(frozen=True)
class Licence:
    """A licence as the catalog shows it."""

    id: str
    name: Name
    url: str | None
    """Canonical URL of an SPDX licence; None for our own (``LicenseRef-``) terms."""
    summary: Name


LICENCES: dict[str, Licence] = {
    "CC-BY-4.0": Licence(
        "CC-BY-4.0",
        Name(vi="Creative Commons Ghi công 4.0 Quốc tế", en="Creative Commons Attribution 4.0 International"),
        "https://creativecommons.org/licenses/by/4.0/",
        Name(
            vi="Được sao chép, phân phối, chỉnh sửa và dùng cho mọi mục đích, kể cả thương mại, với điều kiện ghi "
            "rõ nguồn (Bộ Nông nghiệp và Môi trường và đơn vị sở hữu), dẫn giấy phép và nêu rõ các thay đổi.",
            en="You may copy, redistribute, adapt and use the data for any purpose, including commercially, "
            "provided you credit the source (the Ministry of Agriculture and Environment and the owning unit), "
            "link to the licence and indicate any changes.",
        ),
    ),
    "CC0-1.0": Licence(
        "CC0-1.0",
        Name(vi="CC0 1.0 (từ bỏ quyền)", en="CC0 1.0 Universal (public domain dedication)"),
        "https://creativecommons.org/publicdomain/zero/1.0/",
        Name(vi="Được dùng không điều kiện.", en="Use without conditions."),
    ),
    "LicenseRef-restricted-government-use": Licence(
        "LicenseRef-restricted-government-use",
        Name(vi="Sử dụng hạn chế trong cơ quan nhà nước", en="Restricted government use"),
        None,
        Name(
            vi="Dữ liệu dùng riêng (Luật Dữ liệu 2024, Điều 13): chỉ cơ quan được chỉ định trong đặc tả bộ dữ liệu "
            "được dùng, và chỉ cho nhiệm vụ quản lý nhà nước của mình. Không được công bố, bán lại hay chia sẻ "
            "tiếp cho bên thứ ba. Dữ liệu cá nhân (Nghị định 13/2023/NĐ-CP) phải được bảo vệ như nguồn đã "
            "bảo vệ; mọi lượt tải được ghi lại. Khi dùng phải trích dẫn nguồn.",
            en="Restricted data (Law on Data 2024, Art. 13): only the agencies named in the dataset's spec may use "
            "it, and only for their own state-management duties. It may not be published, resold or passed on "
            "to third parties. Personal data (Decree 13/2023/NĐ-CP) must stay protected as the source protected "
            "it; every download is recorded. Cite the source when you use it.",
        ),
    ),
}


def licence(licence_id: str) -> Licence:
    """The licence of an id; an unknown SPDX id points at the SPDX list, an unknown LicenseRef at our page."""
    known = LICENCES.get(licence_id)
    if known:
        return known
    url = None if licence_id.startswith("LicenseRef-") else f"https://spdx.org/licenses/{licence_id}.html"
    return Licence(licence_id, Name(vi=licence_id, en=licence_id), url, Name(vi="—", en="—"))


_THEMES = {
    "AGRI": Name(vi="Nông nghiệp, thủy sản, lâm nghiệp và thực phẩm", en="Agriculture, fisheries, forestry and food"),
    "ECON": Name(vi="Kinh tế và tài chính", en="Economy and finance"),
    "EDUC": Name(vi="Giáo dục, văn hóa và thể thao", en="Education, culture and sport"),
    "ENER": Name(vi="Năng lượng", en="Energy"),
    "ENVI": Name(vi="Môi trường", en="Environment"),
    "GOVE": Name(vi="Chính phủ và khu vực công", en="Government and public sector"),
    "HEAL": Name(vi="Y tế", en="Health"),
    "INTR": Name(vi="Vấn đề quốc tế", en="International issues"),
    "JUST": Name(vi="Tư pháp, hệ thống pháp luật và an toàn công cộng", en="Justice, legal system and public safety"),
    "REGI": Name(vi="Vùng và đô thị", en="Regions and cities"),
    "SOCI": Name(vi="Dân số và xã hội", en="Population and society"),
    "TECH": Name(vi="Khoa học và công nghệ", en="Science and technology"),
    "TRAN": Name(vi="Giao thông", en="Transport"),
}


def theme_name(code: str) -> Name:
    """The name of an EU data-theme code in both languages."""
    return _THEMES.get(code, Name(vi=code, en=code))


_FREQUENCIES = {
    "HOURLY": Name(vi="Hằng giờ", en="Hourly"),
    "DAILY": Name(vi="Hằng ngày", en="Daily"),
    "WEEKLY": Name(vi="Hằng tuần", en="Weekly"),
    "MONTHLY": Name(vi="Hằng tháng", en="Monthly"),
    "ANNUAL": Name(vi="Hằng năm", en="Annual"),
    "IRREG": Name(vi="Không định kỳ", en="Irregular"),
    "NEVER": Name(vi="Không cập nhật", en="Never"),
}
_RANK = ["HOURLY", "DAILY", "WEEKLY", "MONTHLY", "ANNUAL", "IRREG", "NEVER"]
_PRESETS = {"@hourly": "HOURLY", "@daily": "DAILY", "@weekly": "WEEKLY", "@monthly": "MONTHLY", "@yearly": "ANNUAL"}
_NUMBER = re.compile(r"^\d+$")


def _cron_frequency(expression: str) -> str:
    """A 5-field cron expression's rhythm: every hour, day, week, month or year; IRREG otherwise."""
    minute, hour, day, month, weekday = expression.split()
    fixed = [bool(_NUMBER.match(f)) for f in (minute, hour, day, month, weekday)]
    if fixed[0] and hour == "*" and day == month == weekday == "*":
        return "HOURLY"
    if fixed[0] and fixed[1] and day == month == "*" and weekday == "*":
        return "DAILY"
    if fixed[0] and fixed[1] and day == month == "*" and fixed[4]:
        return "WEEKLY"
    if fixed[0] and fixed[1] and fixed[2] and month == "*" and weekday == "*":
        return "MONTHLY"
    if all(fixed[:4]) and weekday == "*":
        return "ANNUAL"
    return "IRREG"


def frequency(spec: DatasetSpec, specs: dict[str, DatasetSpec], _seen: frozenset[str] = frozenset()) -> str:
    """The EU frequency code of a dataset (see the module doc)."""
    if spec.schedule is None:
        inputs = [specs[i] for i in spec.source.inputs if i in specs and i not in _seen]
        if not inputs:
            return "IRREG"
        codes = [frequency(s, specs, _seen | {spec.id}) for s in inputs]
        return max(codes, key=_RANK.index)
    if spec.schedule == "@once":
        return "NEVER"
    return _PRESETS.get(spec.schedule) or _cron_frequency(spec.schedule)


def frequency_name(code: str) -> Name:
    """The name of an EU frequency code in both languages."""
    return _FREQUENCIES.get(code, Name(vi=code, en=code))


def citation(spec: DatasetSpec, names: Names, release: Release | None, url: str, lang: i18n.Lang) -> str:
    """How to cite a dataset (version and year of the release), as Decree 47/2020/NĐ-CP asks."""
    unit = names.unit_name(spec.source.unit)
    year = release.record["committed_at"][:4] if release else "—"
    title = spec.title.vi if lang == "vi" else spec.title.en
    if lang == "vi":
        version = f", phiên bản {release.version}" if release else ""
        return f"{i18n.t('ministry', 'vi')} – {unit.vi} ({year}). {title}{version} [Bộ dữ liệu]. {url}"
    version = f", version {release.version}" if release else ""
    return f"{i18n.t('ministry', 'en')} – {unit.en} ({year}). {title}{version} [Data set]. {url}"


def _bib(value: str) -> str:
    """A BibTeX field value: braces and backslashes that would break the entry are escaped."""
    return value.replace("\\", "\\textbackslash{}").replace("{", "\\{").replace("}", "\\}")


def bibtex(spec: DatasetSpec, names: Names, release: Release | None, url: str) -> str:
    """A BibTeX ``@misc`` entry (read by every reference manager) for the dataset's release."""
    unit = names.unit_name(spec.source.unit)
    key = f"{spec.id}_v{release.version}" if release else spec.id
    fields = [
        ("author", "{" + _bib(f"{i18n.t('ministry', 'vi')} – {unit.vi}") + "}"),
        ("title", "{" + _bib(f"{spec.title.vi} / {spec.title.en}") + "}"),
        ("year", release.record["committed_at"][:4] if release else ""),
        ("version", str(release.version) if release else ""),
        ("howpublished", "{" + _bib("Danh mục dữ liệu / Data catalog") + "}"),
        ("url", url),
        ("note", "{" + _bib(f"Licence: {spec.licence}") + "}"),
    ]
    body = ",\n".join(f"  {k} = {{{v}}}" for k, v in fields if v)
    return f"@misc{{{key},\n{body}\n}}"


def version_notes(release: Release, coverage_start: str | None, coverage_end: str | None) -> Name:
    """What a release is, in a sentence per language, from its sealed manifest and its coverage."""
    ds: dict[str, Any] = release.manifest.get("datashare", {})
    validation = ds.get("validation") or {}
    quarantine = validation.get("quarantine") or {}
    rows = release.rows
    previous = (ds.get("previous") or {}).get("version")
    vi = [f"Phiên bản {release.version}: {i18n.number(rows, 'vi')} dòng"]
    en = [f"Version {release.version}: {i18n.number(rows, 'en')} rows"]
    if coverage_start and coverage_end:
        vi.append(f"dữ liệu từ {coverage_start} đến {coverage_end}")
        en.append(f"data from {coverage_start} to {coverage_end}")
    if validation:
        passed = validation.get("passed")
        evaluated = validation.get("evaluated")
        vi.append(f"đạt {passed}/{evaluated} quy tắc kiểm tra")
        en.append(f"{passed} of {evaluated} validation rules passed")
    if isinstance(quarantine, dict) and quarantine.get("rows"):
        vi.append(f"{i18n.number(int(quarantine['rows']), 'vi')} dòng lỗi bị cách ly, không công bố")
        en.append(f"{i18n.number(int(quarantine['rows']), 'en')} rows quarantined, not published")
    if previous:
        vi.append(f"kế tiếp phiên bản {previous}")
        en.append(f"follows version {previous}")
    return Name(vi="; ".join(vi) + ".", en="; ".join(en) + ".")
