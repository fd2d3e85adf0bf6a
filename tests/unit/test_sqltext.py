"""datashare.sqltext: statements composed from quoted names, for SQLite, DuckDB and SQLAlchemy dialects."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy.dialects import mysql, postgresql, sqlite

from datashare.sqltext import SQL, Identifier, Literal, quote_ident, quote_literal


def test_names_are_double_quoted_without_a_dialect() -> None:
    assert quote_ident('we"ird') == '"we""ird"'
    assert Identifier("a", "pm25").as_string() == '"a"."pm25"'
    assert SQL("SELECT {} FROM {}").format(Identifier("x"), Identifier("s", "t")).as_string() == (
        'SELECT "x" FROM "s"."t"'
    )


def test_a_dialect_quotes_only_what_it_must() -> None:
    statement = SQL("SELECT {} FROM {} src").format(Identifier("src", "order"), Identifier("stations"))
    assert statement.as_string(sqlite.dialect()) == 'SELECT src."order" FROM stations src'
    assert statement.as_string(postgresql.dialect()) == 'SELECT src."order" FROM stations src'
    assert statement.as_string(mysql.dialect()) == "SELECT src.`order` FROM stations src"


def test_literals_are_quoted_for_statements_that_take_no_parameter() -> None:
    assert quote_literal("it's") == "'it''s'"
    assert Literal("/tmp/o'brien").as_string() == "'/tmp/o''brien'"
    assert Literal(16_384).as_string() == "16384"
    with pytest.raises(ValueError, match="bound parameter"):
        Literal("a\\b").as_string(mysql.dialect())  # MySQL's escapes depend on the server: a parameter there
    with pytest.raises(TypeError):
        Literal(True)


def test_a_filled_part_is_never_read_as_a_template() -> None:
    inner = SQL("({})").format(SQL("SELECT '{}' AS braces"))
    assert inner.as_string() == "(SELECT '{}' AS braces)"
    named = SQL("{c} = {c} AND {{literal}}").format(c=Identifier("k"))
    assert named.as_string() == '"k" = "k" AND {literal}'


def test_only_composed_parts_fill_a_template() -> None:
    with pytest.raises(TypeError, match="Identifier"):
        SQL("SELECT * FROM {}").format("stations")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Identifier("")
    with pytest.raises(ValueError):
        SQL("{:>10}").format(Identifier("x"))


def test_hostile_names_stay_names() -> None:
    con = sqlite3.connect(":memory:")
    name = 'x"; DROP TABLE t; --'
    con.execute(SQL("CREATE TABLE t ({})").format(Identifier(name)).as_string())
    con.execute(SQL("INSERT INTO t ({}) VALUES (?)").format(Identifier(name)).as_string(), (1,))
    rows = con.execute(SQL("SELECT {} FROM t").format(Identifier(name)).as_string()).fetchall()
    assert rows == [(1,)]
    assert [r[1] for r in con.execute("PRAGMA table_info(t)")] == [name]
    joined = SQL(", ").join(Identifier(c) for c in ("a", "b")) + SQL(" ")
    assert joined.as_string() == '"a", "b" '
