"""The contact-source query language, compiled to a parameterized SQL condition. Pure.

A query is JSON (``docs/contact-sources.md``). ``compile_query`` turns it into a boolean
SQL expression over the table alias ``c`` (``contacts``) plus its parameters. Nothing the
caller wrote ever becomes SQL text: values, attribute names and categories all travel as
parameters, and the only text spliced in is this module's own fixed fragments.

Every condition is two-valued (never SQL NULL), so ``not`` is the exact complement:
``{"not": C}`` matches every contact that ``C`` does not match, including contacts that
lack the attribute ``C`` looks at.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

MAX_DEPTH = 10
MAX_LEAVES = 100
MAX_IN_VALUES = 1000
MAX_TEXT = 1000
MAX_ATTRIBUTE_PATH = 10

_GROUPS = ("all", "any", "not", "subscribed", "unsubscribed")
_LEAF_KEYS = frozenset({"attribute", "op", "value"})
_NO_VALUE_OPS = frozenset({"exists", "notExists"})
_COMPARISONS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


class QueryError(ValueError):
    """A query the compiler refuses; ``path`` names the bad node (``query.all.1.op``)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


@dataclass(frozen=True)
class Source:
    """What the compiler needs of a stored contact source."""

    id: int
    kind: Literal["list", "query"]
    query: dict[str, Any] | None = None


def compile_query(query: Any, first_param: int = 1, path: str = "query") -> tuple[str, list[Any]]:
    """``query`` → (SQL boolean over ``c``, parameters numbered from ``$first_param``)."""
    compiler = _Compiler(first_param)
    return compiler.node(query, path, 1), compiler.params


def source_condition(source: Source, first_param: int = 1) -> tuple[str, list[Any]]:
    """Membership of one source as a condition over ``c``: a list's members are the listed
    ids that exist as contacts, a query's are the contacts it matches."""
    if source.kind == "list":
        sql = (
            "EXISTS (SELECT 1 FROM contact_source_members m"
            f" WHERE m.source_id = ${first_param}::bigint AND m.contact_id = c.contact_id)"
        )
        return sql, [source.id]
    return compile_query(source.query, first_param)


def audience_condition(
    include: Sequence[Source], exclude: Sequence[Source] = (), first_param: int = 1
) -> tuple[str, list[Any]]:
    """The union of ``include`` minus the union of ``exclude``, as one condition over ``c``."""
    if not include:
        raise ValueError("an audience needs at least one include source")
    params: list[Any] = []

    def union(sources: Sequence[Source]) -> str:
        parts = []
        for source in sources:
            sql, more = source_condition(source, first_param + len(params))
            parts.append(sql)
            params.extend(more)
        return "(" + " OR ".join(parts) + ")"

    sql = union(include)
    if exclude:
        sql = f"({sql} AND NOT {union(exclude)})"
    return sql, params


class _Compiler:
    def __init__(self, first_param: int) -> None:
        self.first_param = first_param
        self.params: list[Any] = []
        self.leaves = 0

    def param(self, value: Any, cast: str) -> str:
        self.params.append(value)
        return f"${self.first_param + len(self.params) - 1}::{cast}"

    def node(self, tree: Any, path: str, depth: int) -> str:
        if depth > MAX_DEPTH:
            raise QueryError(path, f"conditions nest at most {MAX_DEPTH} levels deep")
        if not isinstance(tree, dict):
            raise QueryError(path, "a condition is a JSON object")
        if "attribute" in tree or "op" in tree:
            return self.leaf(tree, path)
        if len(tree) != 1 or next(iter(tree)) not in _GROUPS:
            raise QueryError(
                path, "give exactly one of all, any, not, subscribed, unsubscribed, attribute"
            )
        [(key, value)] = tree.items()
        at = f"{path}.{key}"
        if key in ("all", "any"):
            if not isinstance(value, list) or not value:
                raise QueryError(at, f"'{key}' takes a non-empty list of conditions")
            joiner = " AND " if key == "all" else " OR "
            return (
                "("
                + joiner.join(self.node(v, f"{at}.{i}", depth + 1) for i, v in enumerate(value))
                + ")"
            )
        if key == "not":
            return f"(NOT {self.node(value, at, depth + 1)})"
        return self.subscription(key, value, at)

    def subscription(self, key: str, category: Any, path: str) -> str:
        self.count_leaf(path)
        name = self.param(_text(category, path, min_len=1, max_len=100), "text")
        # Delivery skips a contact only when the category is explicitly false, so a
        # contact who never chose is subscribed.
        if key == "subscribed":
            return f"COALESCE(c.subscriptions -> {name} <> 'false'::jsonb, true)"
        return f"COALESCE(c.subscriptions -> {name} = 'false'::jsonb, false)"

    def count_leaf(self, path: str) -> None:
        self.leaves += 1
        if self.leaves > MAX_LEAVES:
            raise QueryError(path, f"a query holds at most {MAX_LEAVES} conditions")

    def leaf(self, tree: dict[str, Any], path: str) -> str:
        for key in tree:
            if key not in _LEAF_KEYS:
                raise QueryError(
                    f"{path}.{key}", "unknown key; a condition has attribute, op, value"
                )
        self.count_leaf(path)
        attribute = _attribute_path(tree.get("attribute"), f"{path}.attribute")
        op = tree.get("op")
        if op not in _OPS:
            raise QueryError(f"{path}.op", f"op must be one of {', '.join(_OPS)}")
        if op in _NO_VALUE_OPS and "value" in tree:
            raise QueryError(f"{path}.value", f"'{op}' takes no value")
        if op not in _NO_VALUE_OPS and "value" not in tree:
            raise QueryError(f"{path}.value", f"'{op}' needs a value")
        json_path = self.param(attribute, "text[]")
        return _OPS[op](self, json_path, tree.get("value"), f"{path}.value")

    def eq(self, json_path: str, value: Any, path: str) -> str:
        # a jsonb parameter, not text cast per row: a generic plan would parse it per row
        scalar = self.param(_scalar(value, path), "jsonb")
        return f"COALESCE(c.attributes #> {json_path} = {scalar}, false)"

    def ne(self, json_path: str, value: Any, path: str) -> str:
        return f"(NOT {self.eq(json_path, value, path)})"

    def in_(self, json_path: str, value: Any, path: str) -> str:
        if not isinstance(value, list) or not 0 < len(value) <= MAX_IN_VALUES:
            raise QueryError(path, f"'in' takes a list of 1..{MAX_IN_VALUES} values")
        items = [_scalar(v, f"{path}.{i}") for i, v in enumerate(value)]
        listed = self.param(items, "jsonb[]")
        return f"COALESCE(c.attributes #> {json_path} = ANY({listed}), false)"

    def compare(self, op: str, json_path: str, value: Any, path: str) -> str:
        sign, text = _COMPARISONS[op], f"(c.attributes #>> {json_path})"
        if isinstance(value, str):
            bound = self.param(_text(value, path), "text")
            # Byte order ("C"), not the database's locale: predictable everywhere, and
            # ISO-8601 dates written in one format compare chronologically.
            typed, compared = "string", f'{text} COLLATE "C" {sign} {bound}'
        else:
            bound = self.param(str(_number(value, path)), "text")
            typed, compared = "number", f"{text}::numeric {sign} {bound}::numeric"
        # CASE, not AND: PostgreSQL may evaluate AND's operands in any order, and the cast
        # must only ever see a JSON number.
        return f"(CASE {_typeof(json_path)} WHEN '{typed}' THEN {compared} ELSE false END)"

    def contains(self, json_path: str, value: Any, path: str) -> str:
        element = self.param([_scalar(value, path)], "jsonb")
        when = [f"WHEN 'array' THEN c.attributes #> {json_path} @> {element}"]
        if isinstance(value, str):
            needle = self.param(_text(value, path, min_len=1), "text")
            text = f"lower(c.attributes #>> {json_path})"
            when.append(f"WHEN 'string' THEN strpos({text}, lower({needle})) > 0")
        return f"(CASE {_typeof(json_path)} {' '.join(when)} ELSE false END)"

    def starts_with(self, json_path: str, value: Any, path: str) -> str:
        prefix = self.param(_text(value, path, min_len=1), "text")
        text = f"lower(c.attributes #>> {json_path})"
        return (
            f"(CASE {_typeof(json_path)} WHEN 'string'"
            f" THEN starts_with({text}, lower({prefix})) ELSE false END)"
        )

    def exists(self, json_path: str, value: Any, path: str) -> str:
        # A key holding JSON null counts as absent.
        return f"COALESCE({_typeof(json_path)} <> 'null', false)"

    def not_exists(self, json_path: str, value: Any, path: str) -> str:
        return f"(NOT {self.exists(json_path, value, path)})"


def _typeof(json_path: str) -> str:
    return f"jsonb_typeof(c.attributes #> {json_path})"


def _comparison(op: str) -> Callable[[_Compiler, str, Any, str], str]:
    return lambda compiler, json_path, value, path: compiler.compare(op, json_path, value, path)


_OPS: dict[str, Callable[[_Compiler, str, Any, str], str]] = {
    "eq": _Compiler.eq,
    "ne": _Compiler.ne,
    "in": _Compiler.in_,
    **{op: _comparison(op) for op in _COMPARISONS},
    "contains": _Compiler.contains,
    "startsWith": _Compiler.starts_with,
    "exists": _Compiler.exists,
    "notExists": _Compiler.not_exists,
}


def _text(value: Any, path: str, *, min_len: int = 0, max_len: int = MAX_TEXT) -> str:
    if not isinstance(value, str):
        raise QueryError(path, "must be a string")
    if not min_len <= len(value) <= max_len:
        raise QueryError(path, f"must be {min_len}..{max_len} characters")
    # PostgreSQL text cannot hold NUL, and lone surrogates are not UTF-8: refuse both
    # here rather than let the driver fail with a 500.
    if "\x00" in value or _has_surrogate(value):
        raise QueryError(path, "must be valid Unicode text without NUL characters")
    return value


def _has_surrogate(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _number(value: Any, path: str) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise QueryError(path, "must be a number or a string")
    if isinstance(value, float) and not math.isfinite(value):
        raise QueryError(path, "must be a finite number")
    return value


def _scalar(value: Any, path: str) -> str | int | float | bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return _text(value, path)
    if isinstance(value, int | float):
        return _number(value, path)
    raise QueryError(path, "must be a string, a number or a boolean")


def _attribute_path(attribute: Any, path: str) -> list[str]:
    """``"city"`` or a nested path ``["address", "city"]``; names are exact keys."""
    keys = [attribute] if isinstance(attribute, str) else attribute
    if not isinstance(keys, list) or not 0 < len(keys) <= MAX_ATTRIBUTE_PATH:
        raise QueryError(
            path, f"attribute is a name or a list of 1..{MAX_ATTRIBUTE_PATH} names (a nested path)"
        )
    prefix = path if isinstance(attribute, str) else None
    return [_text(k, prefix or f"{path}.{i}", min_len=1, max_len=200) for i, k in enumerate(keys)]
