"""``personalizationFormulas``: a small, safe expression language (no ``eval``).

Grammar::

    expr   := call | STRING | NUMBER | FIELD
    call   := NAME "(" [expr ("," expr)*] ")"

A FIELD is a contact attribute or send personalization value, matched case-insensitively.
Functions (all return None when an input is missing, so the merge tag falls back to the
defaults):

    format(date, "dd-MM-yyyy")   date/datetime (ISO text or epoch millis), Java-style pattern
    upper(x) lower(x) trim(x) capitalize(x)
    concat(a, b, ...)            missing parts count as empty
    coalesce(a, b, ...)          first present, non-empty value
    left(x, n) right(x, n)
    now()                        the delivery time (UTC)
    addDays(date, n)
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>"(?:[^"\\]|\\.)*")
      | (?P<number>-?\d+(?:\.\d+)?)
      | (?P<name>[A-Za-z_][A-Za-z0-9_.]*)
      | (?P<punct>[(),])
    )""",
    re.VERBOSE,
)


class FormulaError(ValueError):
    pass


@dataclass(frozen=True)
class _Lit:
    value: Any


@dataclass(frozen=True)
class _Field:
    name: str


@dataclass(frozen=True)
class _Call:
    func: str
    args: tuple[Any, ...]


Node = _Lit | _Field | _Call


def _tokenize(source: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    source = source.rstrip()
    while pos < len(source):
        match = _TOKEN.match(source, pos)
        if not match or match.end() == pos:
            raise FormulaError(
                f"unexpected character at position {pos}: {source[pos : pos + 10]!r}"
            )
        kind = match.lastgroup
        assert kind is not None
        tokens.append((kind, match.group(kind)))
        pos = match.end()
    return tokens


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens, self.pos = tokens, 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise FormulaError("formula ends too early")
        self.pos += 1
        return token

    def expect(self, punct: str) -> None:
        kind, text = self.take()
        if (kind, text) != ("punct", punct):
            raise FormulaError(f"expected {punct!r}, found {text!r}")

    def expr(self) -> Node:
        kind, text = self.take()
        if kind == "string":
            return _Lit(re.sub(r"\\(.)", r"\1", text[1:-1]))
        if kind == "number":
            return _Lit(float(text) if "." in text else int(text))
        if kind == "name":
            if self.peek() == ("punct", "("):
                return self.call(text)
            return _Field(text.casefold())
        raise FormulaError(f"unexpected {text!r}")

    def call(self, name: str) -> Node:
        func = name.casefold()
        if func not in _FUNCTIONS:
            raise FormulaError(f"unknown function {name!r}")
        self.expect("(")
        args: list[Node] = []
        if self.peek() != ("punct", ")"):
            args.append(self.expr())
            while self.peek() == ("punct", ","):
                self.take()
                args.append(self.expr())
        self.expect(")")
        low, high = _FUNCTIONS[func][1]
        if not low <= len(args) <= high:
            raise FormulaError(f"{name}() takes {low}..{high} arguments, got {len(args)}")
        return _Call(func, tuple(args))


@dataclass(frozen=True)
class Formula:
    source: str
    root: Node

    def evaluate(self, values: Mapping[str, Any]) -> Any:
        return _eval(self.root, values)


def compile_formula(source: str) -> Formula:
    if not isinstance(source, str) or not source.strip():
        raise FormulaError("a formula must be a non-empty string")
    parser = _Parser(_tokenize(source))
    root = parser.expr()
    if parser.peek() is not None:
        raise FormulaError(f"unexpected {parser.peek()[1]!r} after the expression")  # type: ignore[index]
    if isinstance(root, _Call) and root.func == "format":
        pattern = root.args[1]
        if isinstance(pattern, _Lit):
            java_to_strftime(str(pattern.value))
    return Formula(source, root)


def _eval(node: Node, values: Mapping[str, Any]) -> Any:
    if isinstance(node, _Lit):
        return node.value
    if isinstance(node, _Field):
        return values.get(node.name)
    func = _FUNCTIONS[node.func][0]
    return func(*(_eval(arg, values) for arg in node.args))


# --- dates -------------------------------------------------------------------------------

_JAVA_PATTERN = re.compile(r"'[^']*'|y+|M+|d+|H+|h+|m+|s+|S+|E+|a|[A-Za-z]")
_JAVA_FIELDS = {
    "yyyy": "%Y", "yy": "%y", "y": "%Y",
    "MMMM": "%B", "MMM": "%b", "MM": "%m", "M": "%-m",
    "dd": "%d", "d": "%-d", "HH": "%H", "H": "%-H", "hh": "%I", "h": "%-I",
    "mm": "%M", "m": "%-M", "ss": "%S", "s": "%-S", "SSS": "%f",
    "EEEE": "%A", "EEE": "%a", "E": "%a", "a": "%p",
}  # fmt: skip


@functools.lru_cache(maxsize=256)
def java_to_strftime(pattern: str) -> str:
    """Translate a Java SimpleDateFormat pattern to strftime; unknown letters raise."""
    out, pos = [], 0
    for match in _JAVA_PATTERN.finditer(pattern):
        out.append(pattern[pos : match.start()].replace("%", "%%"))
        token = match.group(0)
        if token.startswith("'"):
            out.append(token[1:-1].replace("%", "%%") or "'")
        elif token in _JAVA_FIELDS:
            out.append(_JAVA_FIELDS[token])
        else:
            raise FormulaError(f"unsupported date pattern letter(s) {token!r}")
        pos = match.end()
    out.append(pattern[pos:].replace("%", "%%"))
    return "".join(out)


def _as_datetime(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def _format(value: Any, pattern: Any) -> str | None:
    when = _as_datetime(value)
    if when is None or pattern is None:
        return None
    text = when.strftime(java_to_strftime(str(pattern)))
    return text.replace("%f", f"{when.microsecond // 1000:03d}")


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def _coalesce(*args: Any) -> Any:
    return next((a for a in args if a not in (None, "")), None)


def _concat(*args: Any) -> str:
    return "".join("" if a is None else str(a) for a in args)


def _add_days(value: Any, days: Any) -> str | None:
    when = _as_datetime(value)
    if when is None or not isinstance(days, int):
        return None
    return (when + timedelta(days=days)).isoformat()


def _lift(fn: Callable[[str], str]) -> Callable[[Any], str | None]:
    return lambda v: None if v is None else fn(str(v))


_FUNCTIONS: dict[str, tuple[Callable[..., Any], tuple[int, int]]] = {
    "format": (_format, (2, 2)),
    "upper": (_lift(str.upper), (1, 1)),
    "lower": (_lift(str.lower), (1, 1)),
    "trim": (_lift(str.strip), (1, 1)),
    "capitalize": (_lift(str.capitalize), (1, 1)),
    "concat": (_concat, (1, 20)),
    "coalesce": (_coalesce, (1, 20)),
    "left": (lambda v, n: None if v is None else str(v)[: int(n)], (2, 2)),
    "right": (lambda v, n: None if v is None else str(v)[-int(n) :] if int(n) else "", (2, 2)),
    "now": (lambda: datetime.now(UTC).isoformat(), (0, 0)),
    "adddays": (_add_days, (2, 2)),
    "str": (_str, (1, 1)),
}
