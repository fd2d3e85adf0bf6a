"""The ``$filter`` and ``$orderby`` expression language (OData v4.01 URL Conventions §5.1.1): tokens, parser, types.

The parser turns the caller's text into a typed tree of frozen nodes; nothing downstream ever sees
the text again (:mod:`.sql` turns the tree into SQL with every literal a bound parameter). Names are
resolved against the release's entity model, so an unknown property is refused here, and every
operator and function checks the types of its operands as OData defines them.

Supported: ``eq ne gt ge lt le`` (``in`` too), ``and or not``, parentheses; the string functions
``contains startswith endswith length indexof substring tolower toupper trim concat matchesPattern``;
the date functions ``year month day hour minute second fractionalseconds date totaloffsetminutes now
mindatetime maxdatetime``; ``round floor ceiling``. Literals: strings, integers, decimals, doubles
(``INF``, ``-INF``, ``NaN``), ``true false null``, dates and date-times with an offset (converted to
Vietnam time, see :mod:`.model`). Arithmetic, lambdas, navigation, casts, parameter aliases and the
other literal kinds are valid OData this service does not implement: 501, never a silent ignore.

Operator precedence follows the specification (§5.1.1.14): ``not`` binds tighter than comparisons,
so ``not (price gt 5)`` needs its parentheses.

Hostile input is bounded: length (:data:`MAX_CHARS`), tokens (:data:`MAX_TOKENS`), nesting
(:data:`MAX_DEPTH`) and list size (:data:`MAX_IN_ITEMS`) are checked before any work grows with them.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from datashare.catalog.odata.errors import ODataError, bad_request, not_implemented
from datashare.catalog.odata.model import FILTER_FUNCTIONS, EntityModel

MAX_CHARS = 8000
MAX_TOKENS = 2000
MAX_DEPTH = 50
MAX_IN_ITEMS = 500
MAX_ORDERBY = 8
INT64 = (-(2**63), 2**63 - 1)
VIETNAM = dt.timezone(dt.timedelta(hours=7))

STRING, INT, DEC, DBL = "Edm.String", "Edm.Int64", "Edm.Decimal", "Edm.Double"
BOOL, DATE, DTO, NULL = "Edm.Boolean", "Edm.Date", "Edm.DateTimeOffset", "null"
NUMERIC = frozenset({INT, DEC, DBL})
COMPARISONS = ("eq", "ne", "gt", "ge", "lt", "le")
ARITHMETIC = ("add", "sub", "mul", "div", "divby", "mod")
KNOWN_UNSUPPORTED_FUNCTIONS = frozenset(
    {
        "cast",
        "isof",
        "time",
        "totalseconds",
        "case",
        "hassubset",
        "hassubsequence",
        "geo.distance",
        "geo.intersects",
        "geo.length",
    }
)


# -- the tree -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    """A typed expression; ``type`` is an EDM type name, or ``null`` for the null literal."""

    type: str


@dataclass(frozen=True)
class Literal(Node):
    """A constant: bound as a parameter, never written into SQL."""

    value: Any


@dataclass(frozen=True)
class Prop(Node):
    """A property of the entity type, by its exact name in the model."""

    name: str
    nullable: bool


@dataclass(frozen=True)
class Call(Node):
    """A built-in function."""

    name: str
    args: tuple[Node, ...]


@dataclass(frozen=True)
class Compare(Node):
    """``left op right`` for op in eq ne gt ge lt le."""

    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class Logical(Node):
    """``left and right`` / ``left or right``."""

    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class Not(Node):
    """``not operand``."""

    operand: Node


@dataclass(frozen=True)
class In(Node):
    """``operand in (literal, ...)``."""

    operand: Node
    items: tuple[Literal, ...]


@dataclass(frozen=True)
class OrderItem:
    """One ``$orderby`` item."""

    prop: Prop
    descending: bool


# -- tokens ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Token:
    """A lexical token with its offset in the text (for error messages)."""

    kind: str
    text: str
    pos: int


_DATETIME = r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,12})?)?(?:[Zz]|[+-]\d{2}:\d{2}| \d{2}:\d{2})"
_TOKENS = re.compile(
    "|".join(
        [
            r"(?P<ws>[ \t]+)",
            r"(?P<str>'(?:[^']|'')*')",
            rf"(?P<dto>{_DATETIME})",
            r"(?P<naive>\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)",
            r"(?P<guid>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})",
            r"(?P<date>\d{4}-\d{2}-\d{2})(?![\w:.])",
            r"(?P<time>\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)",
            r"(?P<num>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)(?![\w.])",
            r"(?P<minf>-INF)(?!\w)",
            r"(?P<typed>[A-Za-z_][\w.]*'(?:[^']|'')*')",
            r"(?P<word>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)",
            r"(?P<dollar>\$\w+)",
            r"(?P<alias>@\w+)",
            r"(?P<punct>[(),/:=])",
        ]
    )
)


def tokenize(text: str, what: str = "$filter") -> list[Token]:
    """The tokens of an expression; 400 for a character that starts no token, or input past the limits."""
    if len(text) > MAX_CHARS:
        raise bad_request(f"{what} is longer than {MAX_CHARS} characters", what)
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKENS.match(text, pos)
        if match is None:
            raise bad_request(f"{what}: unexpected character {text[pos]!r} at position {pos}", what)
        kind = match.lastgroup or ""
        if kind != "ws":
            value = match.group()
            tokens.append(Token(value if kind == "punct" else kind, value, pos))
            if len(tokens) > MAX_TOKENS:
                raise bad_request(f"{what} has more than {MAX_TOKENS} tokens", what)
        pos = match.end()
    return tokens


# -- literals -------------------------------------------------------------------------------------


def _number(token: Token, what: str) -> Literal:
    text = token.text
    if re.fullmatch(r"-?\d+", text):
        value = int(text)
        if not INT64[0] <= value <= INT64[1]:
            raise bad_request(f"{what}: {text} is outside the Edm.Int64 range", what)
        return Literal(INT, value)
    if "e" in text.lower():
        value_f = float(text)
        if value_f in (float("inf"), float("-inf")):
            raise bad_request(f"{what}: {text} is outside the Edm.Double range", what)
        return Literal(DBL, value_f)
    try:
        return Literal(DEC, Decimal(text))
    except InvalidOperation:  # the pattern admits only digits, so this is defensive
        raise bad_request(f"{what}: {text} is not a number", what) from None


def _date(text: str, what: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise bad_request(f"{what}: {text} is not a valid date (YYYY-MM-DD)", what) from None


def datetime_offset(text: str, what: str = "$filter") -> dt.datetime:
    """A DateTimeOffset literal as naive Vietnam time (how releases store timestamps).

    A ``+`` that a client left unencoded reaches us as a space (form decoding): ``T08:00:00 07:00``
    is read as ``+07:00``. Fractions finer than a microsecond must be zeros: nothing is rounded.
    """
    raw = text
    if re.search(r" \d{2}:\d{2}$", text):
        text = text[:-6] + "+" + text[-5:]
    text = text.replace("t", "T").replace("z", "Z")
    fraction = re.search(r"\.(\d+)", text)
    if fraction and len(fraction.group(1)) > 6:
        digits = fraction.group(1)
        if set(digits[6:]) != {"0"}:
            raise bad_request(f"{what}: {raw} is more precise than a microsecond", what)
        text = text.replace("." + digits, "." + digits[:6], 1)
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise bad_request(f"{what}: {raw} is not a valid date-time with offset", what) from None
    if value.tzinfo is None:  # the pattern requires an offset; defensive
        raise bad_request(f"{what}: {raw} has no time-zone offset", what)
    return value.astimezone(VIETNAM).replace(tzinfo=None)


def _string(text: str) -> str:
    return text[1:-1].replace("''", "'")


# -- parser ---------------------------------------------------------------------------------------


class Parser:
    """Recursive descent over the tokens of one expression, resolving names against ``model``."""

    def __init__(self, text: str, model: EntityModel, what: str = "$filter") -> None:
        self.what = what
        self.model = model
        self.tokens = tokenize(text, what)
        self.i = 0
        self.depth = 0

    # helpers

    def _peek(self, offset: int = 0) -> Token | None:
        j = self.i + offset
        return self.tokens[j] if j < len(self.tokens) else None

    def _next(self) -> Token:
        token = self._peek()
        if token is None:
            raise bad_request(f"{self.what}: the expression ends too early", self.what)
        self.i += 1
        return token

    def _is_word(self, *words: str) -> bool:
        token = self._peek()
        return token is not None and token.kind == "word" and token.text in words

    def _expect(self, kind: str) -> Token:
        token = self._next()
        if token.kind != kind:
            raise bad_request(
                f"{self.what}: expected {kind!r} at position {token.pos}, found {token.text!r}", self.what
            )
        return token

    def _error(self, message: str) -> ODataError:
        return bad_request(f"{self.what}: {message}", self.what)

    def _enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise bad_request(f"{self.what} is nested more than {MAX_DEPTH} levels deep", self.what)

    # entry points

    def boolean(self) -> Node:
        """A whole ``$filter``: one Boolean expression and nothing after it."""
        if not self.tokens:
            raise self._error("the expression is empty")
        node = self._or()
        token = self._peek()
        if token is not None:
            raise self._error(f"unexpected {token.text!r} at position {token.pos}")
        if node.type not in (BOOL, NULL):
            raise self._error(f"the expression is of type {node.type}, not Edm.Boolean")
        return node

    def orderby(self) -> list[OrderItem]:
        """A whole ``$orderby``: property names, each optionally ``asc`` or ``desc``."""
        items: list[OrderItem] = []
        seen: set[str] = set()
        while True:
            token = self._next()
            after = self._peek()
            if token.kind != "word" or (after is not None and after.kind not in ("word", ",")):
                raise not_implemented(
                    f"$orderby: only property names can be ordered by (at position {token.pos})", "$orderby"
                )
            prop = self._property(token)
            if prop.name in seen:
                raise bad_request(f"$orderby: {prop.name} is listed twice", "$orderby")
            seen.add(prop.name)
            descending = False
            if self._is_word("asc", "desc"):
                descending = self._next().text == "desc"
            items.append(OrderItem(prop, descending))
            if len(items) > MAX_ORDERBY:
                raise bad_request(f"$orderby: at most {MAX_ORDERBY} properties", "$orderby")
            if self._peek() is None:
                return items
            self._expect(",")

    # grammar (lowest precedence first)

    def _or(self) -> Node:
        left = self._and()
        while self._is_word("or"):
            self._next()
            left = Logical(BOOL, "or", self._boolean_operand(left, "or"), self._boolean_operand(self._and(), "or"))
        return left

    def _and(self) -> Node:
        left = self._equality()
        while self._is_word("and"):
            self._next()
            right = self._equality()
            left = Logical(BOOL, "and", self._boolean_operand(left, "and"), self._boolean_operand(right, "and"))
        return left

    def _boolean_operand(self, node: Node, op: str) -> Node:
        if node.type not in (BOOL, NULL):
            raise self._error(f"'{op}' needs Boolean operands, got {node.type}")
        return node

    def _equality(self) -> Node:
        left = self._relational()
        while self._is_word("eq", "ne"):
            op = self._next().text
            left = self._compare(op, left, self._relational())
        return left

    def _relational(self) -> Node:
        left = self._additive()
        while True:
            if self._is_word("gt", "ge", "lt", "le"):
                op = self._next().text
                left = self._compare(op, left, self._additive())
            elif self._is_word("in"):
                self._next()
                left = self._in(left)
            elif self._is_word("has"):
                raise not_implemented("$filter: the 'has' operator (enumerations) is not supported", "$filter")
            else:
                return left

    def _additive(self) -> Node:
        node = self._unary()
        if self._is_word(*ARITHMETIC):
            op = self._next().text
            raise not_implemented(f"$filter: the arithmetic operator '{op}' is not supported", "$filter")
        return node

    def _unary(self) -> Node:
        if self._is_word("not") and not self._names_property("not"):
            self._next()
            self._enter()
            operand = self._unary()
            self.depth -= 1
            if operand.type not in (BOOL, NULL):
                raise self._error(
                    f"'not' needs a Boolean operand, got {operand.type} "
                    "(not binds tighter than comparisons: write not (a eq b))"
                )
            return Not(BOOL, operand)
        return self._primary()

    def _names_property(self, word: str) -> bool:
        """Whether ``word`` here is a property that happens to be spelled like an operator (``not``)."""
        if self.model.find(word) is None:
            return False
        nxt = self._peek(1)
        return (
            nxt is None
            or nxt.kind in (")", ",")
            or (nxt.kind == "word" and nxt.text in (*COMPARISONS, "and", "or", "in"))
        )

    def _primary(self) -> Node:
        token = self._next()
        kind = token.kind
        if kind == "(":
            self._enter()
            node = self._or()
            self.depth -= 1
            self._expect(")")
            return node
        if kind == "str":
            return Literal(STRING, _string(token.text))
        if kind == "num":
            return _number(token, self.what)
        if kind == "minf":
            return Literal(DBL, float("-inf"))
        if kind == "date":
            return Literal(DATE, _date(token.text, self.what))
        if kind == "dto":
            return Literal(DTO, datetime_offset(token.text, self.what))
        if kind == "naive":
            raise self._error(f"the date-time {token.text} needs an offset: Z, or +07:00 for Vietnam time")
        if kind == "guid":
            raise not_implemented(f"{self.what}: Edm.Guid literals are not supported", self.what)
        if kind == "time":
            raise not_implemented(f"{self.what}: Edm.TimeOfDay literals are not supported", self.what)
        if kind == "typed":
            prefix = token.text.split("'", 1)[0]
            raise not_implemented(f"{self.what}: {prefix}'...' literals are not supported", self.what)
        if kind == "dollar":
            raise not_implemented(f"{self.what}: {token.text} is not supported", self.what)
        if kind == "alias":
            raise not_implemented(f"{self.what}: parameter aliases ({token.text}) are not supported", self.what)
        if kind == "word":
            return self._word(token)
        raise self._error(f"unexpected {token.text!r} at position {token.pos}")

    def _word(self, token: Token) -> Node:
        text = token.text
        after = self._peek()
        if after is not None and after.kind == "(":
            return self._call(token)
        if after is not None and after.kind == "/":
            raise not_implemented(
                f"{self.what}: paths ({text}/...) are not supported: entities have no navigation properties", self.what
            )
        if self.model.find(text) is None:
            constants = {"true": Literal(BOOL, True), "false": Literal(BOOL, False), "null": Literal(NULL, None)}
            if text in constants:
                return constants[text]
            if text == "INF":
                return Literal(DBL, float("inf"))
            if text == "NaN":
                return Literal(DBL, float("nan"))
        return self._property(token)

    def _property(self, token: Token) -> Prop:
        prop = self.model.find(token.text) if token.kind == "word" else None
        if prop is None:
            raise bad_request(f"{self.what}: {token.text!r} is not a property of {self.model.name}", self.what)
        return Prop(prop.type, prop.name, prop.nullable)

    def _in(self, operand: Node) -> Node:
        self._expect("(")
        items: list[Literal] = []
        while True:
            node = self._primary()
            if not isinstance(node, Literal):
                raise self._error("'in' takes a list of literals")
            self._check_comparable("in", operand, node)
            items.append(node)
            if len(items) > MAX_IN_ITEMS:
                raise self._error(f"'in' takes at most {MAX_IN_ITEMS} values")
            closing = self._next()
            if closing.kind == ")":
                return In(BOOL, operand, tuple(items))
            if closing.kind != ",":
                raise self._error(f"expected ',' or ')' at position {closing.pos}, found {closing.text!r}")

    def _compare(self, op: str, left: Node, right: Node) -> Node:
        self._check_comparable(op, left, right)
        return Compare(BOOL, op, left, right)

    def _check_comparable(self, op: str, left: Node, right: Node) -> None:
        if NULL in (left.type, right.type):
            return
        if left.type in NUMERIC and right.type in NUMERIC:
            return
        if left.type != right.type:
            hint = ""
            if {left.type, right.type} == {DTO, DATE}:
                hint = (
                    " (compare date(property) with a date, or the property with a date-time"
                    " such as 2026-11-01T00:00:00+07:00)"
                )
            raise self._error(f"cannot compare {left.type} with {right.type} using '{op}'{hint}")

    # functions

    def _call(self, token: Token) -> Node:
        name = token.text
        if name not in FILTER_FUNCTIONS:
            if name in KNOWN_UNSUPPORTED_FUNCTIONS or name in ("any", "all"):
                raise not_implemented(f"{self.what}: the function {name}() is not supported", self.what)
            raise self._error(f"unknown function {name}(); supported: {', '.join(FILTER_FUNCTIONS)}")
        self._expect("(")
        self._enter()
        args: list[Node] = []
        if self._peek() is not None and self._peek().kind == ")":  # type: ignore[union-attr]
            self._next()
        else:
            while True:
                args.append(self._or())
                closing = self._next()
                if closing.kind == ")":
                    break
                if closing.kind != ",":
                    raise self._error(f"expected ',' or ')' at position {closing.pos}, found {closing.text!r}")
        self.depth -= 1
        return Call(_signature(self, name, args), name, tuple(args))


_STRING_BOOL = {"contains", "startswith", "endswith", "matchesPattern"}
_STRING_STRING = {"tolower", "toupper", "trim"}
_PARTS_DATE = {"year", "month", "day"}
_PARTS_TIME = {"hour", "minute", "second", "fractionalseconds", "totaloffsetminutes"}
_ROUNDING = {"round", "floor", "ceiling"}
_NILADIC = {"now", "mindatetime", "maxdatetime"}


def _signature(parser: Parser, name: str, args: list[Node]) -> str:
    """The result type of a call, after checking its arguments' count and types."""

    def need(count: int | tuple[int, ...], *types: frozenset[str] | str) -> None:
        counts = (count,) if isinstance(count, int) else count
        if len(args) not in counts:
            raise parser._error(f"{name}() takes {' or '.join(map(str, counts))} argument(s), got {len(args)}")
        for i, arg in enumerate(args):
            allowed = types[min(i, len(types) - 1)]
            allowed_set = frozenset({allowed}) if isinstance(allowed, str) else allowed
            if arg.type != NULL and arg.type not in allowed_set:
                raise parser._error(
                    f"{name}() argument {i + 1} must be {' or '.join(sorted(allowed_set))}, got {arg.type}"
                )

    if name in _STRING_BOOL:
        need(2, STRING)
        return BOOL
    if name in _STRING_STRING:
        need(1, STRING)
        return STRING
    if name == "length":
        need(1, STRING)
        return INT
    if name == "indexof":
        need(2, STRING)
        return INT
    if name == "concat":
        need(2, STRING)
        return STRING
    if name == "substring":
        need((2, 3), STRING, INT)
        return STRING
    if name in _PARTS_DATE:
        need(1, frozenset({DATE, DTO}))
        return INT
    if name in _PARTS_TIME:
        need(1, DTO)
        return DEC if name == "fractionalseconds" else INT
    if name == "date":
        need(1, DTO)
        return DATE
    if name in _ROUNDING:
        need(1, NUMERIC)
        return args[0].type if args[0].type != NULL else DBL
    if name in _NILADIC:
        need(0)
        return DTO
    raise AssertionError(name)  # pragma: no cover - FILTER_FUNCTIONS and this table agree


def parse_filter(text: str, model: EntityModel) -> Node:
    """A ``$filter`` as a typed tree; :class:`ODataError` (400 or 501) for anything else."""
    return Parser(text, model, "$filter").boolean()


def parse_orderby(text: str, model: EntityModel) -> list[OrderItem]:
    """An ``$orderby`` as property names with directions."""
    return Parser(text, model, "$orderby").orderby()


def parse_literal(text: str, what: str) -> Literal:
    """One literal on its own (a key value in ``Set(key)``)."""
    parser = Parser(text, _EMPTY, what)
    node = parser._primary()
    if parser._peek() is not None or not isinstance(node, Literal):
        raise bad_request(f"{what}: {text!r} is not a literal", what)
    return node


_EMPTY = EntityModel(
    name="_",
    version=0,
    properties=(),
    key=(),
    title_vi="",
    title_en="",
    description_vi="",
    description_en="",
)
