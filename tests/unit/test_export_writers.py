"""CSV, XLSX and zip writers on tiny hostile tables: every value comes back, or the note says why not."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import zipfile
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from datashare.releases.export_writers import BOM, write_csv, write_xlsx, write_zip

HOSTILE = ['=HYPERLINK("http://x")', "+84 912 345 678", "-", "@SUM(A1)", "\tTab", "\rCR", "Hà Nội", "", None]


def _table(n_batches: int = 1) -> pa.Table:
    rows = len(HOSTILE)
    table = pa.table(
        {
            "text": pa.array(HOSTILE, pa.string()),
            "number": pa.array([1.5, -3.25, 0.1 + 0.2, 1e20, None, 0.0, -0.0, 2.5, 7.0], pa.float64()),
            "integer": pa.array([1, -5, 2**62, None, 0, 7, 8, 9, 10], pa.int64()),
            "flag": pa.array([True, False, None, True, False, True, False, True, False], pa.bool_()),
            "day": pa.array([dt.date(2024, 2, 29), None, dt.date(1, 1, 1), *[dt.date(2025, 7, 1)] * 6], pa.date32()),
            "at": pa.array(
                [dt.datetime(2024, 1, 2, 3, 4, 5), dt.datetime(2024, 1, 2, 3, 4, 5, 123456), None]
                + [dt.datetime(2026, 11, 1, 23)] * 6,
                pa.timestamp("us"),
            ),
        }
    )
    assert table.num_rows == rows
    return pa.concat_tables([table] * n_batches)


def _parquet(tmp_path: Path, table: pa.Table, parts: int = 2) -> list[Path]:
    paths = []
    step = -(-table.num_rows // parts)
    for i in range(parts):
        path = tmp_path / f"part-{i:05d}.parquet"
        pq.write_table(table.slice(i * step, step), path)
        paths.append(path)
    return paths


def test_csv_is_exact_except_the_formula_escape_it_counts(tmp_path: Path) -> None:
    table = _table()
    paths = _parquet(tmp_path, table)
    target = tmp_path / "out.csv"
    stats = write_csv(paths, target)
    raw = target.read_bytes()
    assert raw.startswith(BOM) and raw[3:].startswith(b"text,number,integer,flag,day,at\r\n")
    assert stats.rows == table.num_rows
    assert stats.formula_escaped == {"text": 6}  # =, +, -, @, tab, CR; numbers (-3.25) are never touched
    # pyarrow's reader tells null from "" (pandas cannot): both must survive, as must every other value
    back = pcsv.read_csv(
        io.BytesIO(raw[3:]),
        convert_options=pcsv.ConvertOptions(
            column_types={"text": pa.string(), "day": pa.date32(), "at": pa.timestamp("us")},
            null_values=[""],
            quoted_strings_can_be_null=False,
            strings_can_be_null=True,
        ),
    )
    expected = [("'" + v if v and v[0] in "=+-@\t\r" else v) for v in HOSTILE]
    assert back["text"].to_pylist() == expected
    for name in ("number", "integer", "flag", "day", "at"):
        assert back[name].to_pylist() == table[name].to_pylist(), name
    text = raw.decode("utf-8-sig")
    # one format per column: the column holds a fraction of a second, so every value shows six digits
    assert '"2024-01-02T03:04:05.000000"' in text and '"2024-01-02T03:04:05.123456"' in text
    assert ",2024-02-29," in text


def test_csv_reads_with_pandas_without_options(tmp_path: Path) -> None:
    import pandas as pd

    table = _table(3)
    target = tmp_path / "out.csv"
    write_csv(_parquet(tmp_path, table, parts=3), target)
    frame = pd.read_csv(target)
    assert list(frame.columns) == table.column_names  # the BOM is not glued to the first name
    assert len(frame) == table.num_rows
    integers = [v for v in table["integer"].to_pylist() if v is not None]
    assert frame["integer"].dropna().astype("int64").tolist() == integers
    assert pd.to_datetime(frame["at"]).tolist()[:2] == table["at"].to_pylist()[:2]
    assert pd.to_datetime(frame["day"]).dt.date.tolist()[:1] == table["day"].to_pylist()[:1]


def test_whole_second_timestamps_show_no_fraction(tmp_path: Path) -> None:
    path = tmp_path / "hours.parquet"
    hours = [dt.datetime(2026, 11, 1, h) for h in range(3)]
    pq.write_table(pa.table({"at": pa.array(hours, pa.timestamp("us"))}), path)
    write_csv([path], tmp_path / "hours.csv")
    lines = (tmp_path / "hours.csv").read_text(encoding="utf-8-sig").splitlines()
    assert lines == ["at", '"2026-11-01T00:00:00"', '"2026-11-01T01:00:00"', '"2026-11-01T02:00:00"']


def test_csv_of_an_empty_release_is_its_header(tmp_path: Path) -> None:
    paths = _parquet(tmp_path, _table().slice(0, 0), parts=1)
    stats = write_csv(paths, tmp_path / "empty.csv")
    assert stats.rows == 0 and (tmp_path / "empty.csv").read_bytes() == BOM + b"text,number,integer,flag,day,at\r\n"


def test_timezone_aware_timestamps_are_utc_with_z(tmp_path: Path) -> None:
    at = pa.array([dt.datetime(2026, 1, 1, 7, tzinfo=dt.UTC)], pa.timestamp("us", tz="Asia/Ho_Chi_Minh"))
    path = tmp_path / "tz.parquet"
    pq.write_table(pa.table({"at": at}), path)
    write_csv([path], tmp_path / "tz.csv")
    assert (tmp_path / "tz.csv").read_text(encoding="utf-8-sig").splitlines()[1] == '"2026-01-01T07:00:00Z"'


def _notes(book, sheet, stats) -> None:
    sheet.write_string(0, 0, f"rows {stats.rows}")


def test_xlsx_has_typed_exact_cells_and_reports_excel_limits(tmp_path: Path) -> None:
    import openpyxl

    table = _table()
    long_text = "ư" * 40_000
    table = table.set_column(0, "text", pa.array([*HOSTILE[:-1], long_text], pa.string()))
    target = tmp_path / "out.xlsx"
    created = dt.datetime(2026, 11, 1, 12)
    paths = _parquet(tmp_path, table)
    stats = write_xlsx(paths, target, sheet_name="Dữ liệu - Data", created=created, add_notes=_notes)
    assert stats.rows == table.num_rows
    assert stats.truncated == {"text": 1} and stats.as_text == {"integer": 1, "day": 1}
    assert stats.formula_escaped == {}
    book = openpyxl.load_workbook(target)
    assert book.sheetnames == ["Dữ liệu - Data", "Nguồn gốc - Provenance"]
    sheet = book["Dữ liệu - Data"]
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0] == tuple(table.column_names)
    assert sheet.freeze_panes == "A2" and sheet.auto_filter.ref == f"A1:F{table.num_rows + 1}"
    # openpyxl leaves OOXML's escape of a carriage return (_x000D_) in inline strings; Excel decodes it
    texts = [r[0].replace("_x000D_", "\r") if isinstance(r[0], str) else r[0] for r in rows[1:]]
    assert texts[:7] == HOSTILE[:7]  # formulas stay text, exactly; nothing is evaluated
    assert texts[7] == "" and len(texts[8]) == 32_767
    assert all(sheet.cell(row=r, column=1).data_type != "f" for r in range(2, table.num_rows + 2))
    assert [r[2] for r in rows[1:]] == [1, -5, str(2**62), None, 0, 7, 8, 9, 10]
    assert [r[3] for r in rows[1:]] == table["flag"].to_pylist()
    numbers = [r[1] for r in rows[1:]]
    for got, want in zip(numbers, table["number"].to_pylist(), strict=True):
        assert got == want or (want is not None and got == pytest.approx(want, rel=1e-15))
    days = [r[4] for r in rows[1:]]
    assert days[0] == dt.datetime(2024, 2, 29) and days[1] is None and days[2] == "0001-01-01"
    ats = [r[5] for r in rows[1:]]
    assert ats[0] == dt.datetime(2024, 1, 2, 3, 4, 5) and ats[1].replace(microsecond=0) == ats[0] and ats[2] is None
    assert book.properties.created == created
    widths = {c: sheet.column_dimensions[c].width for c in "ABCDEF"}
    assert all(8 <= w <= 62 for w in widths.values()) and widths["A"] > widths["D"]


def test_xlsx_is_reproducible(tmp_path: Path) -> None:
    paths = _parquet(tmp_path, _table(2))
    kwargs = {"sheet_name": "data", "created": dt.datetime(2026, 1, 1), "add_notes": _notes}
    write_xlsx(paths, tmp_path / "a.xlsx", **kwargs)
    write_xlsx(paths, tmp_path / "b.xlsx", **kwargs)
    assert (tmp_path / "a.xlsx").read_bytes() == (tmp_path / "b.xlsx").read_bytes()


def test_zip_keeps_bytes_and_is_reproducible(tmp_path: Path) -> None:
    paths = _parquet(tmp_path, _table())
    report = tmp_path / "report.html"
    report.write_text("<html>báo cáo</html>", encoding="utf-8")
    members = [("x-v1/data/" + p.name, p) for p in paths] + [("x-v1/validation/report.html", report)]
    when = dt.datetime(2026, 11, 1, 12, 30, 15)
    write_zip(members, tmp_path / "a.zip", when=when)
    write_zip(members, tmp_path / "b.zip", when=when)
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()
    with zipfile.ZipFile(tmp_path / "a.zip") as archive:
        assert archive.testzip() is None
        for name, path in members:
            info = archive.getinfo(name)
            assert info.date_time == (2026, 11, 1, 12, 30, 14)  # zip keeps even seconds
            expected = zipfile.ZIP_STORED if name.endswith(".parquet") else zipfile.ZIP_DEFLATED
            assert info.compress_type == expected
            assert hashlib.sha256(archive.read(name)).digest() == hashlib.sha256(path.read_bytes()).digest()
