"""SQL statements composed from quoted names, for the databases ``psycopg.sql`` does not serve.

PostgreSQL statements run through psycopg and are composed with ``psycopg.sql``. SQLite (the embedded
SQL share), DuckDB (change files, the OData cache, validation over Parquet) and sources read through
SQLAlchemy use this module, which has the same shape:

* a statement's text is a :class:`SQL` template whose ``{}`` placeholders are filled, once, by
  :meth:`SQL.format`; a filled-in part is never read as a template again;
* a name (table, view, column, alias; dotted with several parts) enters only as an :class:`Identifier`,
  quoted when the statement is rendered;
* a constant enters as a :class:`Literal` only where SQLite or DuckDB take no parameter (DuckDB's
  ``CREATE VIEW``, ``COPY ... TO``, ``SET``); every value a statement compares with stays a bound
  parameter of the driver (``?``, ``:name``);
* :class:`SQL` is for constant text, and for SQL text that holds nothing a caller typed: a type name
  the database itself reported, the OData translator's output (names from the model, literals bound),
  a source query the spec's author wrote. It is never built from names by hand.

:meth:`Composable.as_string` renders a statement. Without a dialect, names are always double-quoted
(SQLite and DuckDB quote as the SQL standard does); with a SQLAlchemy dialect, its
``identifier_preparer`` quotes them (only when needed, with backticks on MySQL), so a statement read
from a source keeps the text SQLAlchemy itself would give it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from string import Formatter
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.engine import Dialect

__all__ = ["SQL", "Composable", "Composed", "Identifier", "Literal", "quote_ident", "quote_literal"]


def quote_ident(name: str) -> str:
    """``name`` as a double-quoted identifier (inner double quotes doubled): SQLite, DuckDB, PostgreSQL."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"an SQL identifier is a non-empty string, not {name!r}")
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    """``text`` as a standard SQL string literal (inner single quotes doubled): SQLite, DuckDB."""
    return "'" + text.replace("'", "''") + "'"


class Composable:
    """A piece of a statement: rendered only through :meth:`as_string`."""

    def as_string(self, dialect: Dialect | None = None) -> str:
        """The SQL text; names quoted by ``dialect`` (a SQLAlchemy dialect), or double-quoted without one."""
        raise NotImplementedError

    def __add__(self, other: Composable) -> Composed:
        if not isinstance(other, Composable):
            return NotImplemented
        return Composed([self, other])


class Composed(Composable):
    """A sequence of pieces rendered one after the other."""

    def __init__(self, parts: Sequence[Composable]) -> None:
        for part in parts:
            _check_part(part)
        self._parts = list(parts)

    def as_string(self, dialect: Dialect | None = None) -> str:
        return "".join(part.as_string(dialect) for part in self._parts)

    def __repr__(self) -> str:
        return f"Composed({self._parts!r})"


class SQL(Composable):
    """SQL text taken as it is (see the module's docstring for what may be)."""

    def __init__(self, text: str) -> None:
        if not isinstance(text, str):
            raise TypeError(f"SQL takes text, not {type(text).__name__}")
        self._text = text

    def as_string(self, dialect: Dialect | None = None) -> str:
        return self._text

    def format(self, *args: Composable, **kwargs: Composable) -> Composed:
        """Fill the template's ``{}``, ``{0}`` or ``{name}`` placeholders (``{{`` and ``}}`` are braces)."""
        parts: list[Composable] = []
        auto = 0
        for text, field, spec, conversion in Formatter().parse(self._text):
            if text:
                parts.append(SQL(text))
            if field is None:
                continue
            if spec or conversion:
                raise ValueError(f"SQL placeholders take no format spec or conversion: {self._text!r}")
            if field == "":
                part: Composable = args[auto]
                auto += 1
            elif field.isdigit():
                part = args[int(field)]
            else:
                part = kwargs[field]
            parts.append(_check_part(part))
        return Composed(parts)

    def join(self, parts: Iterable[Composable]) -> Composed:
        """The pieces with this text between each two (``SQL(", ").join(...)``)."""
        joined: list[Composable] = []
        for part in parts:
            if joined:
                joined.append(self)
            joined.append(_check_part(part))
        return Composed(joined)

    def __repr__(self) -> str:
        return f"SQL({self._text!r})"


class Identifier(Composable):
    """A name, or a dotted one (``Identifier("a", "pm25")`` is ``"a"."pm25"``), quoted on rendering."""

    def __init__(self, *names: str) -> None:
        if not names:
            raise ValueError("an Identifier names something")
        for name in names:
            quote_ident(name)  # refuses what is not a name
        self._names = names

    def as_string(self, dialect: Dialect | None = None) -> str:
        quote = quote_ident if dialect is None else dialect.identifier_preparer.quote
        return ".".join(quote(name) for name in self._names)

    def __repr__(self) -> str:
        return f"Identifier({', '.join(map(repr, self._names))})"


class Literal(Composable):
    """A string or integer constant, for SQLite and DuckDB statements that take no parameter there.

    Rendered as standard SQL (quotes doubled). Not for sources read through SQLAlchemy, whose string
    escapes depend on the server's settings (MySQL's backslashes): values sent there are parameters.
    """

    def __init__(self, value: str | int) -> None:
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise TypeError(f"Literal takes a string or an integer, not {type(value).__name__}")
        self._value = value

    def as_string(self, dialect: Dialect | None = None) -> str:
        if dialect is not None:
            raise ValueError(f"a Literal is not rendered for {dialect.name}: send the value as a bound parameter")
        return str(self._value) if isinstance(self._value, int) else quote_literal(self._value)

    def __repr__(self) -> str:
        return f"Literal({self._value!r})"


def _check_part(part: object) -> Composable:
    if not isinstance(part, Composable):
        raise TypeError(
            f"{part!r} is not composable SQL: a name goes in as Identifier, a constant as Literal, "
            "a value as a bound parameter"
        )
    return part
