"""Vietnamese and English words of the catalog, the language choice, and numbers as each language writes them.

Vietnamese is the default. ``?lang=en`` (or ``?lang=vi``) switches, and the choice is kept in the
``ds_lang`` cookie so that following a link keeps the language without JavaScript.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from datashare import display

Lang = Literal["vi", "en"]
LANGS: tuple[Lang, ...] = ("vi", "en")
DEFAULT_LANG: Lang = "vi"
LANG_COOKIE = "ds_lang"

STRINGS: dict[str, tuple[str, str]] = {
    "catalog": ("Danh mục dữ liệu", "Data catalog"),
    "ministry": ("Bộ Nông nghiệp và Môi trường", "Ministry of Agriculture and Environment"),
    "catalog_intro": (
        "Dữ liệu dùng chung, dữ liệu mở và dữ liệu dùng riêng của các đơn vị, theo từng phiên bản đã kiểm tra.",
        "Shared, open and restricted data of the units, as validated, numbered releases.",
    ),
    "datasets": ("Bộ dữ liệu", "Datasets"),
    "search": ("Tìm kiếm", "Search"),
    "search_placeholder": ("Ví dụ: bụi mịn Hà Nội 2026", "e.g. air quality Hanoi 2026"),
    "search_help": (
        "Mọi từ phải khớp; không phân biệt dấu và chữ hoa. Tìm trong tên, từ khóa, mô tả, cột, lĩnh vực, đơn vị, "
        "tỉnh (tên trước hoặc sau sắp xếp 2025) và năm của dữ liệu.",
        "Every word must match; accents and case do not matter. Searches titles, keywords, descriptions, columns, "
        "sectors, units, provinces (pre- or post-2025 names) and the years of the data.",
    ),
    "province": ("Tỉnh, thành phố", "Province"),
    "year": ("Năm", "Year"),
    "refine": ("Thu hẹp kết quả", "Refine"),
    "clear_filter": ("Bỏ lọc", "Clear filter"),
    "results_for": ("Kết quả cho", "Results for"),
    "sector": ("Lĩnh vực", "Sector"),
    "classification": ("Phân loại", "Classification"),
    "all": ("Tất cả", "All"),
    "filter": ("Lọc", "Filter"),
    "title": ("Tên", "Title"),
    "latest_version": ("Phiên bản mới nhất", "Latest version"),
    "freshness": ("Độ mới", "Freshness"),
    "quality": ("Chất lượng", "Quality"),
    "no_release": ("Chưa có phiên bản", "No release yet"),
    "no_results": ("Không có bộ dữ liệu nào phù hợp.", "No dataset matches."),
    "page": ("Trang", "Page"),
    "previous_page": ("Trang trước", "Previous page"),
    "next_page": ("Trang sau", "Next page"),
    "open": ("Dữ liệu mở", "Open data"),
    "shared": ("Dữ liệu dùng chung", "Shared data"),
    "restricted": ("Dữ liệu dùng riêng", "Restricted data"),
    "core": ("cốt lõi", "core"),
    "important": ("quan trọng", "important"),
    "other": ("khác", "other"),
    "passed": ("Đạt", "Passed"),
    "failed": ("Không đạt", "Failed"),
    "not_run": ("Chưa kiểm tra", "Not checked"),
    "fresh": ("Cập nhật", "Up to date"),
    "stale": ("Quá hạn", "Stale"),
    "ago": ("trước", "ago"),
    "description": ("Mô tả", "Description"),
    "schema": ("Cấu trúc dữ liệu", "Schema"),
    "column": ("Cột", "Column"),
    "type": ("Kiểu", "Type"),
    "nullable": ("Được trống", "Nullable"),
    "unit": ("Đơn vị đo", "Unit"),
    "personal_data": ("Dữ liệu cá nhân", "Personal data"),
    "pd_none": ("Không", "None"),
    "pd_pseudonymise": ("Thay bằng bí danh (HMAC)", "Pseudonymised (HMAC)"),
    "pd_mask": ("Che một phần", "Partly masked"),
    "pd_drop": ("Đã loại bỏ", "Removed"),
    "pd_keep": ("Giữ nguyên (chỉ dữ liệu dùng riêng)", "Kept as is (restricted data only)"),
    "key": ("Khóa", "Key"),
    "yes": ("Có", "Yes"),
    "no": ("Không", "No"),
    "releases": ("Các phiên bản", "Releases"),
    "version": ("Phiên bản", "Version"),
    "committed_at": ("Ngày phát hành", "Released"),
    "rows": ("Số dòng", "Rows"),
    "size": ("Dung lượng", "Size"),
    "files": ("Tệp", "Files"),
    "file": ("Tệp", "File"),
    "checksum": ("Mã băm SHA-256", "SHA-256 checksum"),
    "report": ("Báo cáo kiểm tra", "Validation report"),
    "manifest": ("Mô tả gói dữ liệu (datapackage.json)", "Data package (datapackage.json)"),
    "download": ("Tải về", "Download"),
    "downloads": ("Tải dữ liệu", "Downloads"),
    "sql_view": ("Khung nhìn SQL", "SQL view"),
    "sql_not_published": ("Không công bố qua SQL", "Not published over SQL"),
    "licence": ("Giấy phép", "Licence"),
    "owner_unit": ("Đơn vị sở hữu", "Owner unit"),
    "validation": ("Kết quả kiểm tra", "Validation"),
    "rules_evaluated": ("Số quy tắc đã kiểm tra", "Rules evaluated"),
    "rules_passed": ("Số quy tắc đạt", "Rules passed"),
    "rules_failed": ("Số quy tắc không đạt", "Rules failed"),
    "quarantined": ("Dòng bị cách ly", "Quarantined rows"),
    "suite": ("Bộ quy tắc", "Suite"),
    "data_interval": ("Khoảng dữ liệu", "Data interval"),
    "previous_release": ("Phiên bản trước", "Previous release"),
    # What changed between releases (datashare.catalog.release_changes)
    "changes": ("Thay đổi", "Changes"),
    "changes_since": ("Thay đổi so với phiên bản trước", "Changes since the previous release"),
    "changes_between": ("Thay đổi giữa hai phiên bản", "Changes between two releases"),
    "changes_first_release": ("Phiên bản đầu tiên: mọi dòng đều mới.", "First release: every row is new."),
    "changes_unavailable": ("Không so sánh được hai phiên bản", "The releases cannot be compared"),
    "rows_added": ("Dòng thêm mới", "Rows added"),
    "rows_removed": ("Dòng bị xóa", "Rows removed"),
    "rows_changed": ("Dòng thay đổi", "Rows changed"),
    "rows_unchanged": ("Dòng giữ nguyên", "Rows unchanged"),
    "schema_changes": ("Thay đổi cấu trúc", "Schema changes"),
    "no_schema_change": ("Không đổi cấu trúc", "No schema change"),
    "matched_by_key": ("So khớp theo khóa", "Matched by key"),
    "compared_columns": ("Các cột được so sánh", "Columns compared"),
    "see_changes": ("Xem các dòng thay đổi", "See the changed rows"),
    "change_file": ("Tệp thay đổi", "Change file"),
    "change_type": ("Loại thay đổi", "Change"),
    "first_changes": ("Các dòng thay đổi đầu tiên", "First changed rows"),
    "no_changes": ("Không có dòng nào thay đổi.", "No row changed."),
    "preview_note": (
        "Tối đa {n} dòng đầu, theo thứ tự khóa; ô đổi giá trị được tô đậm. Tải tệp thay đổi để xem tất cả.",
        "At most the first {n} rows, in key order; changed cells are highlighted. Download the change file for all.",
    ),
    "compare": ("So sánh", "Compare"),
    "from_version": ("Từ phiên bản", "From release"),
    "to_version": ("Đến phiên bản", "To release"),
    "change_file_note": (
        "Cột _change_type: insert (thêm mới), delete (xóa), update_preimage (trước khi sửa), "
        "update_postimage (sau khi sửa).",
        "Column _change_type: insert, delete, update_preimage (before), update_postimage (after).",
    ),
    "manifest_sha256": ("Mã băm của datapackage.json", "datapackage.json SHA-256"),
    "release": ("Phiên bản", "Release"),
    "back_to_dataset": ("Quay lại bộ dữ liệu", "Back to the dataset"),
    "back_to_catalog": ("Quay lại danh mục", "Back to the catalog"),
    "login": ("Đăng nhập", "Sign in"),
    "logout": ("Đăng xuất", "Sign out"),
    "token": ("Mã truy cập", "Access token"),
    "login_intro": (
        "Nhập mã truy cập do Bộ cấp cho cơ quan của bạn để xem dữ liệu dùng chung và dữ liệu dùng riêng.",
        "Enter the access token issued to your agency to see shared and restricted data.",
    ),
    "signed_in_as": ("Đang đăng nhập:", "Signed in as"),
    "anonymous": ("Khách (chỉ dữ liệu mở)", "Guest (open data only)"),
    "invalid_token": (
        "Mã truy cập không hợp lệ hoặc đã bị thu hồi.",
        "The access token is invalid or has been revoked.",
    ),
    "not_found": ("Không tìm thấy", "Not found"),
    "not_found_text": (
        "Không có bộ dữ liệu, phiên bản hoặc tệp này, hoặc bạn không có quyền xem.",
        "There is no such dataset, release or file, or you may not see it.",
    ),
    "bad_request": ("Yêu cầu không hợp lệ", "Bad request"),
    "too_many_requests": ("Quá nhiều yêu cầu", "Too many requests"),
    "unavailable": ("Tạm thời không phục vụ được", "Temporarily unavailable"),
    "unavailable_text": (
        "Không ghi nhận được lượt tải nên tệp chưa được gửi. Vui lòng thử lại sau ít phút.",
        "The download could not be recorded, so the file was not sent. Please try again in a few minutes.",
    ),
    "too_many_requests_text": (
        "Bạn đã gửi quá nhiều yêu cầu loại này trong thời gian ngắn. Vui lòng thử lại sau.",
        "You sent too many requests of this kind in a short time. Please try again later.",
    ),
    "unauthorized": ("Chưa xác thực", "Not authenticated"),
    "language": ("Ngôn ngữ", "Language"),
    "switch_lang": ("English", "Tiếng Việt"),
    "api": ("API (JSON)", "API (JSON)"),
    "dcat": ("Siêu dữ liệu DCAT-AP", "DCAT-AP metadata"),
    "hours": ("giờ", "hours"),
    "days": ("ngày", "days"),
    "minutes": ("phút", "minutes"),
    "importance": ("Mức độ quan trọng", "Importance"),
    "source_cursor": ("Con trỏ nguồn (giá trị lớn nhất đã đọc)", "Source cursor (highest value read)"),
    "contact": ("Liên hệ", "Contact"),
    "themes": ("Chủ đề (EU data themes)", "Themes (EU data themes)"),
    "frequency": ("Tần suất cập nhật", "Update frequency"),
    "temporal": ("Thời gian của dữ liệu", "Time covered"),
    "spatial": ("Phạm vi địa lý", "Places covered"),
    "from_to": ("từ {start} đến {end}", "from {start} to {end}"),
    "time_column": ("theo cột", "from column"),
    "pre_2025": ("mã trước 1/7/2025", "pre-July-2025 code"),
    "2025": ("mã từ 1/7/2025", "code from July 2025"),
    "now_part_of": ("nay thuộc", "now part of"),
    "merged_from": ("gồm", "merged from"),
    "unchanged_2025": ("giữ nguyên tên và mã từ 1/7/2025", "same name and code from July 2025"),
    "unconfirmed": ("ánh xạ chưa xác nhận", "mapping unconfirmed"),
    "cite": ("Trích dẫn bộ dữ liệu", "Cite this dataset"),
    "cite_intro": (
        "Nghị định 47/2020/NĐ-CP yêu cầu người dùng trích dẫn nguồn dữ liệu.",
        "Decree 47/2020/NĐ-CP asks users to cite the source of the data.",
    ),
    "bibtex": ("BibTeX", "BibTeX"),
    "version_notes": ("Ghi chú phiên bản", "Version notes"),
    "keywords": ("Từ khóa", "Keywords"),
    "terms": ("Điều khoản sử dụng", "Terms of use"),
    "licence_text": ("Toàn văn giấy phép", "Full licence text"),
    "datasets_under": ("Bộ dữ liệu theo giấy phép này", "Datasets under this licence"),
    "sql_view_sqlite": ("trong tệp SQLite của kho SQL", "in the SQL share's SQLite file"),
    "method_not_allowed": ("Phương thức không được hỗ trợ", "Method not allowed"),
    "none_found": ("Không có", "None"),
    "rows_unit": ("dòng", "rows"),
    "whole_release": ("Cả phiên bản trong một tệp", "The whole release in one file"),
    "parquet_files": ("Tệp Parquet (từng phần, kèm mã băm)", "Parquet files (parts, with checksums)"),
    "export_csv": ("CSV (Excel, LibreOffice, pandas)", "CSV (Excel, LibreOffice, pandas)"),
    "export_xlsx": ("Excel (XLSX)", "Excel (XLSX)"),
    "export_zip": (
        "ZIP: tệp Parquet, datapackage.json và báo cáo kiểm tra",
        "ZIP: Parquet files, datapackage.json and the validation report",
    ),
    "export_provenance": ("Nguồn gốc của tệp CSV", "Provenance of the CSV file"),
    "export_made_once": (
        "Tệp được tạo ở lần tải đầu tiên (phiên bản lớn có thể mất vài phút), sau đó được giữ lại.",
        "Made on the first download (a few minutes for a large release), then kept.",
    ),
    "xlsx_unavailable": (
        "Không có: phiên bản này nhiều dòng hơn một trang tính Excel chứa được; hãy dùng CSV hoặc Parquet.",
        "Not available: this release has more rows than an Excel sheet holds; use CSV or Parquet.",
    ),
    "xlsx_too_large": ("Quá lớn cho Excel", "Too large for Excel"),
    "xlsx_too_large_text": (
        "Một trang tính Excel không chứa được phiên bản này.",
        "An Excel sheet cannot hold this release.",
    ),
    "export_unavailable": ("Tạm thời không có", "Not available at the moment"),
    "export_unavailable_text": (
        "Không tạo được tệp này lúc này; bộ phận vận hành đã được ghi nhận lỗi.",
        "This file cannot be made at the moment; the operators have the error in their log.",
    ),
    "preview": ("Xem trước dữ liệu", "Data preview"),
    "preview_intro": ("Các dòng đầu tiên của phiên bản mới nhất", "The first rows of the latest release"),
    "null_value": ("trống", "empty"),
    "feed": ("Theo dõi (nguồn tin Atom)", "Follow (Atom feed)"),
    "feed_title": ("các phiên bản mới", "new releases"),
    "feed_subtitle": (
        "Các phiên bản dữ liệu đã kiểm tra, mới nhất trước",
        "Validated data releases, newest first",
    ),
    "feed_catalog": ("Nguồn tin Atom của danh mục", "Catalog Atom feed"),
}


def t(key: str, lang: Lang) -> str:
    """The text of ``key`` in ``lang``; an unknown key shows itself, so a gap is visible, not fatal."""
    pair = STRINGS.get(key)
    if pair is None:
        return key
    return pair[0] if lang == "vi" else pair[1]


def other(lang: Lang) -> Lang:
    """The language the switch link leads to."""
    return "en" if lang == "vi" else "vi"


def number(value: int | float | None, lang: Lang) -> str:
    """Thousands separated as each language writes them: 1.234.567 (vi), 1,234,567 (en); floats to one place."""
    return display.number(value, lang)


def size(n: int | None, lang: Lang) -> str:
    """A byte count for people: 39,2 KB (vi), 39.2 KB (en)."""
    if n is None:
        return "—"
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{number(int(value), lang)} {unit}" if unit == "B" else f"{number(value, lang)} {unit}"
        value /= 1000
    return f"{n} B"  # unreachable; keeps type checkers content


def age_hours(stamp: str | None, now: datetime | None = None) -> float | None:
    """Hours since an ISO-8601 UTC time stamp (``...Z``)."""
    if not stamp:
        return None
    then = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return max(0.0, ((now or datetime.now(UTC)) - then).total_seconds() / 3600)


def age(hours: float | None, lang: Lang) -> str:
    """An age for people: ``3 giờ trước`` / ``3 hours ago``."""
    if hours is None:
        return "—"
    if hours < 1:
        amount, unit = max(1, round(hours * 60)), "minutes"
    elif hours < 48:
        amount, unit = round(hours), "hours"
    else:
        amount, unit = round(hours / 24), "days"
    word = t(unit, lang)
    if lang == "en" and amount == 1:
        word = word.removesuffix("s")
    return f"{amount} {word} {t('ago', lang)}"


def when(stamp: str | None) -> str:
    """A commit time stamp shown as ``2026-11-26 22:44 UTC``."""
    return display.timestamp(stamp)
