"""One file per release in the formats people open (CSV, XLSX, zip), made once and kept in a cache.

A release's exports are made from its own Parquet files on first request (or ahead of time with
``datashare export``) and kept in the release store under ``_exports/<id>/v<N>/g<generator>/``,
outside the sealed release folder ``<id>/v<N>/`` (``verify`` never sees them; deleting the folder only
costs a regeneration). Releases are immutable, so a cached export never goes stale; a change to the
writers bumps :data:`GENERATOR`, which moves the cache. Each export has a record beside it
(``<file>.json``: SHA-256, size, rows, the source files' SHA-256 and what was handled specially).

| file | what |
|---|---|
| ``<id>-v<N>.csv`` | every row, UTF-8 with BOM (see :mod:`datashare.releases.export_writers`) |
| ``<id>-v<N>-provenance.txt`` | the CSV's provenance note, kept out of the CSV: pandas and Excel read it as is |
| ``<id>-v<N>.xlsx`` | one data sheet with a header row and typed cells, and a provenance sheet |
| ``<id>-v<N>.zip`` | the release's Parquet files, ``datapackage.json`` and the validation report, as stored |

Before anything is written, each source file is re-hashed against the manifest: a note that names a
file's SHA-256 is true of the bytes the export was made from. An XLSX is refused above
:func:`xlsx_row_limit` (Excel's 1,048,576 rows less the header), with a message in both languages
pointing to CSV and Parquet: splitting over sheets would make every sum, filter and pivot in Excel
silently partial.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datashare.display import number
from datashare.exceptions import ExportRefused, ReleaseError
from datashare.releases.export_writers import WriteStats, safe_sheet_text, write_csv, write_xlsx, write_zip
from datashare.store import Release, ReleaseStore, dumps
from datashare.store.backends import sha256_file

log = logging.getLogger(__name__)

PREFIX = "_exports"
GENERATOR = 1
"""Bump when a writer's output changes: cached exports of older generators are then ignored."""
EXCEL_MAX_ROWS = 1_048_576
ROW_LIMIT_ENV = "DATASHARE_XLSX_MAX_ROWS"
SCRATCH_ENV = "DATASHARE_EXPORT_SCRATCH"
FORMATS = ("csv", "xlsx", "zip", "provenance")
MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "zip": "application/zip",
    "provenance": "text/plain; charset=utf-8",
}
EXTRA_MEMBERS = ("datapackage.json", "validation/report.html", "validation/result.json")
DATA_SHEET = "Dữ liệu - Data"

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def xlsx_row_limit() -> int:
    """Most data rows an XLSX may hold: ``DATASHARE_XLSX_MAX_ROWS``, at most Excel's sheet less its header."""
    raw = os.environ.get(ROW_LIMIT_ENV, "")
    limit = int(raw) if raw.strip().isdigit() else EXCEL_MAX_ROWS - 1
    return max(0, min(limit, EXCEL_MAX_ROWS - 1))


def export_names(dataset_id: str, version: int) -> dict[str, str]:
    """The file name of each export format of a release."""
    base = f"{dataset_id}-v{version}"
    return {
        "csv": f"{base}.csv",
        "xlsx": f"{base}.xlsx",
        "zip": f"{base}.zip",
        "provenance": f"{base}-provenance.txt",
    }


def xlsx_refusal(release: Release, limit: int | None = None) -> str | None:
    """Why a release cannot be an XLSX (in Vietnamese, then English), or None when it can."""
    limit = xlsx_row_limit() if limit is None else limit
    if release.rows <= limit:
        return None
    vi_rows, vi_limit = number(release.rows, "vi"), number(limit, "vi")
    en_rows, en_limit = number(release.rows, "en"), number(limit, "en")
    return (
        f"Phiên bản v{release.version} có {vi_rows} dòng, vượt quá {vi_limit} dòng dữ liệu mà một trang tính "
        "Excel chứa được; chia ra nhiều trang tính sẽ làm sai các phép tổng, lọc và bảng tổng hợp. "
        "Hãy tải tệp CSV hoặc Parquet. / "
        f"Release v{release.version} has {en_rows} rows, more than the {en_limit} data rows an Excel "
        "sheet holds; splitting it over sheets would make sums, filters and pivots silently partial. "
        "Download the CSV or Parquet files instead."
    )


@dataclass(frozen=True)
class Export:
    """A generated file in the cache, ready to be served."""

    dataset_id: str
    version: int
    fmt: str
    filename: str
    key: str
    sha256: str
    bytes: int
    media_type: str


def _lock(key: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(key, threading.Lock())


def _created(release: Release) -> dt.datetime:
    """The release's commit time: the only time written into an export, so its bytes are reproducible."""
    stamp = str(release.record["committed_at"]).replace("Z", "+00:00")
    return dt.datetime.fromisoformat(stamp).astimezone(dt.UTC).replace(tzinfo=None)


class Exporter:
    """Makes and caches the exports of releases in one store."""

    def __init__(self, store: ReleaseStore, *, scratch: Path | None = None) -> None:
        self.store = store
        self.backend = store.backend
        env_scratch = os.environ.get(SCRATCH_ENV)
        self.scratch = scratch or (Path(env_scratch) if env_scratch else None)

    def key(self, release: Release, filename: str) -> str:
        """Where an export of a release is cached in the store."""
        return f"{PREFIX}/{release.dataset_id}/v{release.version}/g{GENERATOR}/{filename}"

    def cached(self, release: Release, fmt: str) -> Export | None:
        """The cached export if present and whole (its size matches its record), else None."""
        filename = export_names(release.dataset_id, release.version)[fmt]
        key = self.key(release, filename)
        try:
            meta = json.loads(self.backend.get_bytes(f"{key}.json"))
            if not self.backend.exists(key) or self.backend.size(key) != meta["bytes"]:
                return None
        except (ReleaseError, ValueError, KeyError):
            return None
        return Export(
            release.dataset_id, release.version, fmt, filename, key, meta["sha256"], meta["bytes"], MEDIA_TYPES[fmt]
        )

    def get(self, release: Release, fmt: str) -> Export:
        """The export of ``release`` in ``fmt``, made now if not cached; :class:`ExportRefused` for an XLSX too big."""
        if fmt not in FORMATS:
            raise ExportRefused(f"unknown export format {fmt!r}; one of {', '.join(FORMATS)}")
        if fmt == "xlsx" and (why := xlsx_refusal(release)):
            raise ExportRefused(why)
        found = self.cached(release, fmt)
        if found is not None:
            return found
        made = "csv" if fmt == "provenance" else fmt  # the CSV's note is made with the CSV
        with _lock(self.key(release, made)):
            found = self.cached(release, fmt)
            if found is None:
                self._make(release, made)
                found = self.cached(release, fmt)
        if found is None:
            raise ReleaseError(f"{release.dataset_id} v{release.version}: the {fmt} export vanished after it was made")
        return found

    # -- making ---------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _sources(self, release: Release, names: list[str], folder: Path) -> Iterator[dict[str, Path]]:
        """Local paths of release files, copied when the store is remote; data files checked against the manifest."""
        digests = {f["path"]: f["sha256"] for f in release.files}
        out: dict[str, Path] = {}
        for name in names:
            key = f"{release.prefix}/{name}"
            local = self.backend.local_path(key)
            if local is None:
                local = folder / "sources" / name
                local.parent.mkdir(parents=True, exist_ok=True)
                self.backend.download(key, local)
            expected = digests.get(name)
            if expected is not None and sha256_file(local) != expected:
                raise ReleaseError(
                    f"{release.dataset_id} v{release.version}: {name} does not match its SHA-256 in the manifest; "
                    "no export is made from it (run `datashare verify`)"
                )
            out[name] = local
        yield out

    def _store(self, release: Release, filename: str, path: Path, meta: dict[str, Any]) -> None:
        key = self.key(release, filename)
        meta = {
            **meta,
            "file": filename,
            "sha256": sha256_file(path),
            "bytes": path.stat().st_size,
            "generator": GENERATOR,
            "dataset_id": release.dataset_id,
            "version": release.version,
            "manifest_sha256": release.record["manifest_sha256"],
            "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        }
        self.backend.put_file(key, path)
        self.backend.put_bytes(f"{key}.json", dumps(meta))  # written last: its presence means the file is whole

    def _make(self, release: Release, fmt: str) -> None:
        names = export_names(release.dataset_id, release.version)
        started = dt.datetime.now(dt.UTC)
        with tempfile.TemporaryDirectory(prefix="datashare-export-", dir=self.scratch) as tmp:
            folder = Path(tmp)
            data_names = [f["path"] for f in release.files]
            if fmt == "zip":
                extras = [n for n in EXTRA_MEMBERS if self.backend.exists(f"{release.prefix}/{n}")]
                with self._sources(release, data_names + extras, folder) as local:
                    top = f"{release.dataset_id}-v{release.version}"
                    members = [(f"{top}/{name}", path) for name, path in local.items()]
                    target = folder / names["zip"]
                    write_zip(members, target, when=_created(release))
                self._store(release, names["zip"], target, {"rows": release.rows, "members": [m for m, _ in members]})
            else:
                with self._sources(release, data_names, folder) as local:
                    paths = [local[n] for n in data_names]
                    target = folder / names[fmt]
                    if fmt == "csv":
                        stats = write_csv(paths, target)
                    else:
                        stats = write_xlsx(
                            paths,
                            target,
                            sheet_name=DATA_SHEET,
                            created=_created(release),
                            add_notes=lambda book, sheet, s: _notes_sheet(book, sheet, release, s, names["xlsx"]),
                        )
                self._check_rows(release, stats)
                meta = {"rows": stats.rows, "handled": _handled(stats)}
                if fmt == "csv":
                    note = folder / names["provenance"]
                    note.write_text(provenance_text(release, stats, names["csv"]), encoding="utf-8")
                    self._store(release, names["provenance"], note, meta)
                self._store(release, names[fmt], target, meta)
        seconds = (dt.datetime.now(dt.UTC) - started).total_seconds()
        log.info("Made the %s export of %s v%s in %.1f s", fmt, release.dataset_id, release.version, seconds)

    @staticmethod
    def _check_rows(release: Release, stats: WriteStats) -> None:
        if stats.rows != release.rows:
            raise ReleaseError(
                f"{release.dataset_id} v{release.version}: the export holds {stats.rows} rows, "
                f"the manifest says {release.rows}"
            )


def _handled(stats: WriteStats) -> dict[str, dict[str, int]]:
    return {
        "formula_escaped": stats.formula_escaped,
        "truncated": stats.truncated,
        "as_text": stats.as_text,
        "errors": stats.errors,
    }


# -- provenance ---------------------------------------------------------------------------------------


def _fields(release: Release) -> list[dict[str, Any]]:
    resources = release.manifest.get("resources") or [{}]
    return list((resources[0].get("schema") or {}).get("fields") or [])


def provenance_rows(release: Release, stats: WriteStats, filename: str) -> list[list[str]]:
    """The provenance note as rows of cells: the CSV's sidecar and the XLSX's second sheet say the same."""
    ds = release.manifest["datashare"]
    title = ds.get("title") or {}
    licences = release.manifest.get("licenses") or [{}]
    rows: list[list[str]] = [
        ["Nguồn gốc của tệp / Provenance of this file"],
        [],
        ["Tệp / File", filename],
        ["Bộ dữ liệu / Dataset", f"{title.get('vi', '')} / {title.get('en', '')}", release.dataset_id],
        ["Phiên bản / Release", f"v{release.version}"],
        ["Phát hành lúc (UTC) / Released at (UTC)", str(release.record["committed_at"])],
        ["Số dòng / Rows", str(release.rows)],
        ["Giấy phép / Licence", str(licences[0].get("name", ""))],
        ["SHA-256 của datapackage.json / datapackage.json SHA-256", str(release.record["manifest_sha256"])],
        [],
        ["Tạo từ các tệp Parquet (SHA-256 đã kiểm tra) / Made from the Parquet files (SHA-256 checked)"],
        ["Tệp / File", "Số dòng / Rows", "Byte / Bytes", "SHA-256"],
    ]
    rows += [[f["path"], str(f["rows"]), str(f["bytes"]), f["sha256"]] for f in release.files]
    rows += [[], ["Cột / Columns"], ["Tên / Name", "Kiểu / Type", "Đơn vị / Unit", "Mô tả", "Description"]]
    rows += [
        [
            str(f.get("name", "")),
            str(f.get("type", "")),
            str(f.get("unit", "")),
            str(f.get("description", "")),
            str(f.get("title", "")),
        ]
        for f in _fields(release)
    ]
    rows += [[], ["Ghi chú / Notes"]]
    rows += [[line] for line in _notes(stats, filename)]
    return [[safe_sheet_text(cell) for cell in row] for row in rows]


def _notes(stats: WriteStats, filename: str) -> list[str]:
    notes: list[str] = []
    for column, n in sorted(stats.formula_escaped.items()):
        notes.append(
            f"Cột {column}: {n} giá trị bắt đầu bằng =, +, -, @, tab hoặc CR được thêm dấu ' ở đầu để Excel không chạy "
            f"chúng như công thức; giá trị gốc nằm trong tệp Parquet và XLSX. / Column {column}: {n} values starting "
            "with =, +, -, @, tab or CR were given a leading ' so that Excel does not run them as formulas; the exact "
            "values are in the Parquet and XLSX files."
        )
    for column, n in sorted(stats.truncated.items()):
        notes.append(
            f"Cột {column}: {n} giá trị dài hơn 32.767 ký tự bị Excel cắt bớt; giá trị đầy đủ nằm trong tệp CSV và "
            f"Parquet. / Column {column}: {n} values longer than Excel's 32,767 characters are cut; the full values "
            "are in the CSV and Parquet files."
        )
    for column, n in sorted(stats.as_text.items()):
        notes.append(
            f"Cột {column}: {n} giá trị (số nguyên vượt ±2^53 hoặc ngày trước năm 1900) được ghi dạng văn bản để giữ "
            f"nguyên. / Column {column}: {n} values (integers beyond ±2^53 or dates before 1900) are written as text "
            "to stay exact."
        )
    for column, n in sorted(stats.errors.items()):
        notes.append(
            f"Cột {column}: {n} giá trị NaN hoặc vô cực được ghi là lỗi Excel (#NUM!, #DIV/0!). / Column {column}: "
            f"{n} NaN or infinite values are written as Excel errors (#NUM!, #DIV/0!)."
        )
    if not notes:
        notes.append("Không giá trị nào bị thay đổi. / No value was changed.")
    if filename.endswith(".csv"):
        notes.append(
            'CSV: UTF-8 có BOM, dấu phẩy, dòng đầu là tên cột; ô trống là giá trị rỗng (null), "" là chuỗi rỗng; '
            "ngày YYYY-MM-DD, thời điểm YYYY-MM-DDTHH:MM:SS theo múi giờ ghi trong mô tả cột. Excel đổi các mã có "
            "số 0 ở đầu (01) thành số: hãy mở tệp XLSX. / CSV: UTF-8 with BOM, comma-separated, first line the "
            'column names; an empty field is null, "" an empty string; dates YYYY-MM-DD, timestamps '
            "YYYY-MM-DDTHH:MM:SS in the time zone the column description gives. Excel turns codes with leading "
            "zeros (01) into numbers: open the XLSX instead."
        )
    return notes


def provenance_text(release: Release, stats: WriteStats, filename: str) -> str:
    """The provenance note as text, cells separated by two spaces."""
    rows = provenance_rows(release, stats, filename)
    return "\n".join("  ".join(row).rstrip() for row in rows) + "\n"


def _notes_sheet(workbook: Any, sheet: Any, release: Release, stats: WriteStats, filename: str) -> None:
    bold = workbook.add_format({"bold": True})
    sheet.set_column(0, 0, 48)
    sheet.set_column(1, 1, 40)
    sheet.set_column(2, 4, 30)
    for r, row in enumerate(provenance_rows(release, stats, filename)):
        for c, cell in enumerate(row):
            sheet.write_string(r, c, cell, bold if (c == 0 and len(row) == 1) else None)


def copy_to(export: Export, store: ReleaseStore, target: Path) -> Path:
    """Copy a cached export to a local file (the CLI's ``export --output``)."""
    local = store.backend.local_path(export.key)
    if local is not None:
        shutil.copyfile(local, target)
    else:
        store.backend.download(export.key, target)
    return target
