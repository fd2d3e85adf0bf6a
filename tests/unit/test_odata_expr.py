"""The OData expression language on its own: parsing, typing, limits, and its SQL with OData's null rules.

The SQL is run by DuckDB over a small in-memory table holding nulls, and compared with the same
predicates evaluated in Python by the specification's rules; literals must only ever appear as
parameters.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from datashare.catalog.odata.errors import ODataError
from datashare.catalog.odata.expr import datetime_offset, parse_filter, parse_orderby
from datashare.catalog.odata.model import EntityModel, Property
from datashare.catalog.odata.options import QueryOptions, SkipToken, decode_skiptoken, encode_skiptoken
from datashare.catalog.odata.sql import after, order_by, where

MODEL = EntityModel(
    name="t",
    version=1,
    properties=(
        Property("id", "Edm.Int64", False, "khóa", "key"),
        Property("name", "Edm.String", True, "tên", "name"),
        Property("x", "Edm.Double", True, "giá trị", "value"),
        Property("at", "Edm.DateTimeOffset", True, "thời điểm", "when"),
        Property("day", "Edm.Date", True, "ngày", "day"),
        Property("ok", "Edm.Boolean", True, "đạt", "passed"),
    ),
    key=("id",),
    title_vi="Bảng",
    title_en="Table",
    description_vi="",
    description_en="",
)
ROWS: list[dict[str, Any]] = [
    {"id": 1, "name": "Hà Nội", "x": 10.0, "at": dt.datetime(2026, 11, 1, 7), "day": dt.date(2026, 11, 1), "ok": True},
    {"id": 2, "name": None, "x": None, "at": None, "day": None, "ok": None},
    {
        "id": 3,
        "name": "Huế",
        "x": 60.5,
        "at": dt.datetime(2026, 11, 2, 23, 30),
        "day": dt.date(2026, 11, 2),
        "ok": False,
    },
    {"id": 4, "name": "O'Brien", "x": 50.0, "at": dt.datetime(2026, 12, 31, 0, 0, 0, 250000), "day": None, "ok": True},
]


def _run(text: str) -> list[int]:
    import duckdb
    import pyarrow as pa

    table = pa.Table.from_pylist(ROWS)
    con = duckdb.connect()
    con.register("t", table)
    sql, params = where(parse_filter(text, MODEL))
    return [r[0] for r in con.execute(f"SELECT id FROM t WHERE {sql} ORDER BY id", params).fetchall()]


def gt(a: Any, b: Any) -> bool:
    return a is not None and b is not None and a > b


CASES = [
    ("x gt 20", lambda r: gt(r["x"], 20)),
    ("not (x gt 20)", lambda r: not gt(r["x"], 20)),
    ("not (x le 20)", lambda r: not (r["x"] is not None and r["x"] <= 20)),
    ("x eq 10", lambda r: r["x"] == 10),
    ("not (x eq 10)", lambda r: r["x"] != 10),
    ("x ne 10", lambda r: r["x"] != 10),
    ("x eq null", lambda r: r["x"] is None),
    ("null eq x", lambda r: r["x"] is None),
    ("not (x ne null)", lambda r: r["x"] is None),
    ("x in (10, 50, null)", lambda r: r["x"] in (10, 50, None)),
    ("not (x in (10, 50))", lambda r: r["x"] not in (10, 50)),
    ("name eq 'O''Brien'", lambda r: r["name"] == "O'Brien"),
    ("contains(name,'u')", lambda r: r["name"] is not None and "u" in r["name"]),
    ("not contains(name,'u')", lambda r: r["name"] is not None and "u" not in r["name"]),
    ("ok", lambda r: r["ok"] is True),
    ("not ok", lambda r: r["ok"] is False),
    ("ok eq false", lambda r: r["ok"] is False),
    ("ok ne true", lambda r: r["ok"] is not True),
    ("year(at) eq 2026 and month(at) eq 11", lambda r: r["at"] is not None and r["at"].month == 11),
    ("at lt 2026-11-02T00:00:00Z", lambda r: gt(dt.datetime(2026, 11, 2, 7), r["at"])),
    ("at ge 2026-11-02T16:30:00Z", lambda r: gt(r["at"], dt.datetime(2026, 11, 2, 23, 29))),
    ("fractionalseconds(at) gt 0", lambda r: r["at"] is not None and r["at"].microsecond > 0),
    ("day eq 2026-11-02 or x gt 55", lambda r: r["day"] == dt.date(2026, 11, 2) or gt(r["x"], 55)),
    ("date(at) eq day", lambda r: (r["at"].date() if r["at"] else None) == r["day"]),  # null eq null is true
    ("length(name) eq 3", lambda r: r["name"] is not None and len(r["name"]) == 3),
    ("indexof(name,'N') eq 3", lambda r: r["name"] is not None and r["name"].find("N") == 3),
    ("substring(name,1) eq 'uế'", lambda r: r["name"] is not None and r["name"][1:] == "uế"),
    ("concat(name,'!') eq 'Huế!'", lambda r: r["name"] == "Huế"),
    ("round(x) eq 61", lambda r: r["x"] is not None and round(r["x"] + 0.0) in (60, 61) and r["x"] > 60),
    ("id eq 1 or id eq 4 and x eq 50", lambda r: r["id"] == 1 or (r["id"] == 4 and r["x"] == 50)),
    ("(id eq 1 or id eq 4) and x eq 50", lambda r: r["id"] in (1, 4) and r["x"] == 50),
]


@pytest.mark.parametrize("text,predicate", CASES, ids=[c[0] for c in CASES])
def test_sql_follows_odata_rules(text: str, predicate: Any) -> None:
    assert _run(text) == [r["id"] for r in ROWS if predicate(r)]


def test_literals_are_parameters_never_sql_text() -> None:
    hostile = "x'); DROP TABLE t; --"
    sql, params = where(
        parse_filter(f"name eq '{hostile.replace(chr(39), chr(39) * 2)}' or contains(name,'--')", MODEL)
    )
    assert hostile in params and "--" in params
    assert "DROP" not in sql and "--" not in sql and "'" not in sql.replace("CAST(? AS", "")
    assert _run(f"name eq '{hostile.replace(chr(39), chr(39) * 2)}'") == []


@pytest.mark.parametrize(
    "text,status,fragment",
    [
        ("", 400, "empty"),
        ("nope eq 1", 400, "'nope' is not a property of t"),
        ("x eq 'a'", 400, "cannot compare Edm.Double with Edm.String"),
        ("at eq 2026-11-01", 400, "date(property)"),
        ("at eq 2026-11-01T00:00", 400, "needs an offset"),
        ("not x gt 1", 400, "not binds tighter"),
        ("x gt 1 and", 400, "ends too early"),
        ("name", 400, "not Edm.Boolean"),
        ("contains(name)", 400, "takes 2 argument"),
        ("year(name) eq 1", 400, "must be Edm.Date or Edm.DateTimeOffset"),
        ("frob(x) eq 1", 400, "unknown function frob()"),
        ("x eq 1 ~", 400, "unexpected character"),
        ("id gt 9223372036854775808", 400, "Edm.Int64 range"),
        ("at eq 2026-02-30T00:00:00Z", 400, "not a valid date-time"),
        ("at eq 2026-11-01T00:00:00.1234567Z", 400, "more precise than a microsecond"),
        ("x mul 2 gt 1", 501, "arithmetic"),
        ("x/y eq 1", 501, "navigation"),
        ("isof(x,Edm.Double)", 501, "isof()"),
        ("$it/x eq 1", 501, "$it"),
        ("id eq 01234567-89ab-cdef-0123-456789abcdef", 501, "Guid"),
        ("at eq 12:00:00", 501, "TimeOfDay"),
        ("(" * 51 + "ok" + ")" * 51, 400, "nested more than 50"),
        ("x in (" + ",".join(["1"] * 501) + ")", 400, "at most 500"),
        ("ok or " * 1001 + "ok", 400, "more than 2000 tokens"),
        ("name eq '" + "a" * 8000 + "'", 400, "longer than 8000"),
    ],
)
def test_refusals_name_the_fault(text: str, status: int, fragment: str) -> None:
    with pytest.raises(ODataError) as info:
        parse_filter(text, MODEL)
    assert info.value.status == status
    assert fragment in info.value.message
    assert info.value.body()["error"]["code"] == ("BadRequest" if status == 400 else "NotImplemented")


def test_datetime_offsets_become_vietnam_time() -> None:
    assert datetime_offset("2026-11-01T00:00:00Z") == dt.datetime(2026, 11, 1, 7)
    assert datetime_offset("2026-11-01T10:00:00+05:00") == dt.datetime(2026, 11, 1, 12)
    assert datetime_offset("2026-11-01T10:00 07:00") == dt.datetime(2026, 11, 1, 10)  # an unencoded '+'
    assert datetime_offset("2026-11-01T10:00:00.123456000-01:00") == dt.datetime(2026, 11, 1, 18, 0, 0, 123456)


def test_orderby_and_keyset_paging_visit_every_row_once() -> None:
    import duckdb
    import pyarrow as pa

    rows = [{"id": i, "name": None if i % 3 == 0 else f"n{i % 4}", "x": float(i % 5)} for i in range(1, 41)]
    con = duckdb.connect()
    con.register("t", pa.Table.from_pylist([{**r, "$row": r["id"]} for r in rows]))
    model = EntityModel("t", 1, MODEL.properties[:3], ("id",), "", "", "", "")
    for text in ("name desc,x", "x,name", "name", "x desc,name desc"):
        items = parse_orderby(text, model)
        seen: list[int] = []
        last: list[Any] | None = None
        last_row = -1
        while True:
            condition, params = ("TRUE", []) if last is None else after(items, last, last_row)
            columns = ", ".join(f'"{i.prop.name}"' for i in items)
            page = con.execute(
                f'SELECT id, "$row", {columns} FROM t WHERE {condition} ORDER BY {order_by(items)} LIMIT 7', params
            ).fetchall()
            if not page:
                break
            seen += [p[0] for p in page]
            last, last_row = list(page[-1][2:]), page[-1][1]
        whole = [r[0] for r in con.execute(f"SELECT id FROM t ORDER BY {order_by(items)}").fetchall()]
        assert seen == whole and sorted(seen) == list(range(1, 41)), text


def test_skiptoken_round_trip_and_tampering() -> None:
    options = QueryOptions(raw={"orderby": "at desc,name"}, orderby=parse_orderby("at desc,name", MODEL))
    token = SkipToken(1, options.digest(), [dt.datetime(2026, 1, 2, 3, 4, 5, 6), None], 41, 100)
    decoded = decode_skiptoken(encode_skiptoken(token), options, MODEL)
    assert decoded == token
    other = QueryOptions(raw={"orderby": "name"}, orderby=parse_orderby("name", MODEL))
    for text in (encode_skiptoken(token)[:-3], "!!!", encode_skiptoken(token) + "x" * 9000):
        with pytest.raises(ODataError):
            decode_skiptoken(text, options, MODEL)
    with pytest.raises(ODataError):
        decode_skiptoken(encode_skiptoken(token), other, MODEL)
    wrong_type = SkipToken(1, options.digest(), ["not a time", None], 41, 100)
    with pytest.raises(ODataError):
        decode_skiptoken(encode_skiptoken(wrong_type), options, MODEL)


def test_engine_renders_odata_json_and_reads_only_its_folder(tmp_path: Any) -> None:
    import json

    import duckdb

    from datashare.catalog.odata.engine import Engine, PageStream

    root = tmp_path / "cache"
    (root / ".spill").mkdir(parents=True)
    inside, outside = root / "t" / "v1.parquet", tmp_path / "elsewhere.parquet"
    inside.parent.mkdir()
    rows = """VALUES (1, 'Hà Nội', 'nan'::DOUBLE, TIMESTAMP '2026-11-01 07:00:00', DATE '2026-11-01', true, 0),
                     (2, NULL, 'inf'::DOUBLE, TIMESTAMP '2026-11-01 07:00:00.25', NULL, NULL, 1),
                     (3, 'a"b\\c', '-inf'::DOUBLE, NULL, NULL, false, 2),
                     (9007199254740993, 'x', 0.1, NULL, NULL, NULL, 3)"""
    for target in (inside, outside):
        duckdb.execute(
            f'COPY (SELECT * FROM ({rows}) t("id", "name", "x", "at", "day", "ok", "$row")) '
            f"TO '{target}' (FORMAT parquet)"
        )
    engine = Engine(root, memory_limit="128MB", threads=1)
    options = QueryOptions()
    text = b"".join(PageStream(engine, inside, MODEL, options, 10, ieee754=True).rows())
    got = json.loads(b"[" + text + b"]")
    assert [r["x"] for r in got] == ["NaN", "INF", "-INF", 0.1]
    assert [r["at"] for r in got] == ["2026-11-01T07:00:00+07:00", "2026-11-01T07:00:00.250000+07:00", None, None]
    assert got[0]["name"] == "Hà Nội" and got[2]["name"] == 'a"b\\c' and got[0]["day"] == "2026-11-01"
    assert got[3]["id"] == "9007199254740993"  # IEEE754Compatible: Int64 as a string, exact
    plain = json.loads(b"[" + b"".join(PageStream(engine, inside, MODEL, options, 10, ieee754=False).rows()) + b"]")
    assert plain[3]["id"] == 9007199254740993 and plain[0]["ok"] is True
    # doubles are totally ordered, as $orderby orders them: NaN above INF, and equal to itself
    assert engine.count(inside, QueryOptions(filter=parse_filter("x gt 0", MODEL))) == 3
    assert engine.count(inside, QueryOptions(filter=parse_filter("x eq NaN or x eq -INF", MODEL))) == 2
    with pytest.raises(duckdb.Error):
        engine.count(outside, options)  # the query database reads nothing outside the cache folder


PAGING_SCRIPT = r"""
import json, resource, sys
from pathlib import Path
import duckdb
from datashare.catalog.odata.engine import Engine, PageStream
from datashare.catalog.odata.model import EntityModel, Property
from datashare.catalog.odata.options import QueryOptions, SkipToken

root, rows = Path(sys.argv[1]), int(sys.argv[2])
(root / ".spill").mkdir(parents=True)
(root / "t").mkdir()
path = root / "t" / "v1.parquet"
duckdb.execute(
    f"COPY (SELECT i AS id, 'trạm ' || (i % 97) AS name, i * 0.5 AS x, i AS \"$row\" FROM range({rows}) r(i)) "
    f"TO '{path}' (FORMAT parquet, ROW_GROUP_SIZE 16384)"
)
model = EntityModel("t", 1, (Property("id", "Edm.Int64", False, "", ""), Property("name", "Edm.String", True, "", ""),
                             Property("x", "Edm.Double", True, "", "")), ("id",), "", "", "", "")
engine = Engine(root, memory_limit="256MB", threads=2)
token, seen, expected_next, peaks = None, 0, 0, {}
while True:
    options = QueryOptions(skiptoken=token)
    stream = PageStream(engine, path, model, options, 20000, ieee754=False)
    ids = [r["id"] for r in json.loads(b"[" + b"".join(stream.rows()) + b"]")]
    if ids != list(range(expected_next, expected_next + len(ids))):
        print(json.dumps({"error": f"out of order after {seen}"})); sys.exit(1)
    seen += len(ids); expected_next += len(ids)
    if seen >= rows // 10 and "tenth" not in peaks:
        peaks["tenth"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if not stream.end.more:
        break
    token = SkipToken(1, "", [], stream.end.last_row, seen)
peaks["end"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"rows": seen, **peaks}))
"""


def test_paging_a_large_copy_is_in_order_and_flat_in_memory(tmp_path: Any) -> None:
    """400 k rows in 16 k-row groups, read page after page with two threads: every row once, in order; the
    process's peak memory after all of them is within 32 MiB of its peak after the first tenth."""
    import json
    import subprocess
    import sys

    rows = 400_000
    out = subprocess.run(
        [sys.executable, "-c", PAGING_SCRIPT, str(tmp_path / "cache"), str(rows)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["rows"] == rows
    assert (result["end"] - result["tenth"]) / 1024 < 32, result


def test_cache_keeps_to_its_budget_least_recently_used_first(tmp_path: Any) -> None:
    import os

    from datashare.catalog.odata.cache import QueryCache

    cache = QueryCache(tmp_path, max_bytes=2500, memory_limit="64MB", threads=1)
    files = []
    for i, name in enumerate(("old", "used", "new")):
        path = tmp_path / "ds" / f"{name}.parquet"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"x" * 1000)
        os.utime(path, (1000 + i, 1000 + i))
        files.append(path)
    os.utime(files[1], (5000, 5000))  # read recently
    cache._evict(keep=files[2])
    assert [p.exists() for p in files] == [False, True, True]
    cache._evict(keep=files[2])  # within budget now: nothing more goes
    assert files[1].exists()
