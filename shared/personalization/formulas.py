"""``personalizationFormulas``: a small, safe expression language (no ``eval``).

Grammar::

    expr   := call | STRING | NUMBER | FIELD
    call   := NAME "(" [expr ("," expr)*] ")"

A FIELD is a contact attribute or send personalization value, matched case-insensitively.
Functions (all return None when an input is missing, so the merge tag falls back to the
defaults):

    format(date, "dd-MM-yyyy")   date/datetime (ISO text or epoch millis), a Java
                                 SimpleDateFormat pattern, formatted by babel (dates.py)
    upper(x) lower(x) trim(x) capitalize(x)
    concat(a, b, ...)            missing parts count as empty
    coalesce(a, b, ...)          first present, non-empty value
    left(x, n) right(x, n)
    now()                        the delivery time (UTC)
    addDays(date, n)

Evaluating a formula raises nothing but ``FormulaError``, whatever the input: a date
outside years 1..9999 (``1e20`` epoch millis), a count too large, a non-finite number, an
integer too long to print, a result longer than ``MAX_RESULT_CHARS``. Delivery skips that
one recipient (``personalization_failed``) and names the formula and the error.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cached_property
from typing import Any

from shared.personalization.dates import (
    MAX_PATTERN_CHARS,
    DatePattern,
    DatePatternError,
    date_pattern,
)

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


MAX_SOURCE_CHARS = 2000  # a formula's source
MAX_DEPTH = 32  # nested calls
MAX_NUMBER_CHARS = 18  # digits of a number literal (fits an int64)
MAX_RESULT_CHARS = 16_384  # one formula's text result
MAX_COUNT = 1_000_000  # n of left/right, days of addDays (about 2,700 years)


def _brief(value: Any) -> str:
    """A short, safe description of an input for an error message (never huge, never raises)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**30:
        return f"an integer of {value.bit_length()} bits"
    try:
        text = repr(value)
    except Exception:  # a value too deep or too long to print still gets named
        return f"a {type(value).__name__}"
    return text if len(text) <= 40 else text[:37] + "..."


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

    def expr(self, depth: int = 0) -> Node:
        if depth > MAX_DEPTH:
            raise FormulaError(f"calls nest deeper than {MAX_DEPTH}")
        kind, text = self.take()
        if kind == "string":
            return _Lit(re.sub(r"\\(.)", r"\1", text[1:-1]))
        if kind == "number":
            if len(text.lstrip("-")) > MAX_NUMBER_CHARS:
                raise FormulaError(
                    f"number {_brief(text)} is longer than {MAX_NUMBER_CHARS} digits"
                )
            return _Lit(float(text) if "." in text else int(text))
        if kind == "name":
            if self.peek() == ("punct", "("):
                return self.call(text, depth)
            return _Field(text.casefold())
        raise FormulaError(f"unexpected {text!r}")

    def call(self, name: str, depth: int) -> Node:
        func = name.casefold()
        if func not in _FUNCTIONS:
            raise FormulaError(f"unknown function {name!r}")
        self.expect("(")
        args: list[Node] = []
        if self.peek() != ("punct", ")"):
            args.append(self.expr(depth + 1))
            while self.peek() == ("punct", ","):
                self.take()
                args.append(self.expr(depth + 1))
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

    @cached_property
    def fields(self) -> tuple[str, ...]:
        """The (case-folded) field names the formula reads: every function is pure, so
        the result depends on these values alone."""
        names: list[str] = []
        stack: list[Node] = [self.root]
        while stack:
            node = stack.pop()
            if isinstance(node, _Field):
                names.append(node.name)
            elif isinstance(node, _Call):
                stack.extend(node.args)
        return tuple(sorted(set(names)))


def compile_formula(source: str) -> Formula:
    if not isinstance(source, str) or not source.strip():
        raise FormulaError("a formula must be a non-empty string")
    if len(source) > MAX_SOURCE_CHARS:
        raise FormulaError(f"a formula is at most {MAX_SOURCE_CHARS} characters")
    parser = _Parser(_tokenize(source))
    root = parser.expr()
    if parser.peek() is not None:
        raise FormulaError(f"unexpected {parser.peek()[1]!r} after the expression")  # type: ignore[index]
    if isinstance(root, _Call) and root.func == "format":
        pattern = root.args[1]
        if isinstance(pattern, _Lit):
            _date_pattern(str(pattern.value))
    return Formula(source, root)


def _eval(node: Node, values: Mapping[str, Any]) -> Any:
    if isinstance(node, _Lit):
        return node.value
    if isinstance(node, _Field):
        return values.get(node.name)
    func = _FUNCTIONS[node.func][0]
    args = [_eval(arg, values) for arg in node.args]
    try:
        result = func(*args)
    except FormulaError:
        raise
    except Exception as exc:  # a pure function failing is always about its input
        raise FormulaError(f"{node.func}(): {type(exc).__name__}: {str(exc)[:160]}") from exc
    if isinstance(result, str) and len(result) > MAX_RESULT_CHARS:
        raise FormulaError(f"{node.func}() makes a text longer than {MAX_RESULT_CHARS} characters")
    return result


# --- dates -------------------------------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _as_datetime(value: Any) -> datetime | None:
    """A date from a datetime, ISO text or epoch milliseconds; None when missing or not
    a date at all; FormulaError for a number that is no date in years 1..9999."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return _EPOCH + timedelta(milliseconds=value)
        except (OverflowError, ValueError):
            raise FormulaError(
                f"{_brief(value)} is not a date between years 1 and 9999 (epoch milliseconds)"
            ) from None
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _format(value: Any, pattern: Any) -> str | None:
    when = _as_datetime(value)
    if when is None or pattern is None:
        return None
    if not isinstance(pattern, str) or len(pattern) > MAX_PATTERN_CHARS:
        raise FormulaError(
            f"a date pattern is text of at most {MAX_PATTERN_CHARS} characters,"
            f" not {_brief(pattern)}"
        )
    return _date_pattern(pattern).format(when)


def _date_pattern(pattern: str) -> DatePattern:
    try:
        return date_pattern(pattern)
    except DatePatternError as exc:
        raise FormulaError(str(exc)) from None


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def _coalesce(*args: Any) -> Any:
    return next((a for a in args if a not in (None, "")), None)


def _concat(*args: Any) -> str:
    return "".join("" if a is None else str(a) for a in args)


def _count(n: Any, what: str) -> int:
    """A whole number within ±MAX_COUNT (a number, or text that reads as one)."""
    try:
        count = int(n)
    except (TypeError, ValueError, OverflowError):
        raise FormulaError(f"{what} must be a whole number, not {_brief(n)}") from None
    if abs(count) > MAX_COUNT:
        raise FormulaError(f"{what} must be within ±{MAX_COUNT}, not {_brief(count)}")
    return count


def _add_days(value: Any, days: Any) -> str | None:
    when = _as_datetime(value)
    if when is None or not isinstance(days, int) or isinstance(days, bool):
        return None
    try:
        return (when + timedelta(days=_count(days, "addDays' days"))).isoformat()
    except OverflowError:
        raise FormulaError(
            f"addDays({when.date()}, {days}) is past year 9999 or before 1"
        ) from None


def _left(value: Any, n: Any) -> str | None:
    return None if value is None else str(value)[: _count(n, "left's n")]


def _right(value: Any, n: Any) -> str | None:
    if value is None:
        return None
    count = _count(n, "right's n")
    return str(value)[-count:] if count else ""


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
    "left": (_left, (2, 2)),
    "right": (_right, (2, 2)),
    "now": (lambda: datetime.now(UTC).isoformat(), (0, 0)),
    "adddays": (_add_days, (2, 2)),
    "str": (_str, (1, 1)),
}
