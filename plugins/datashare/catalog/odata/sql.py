"""The typed expression tree as DuckDB SQL: every literal a bound parameter, every name from the model.

Nothing the caller typed reaches the SQL text: literals become ``?`` with their value in
:attr:`Sql.params`, property names are the model's own (already checked against the spec's column
name pattern) in double quotes, and function and operator names come from fixed tables here.

OData's null semantics differ from SQL's in two places, and the translation keeps OData's:

* ``eq``/``ne`` treat null as a value (``null eq null`` is true, ``x ne 5`` is true when x is null):
  ``ne`` is ``IS DISTINCT FROM``, and ``eq`` is too when both sides may be null;
* a comparison with a null operand is false, not unknown, which matters under ``not``: below a
  ``not`` every comparison is made two-valued (``coalesce(..., false)``), so ``not (pm25 gt 50)``
  keeps the rows where pm25 is null, as OData says it must. Elsewhere SQL's unknown already acts as
  false, and the plain comparison keeps DuckDB's filter pushdown into the Parquet scan.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from datashare.catalog.odata.expr import (
    BOOL,
    DATE,
    DBL,
    DEC,
    DTO,
    INT,
    NULL,
    STRING,
    VIETNAM,
    Call,
    Compare,
    In,
    Literal,
    Logical,
    Node,
    Not,
    OrderItem,
    Prop,
)
from datashare.sqltext import quote_ident

ROW = '"$row"'
"""The row-number column of the query cache: a name no spec column can have."""
DUCK_TYPES = {
    STRING: "VARCHAR",
    INT: "BIGINT",
    DEC: "DOUBLE",
    DBL: "DOUBLE",
    BOOL: "BOOLEAN",
    DATE: "DATE",
    DTO: "TIMESTAMP",
}
OPERATORS = {"eq": "=", "ne": "<>", "gt": ">", "ge": ">=", "lt": "<", "le": "<="}
_SIMPLE_FUNCTIONS = {
    "contains": "contains",
    "startswith": "starts_with",
    "endswith": "ends_with",
    "matchesPattern": "regexp_matches",
    "tolower": "lower",
    "toupper": "upper",
    "trim": "trim",
    "length": "length",
    "year": "year",
    "month": "month",
    "day": "day",
    "hour": "hour",
    "minute": "minute",
    "second": "second",
    "round": "round",
    "floor": "floor",
    "ceiling": "ceil",
}
MIN_DATETIME = dt.datetime(1, 1, 1)
MAX_DATETIME = dt.datetime(9999, 12, 31, 23, 59, 59, 999999)


def quote(name: str) -> str:
    """A model property name as a SQL identifier (names match ``[a-z_][a-z0-9_]*``; quotes doubled anyway)."""
    return quote_ident(name)


@dataclass
class Sql:
    """SQL text with its positional parameters, in order."""

    params: list[Any] = field(default_factory=list)

    def bind(self, value: Any, edm_type: str) -> str:
        """A parameter placeholder cast to the literal's type."""
        if edm_type == DEC:
            value = float(value)
        self.params.append(value)
        return f"CAST(? AS {DUCK_TYPES[edm_type]})"

    # values

    def value(self, node: Node) -> str:
        """SQL for a node used as a value (an operand, a function argument)."""
        if isinstance(node, Literal):
            return "NULL" if node.type == NULL else self.bind(node.value, node.type)
        if isinstance(node, Prop):
            return quote(node.name)
        if isinstance(node, Call):
            return self.call(node)
        return self.boolean(node, exact=True)

    def call(self, node: Call) -> str:
        """SQL for a built-in function."""
        name = node.name
        if name == "now":
            now = dt.datetime.now(VIETNAM).replace(tzinfo=None)
            return self.bind(now, DTO)
        if name == "mindatetime":
            return self.bind(MIN_DATETIME, DTO)
        if name == "maxdatetime":
            return self.bind(MAX_DATETIME, DTO)
        args = [self.value(a) for a in node.args]
        if name in _SIMPLE_FUNCTIONS:
            return f"{_SIMPLE_FUNCTIONS[name]}({', '.join(args)})"
        if name == "indexof":  # OData counts from 0 and answers -1; instr counts from 1 and answers 0
            return f"(instr({args[0]}, {args[1]}) - 1)"
        if name == "substring":  # OData's start is 0-based
            tail = f", {args[2]}" if len(args) == 3 else ""
            return f"substring({args[0]}, ({args[1]}) + 1{tail})"
        if name == "concat":
            return f"({args[0]} || {args[1]})"
        if name == "date":
            return f"CAST({args[0]} AS DATE)"
        if name == "fractionalseconds":
            return f"((epoch_us({args[0]}) % 1000000) / 1000000.0)"
        if name == "totaloffsetminutes":  # every served timestamp is +07:00
            return f"CASE WHEN {args[0]} IS NULL THEN NULL ELSE 420 END"
        raise AssertionError(name)  # pragma: no cover - the parser admits only known functions

    # predicates

    def boolean(self, node: Node, *, exact: bool = False) -> str:
        """SQL for a Boolean node; ``exact`` makes every comparison two-valued (under ``not``)."""
        if isinstance(node, Logical):
            op = "AND" if node.op == "and" else "OR"
            return f"({self.boolean(node.left, exact=exact)} {op} {self.boolean(node.right, exact=exact)})"
        if isinstance(node, Not):
            return f"(NOT {self.boolean(node.operand, exact=True)})"
        if isinstance(node, Compare):
            return self.compare(node, exact=exact)
        if isinstance(node, In):
            return self.within(node, exact=exact)
        if isinstance(node, Literal) and node.type == NULL:
            return "NULL"
        return self.value(node)

    def compare(self, node: Compare, *, exact: bool) -> str:
        """A comparison with OData's null rules."""
        left, right = node.left, node.right
        if node.op in ("eq", "ne") and NULL in (left.type, right.type):
            other = right if left.type == NULL else left
            if other.type == NULL:
                return "TRUE" if node.op == "eq" else "FALSE"
            test = "IS NULL" if node.op == "eq" else "IS NOT NULL"
            return f"({self.value(other)} {test})"
        lsql, rsql = self.value(left), self.value(right)
        nullable = _may_be_null(left) or _may_be_null(right)
        if node.op == "ne" and nullable:
            return f"({lsql} IS DISTINCT FROM {rsql})"
        if node.op == "eq" and nullable and (exact or (_may_be_null(left) and _may_be_null(right))):
            return f"({lsql} IS NOT DISTINCT FROM {rsql})"
        plain = f"({lsql} {OPERATORS[node.op]} {rsql})"
        return f"coalesce({plain}, FALSE)" if exact and nullable else plain

    def within(self, node: In, *, exact: bool) -> str:
        """``x in (a, b, ...)``; a null in the list matches a null x."""
        values = [i for i in node.items if i.type != NULL]
        operand = self.value(node.operand)
        parts = []
        if values:
            parts.append(f"{operand} IN ({', '.join(self.bind(i.value, i.type) for i in values)})")
        if len(values) < len(node.items):
            parts.append(f"{operand} IS NULL")
        sql = "(" + " OR ".join(parts) + ")"
        return f"coalesce({sql}, FALSE)" if exact and _may_be_null(node.operand) else sql


def _may_be_null(node: Node) -> bool:
    if isinstance(node, Literal):
        return node.type == NULL
    if isinstance(node, Prop):
        return node.nullable
    return True


def where(node: Node | None) -> tuple[str, list[Any]]:
    """``(sql, params)`` of a ``$filter`` tree (``TRUE`` without one)."""
    if node is None:
        return "TRUE", []
    sql = Sql()
    return sql.boolean(node), sql.params


def order_by(items: list[OrderItem]) -> str:
    """ORDER BY terms: the caller's properties, nulls first ascending and last descending (§5.1.4), then the row."""
    terms = [f"{quote(i.prop.name)} {'DESC NULLS LAST' if i.descending else 'ASC NULLS FIRST'}" for i in items]
    return ", ".join([*terms, f"{ROW} ASC"])


def after(items: list[OrderItem], last: list[Any], last_row: int) -> tuple[str, list[Any]]:
    """Rows strictly after the last row served, in the order of ``items`` then the row number (keyset paging).

    ``last`` holds the last row's values of the ordered properties, in the same order. With no
    ``items`` this is ``"$row" > ?``, which the cache file's row-group statistics answer without a scan.
    """
    equal: list[tuple[str, list[Any]]] = []
    alternatives: list[tuple[str, list[Any]]] = []
    for item, value in zip(items, last, strict=True):
        column = quote(item.prop.name)
        typed = f"CAST(? AS {DUCK_TYPES[item.prop.type]})"
        if value is None:
            step: tuple[str, list[Any]] = ("FALSE" if item.descending else f"{column} IS NOT NULL", [])
            same: tuple[str, list[Any]] = (f"{column} IS NULL", [])
        else:
            step = (f"({column} < {typed} OR {column} IS NULL)" if item.descending else f"{column} > {typed}", [value])
            same = (f"{column} = {typed}", [value])
        alternatives.append(_all([*equal, step]))
        equal.append(same)
    alternatives.append(_all([*equal, (f"{ROW} > ?", [last_row])]))
    sql = " OR ".join(f"({text})" for text, _ in alternatives)
    return f"({sql})", [p for _, params in alternatives for p in params]


def _all(clauses: list[tuple[str, list[Any]]]) -> tuple[str, list[Any]]:
    return " AND ".join(text for text, _ in clauses), [p for _, params in clauses for p in params]
