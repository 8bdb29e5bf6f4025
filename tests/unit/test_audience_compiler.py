"""The contact-source query compiler: SQL shape, parameters only, and errors naming the node."""

from __future__ import annotations

import re
from typing import Any

import pytest
from pydantic import ValidationError

from services.publisher.contacts.sources.models import CreateContactSource
from shared.audience import (
    MAX_DEPTH,
    MAX_LEAVES,
    QueryError,
    Source,
    audience_condition,
    compile_query,
    source_condition,
)

INJECTION = "x'; DROP TABLE contacts; --"


def placeholders(sql: str) -> set[int]:
    return {int(n) for n in re.findall(r"\$(\d+)", sql)}


def test_a_leaf_compiles_to_a_condition_over_c_with_its_values_as_parameters() -> None:
    sql, params = compile_query({"attribute": "city", "op": "eq", "value": "Paris"})
    assert sql == "COALESCE(c.attributes #> $1::text[] = $2::jsonb, false)"
    assert params == [["city"], "Paris"]


def test_parameters_are_numbered_from_first_param_without_gaps() -> None:
    query = {
        "all": [
            {"attribute": "age", "op": "gte", "value": 18},
            {"any": [{"subscribed": "news"}, {"attribute": "vip", "op": "exists"}]},
        ]
    }
    sql, params = compile_query(query, first_param=7)
    assert placeholders(sql) == set(range(7, 7 + len(params)))
    assert sql.startswith("(") and " AND " in sql and " OR " in sql


@pytest.mark.parametrize(
    "query",
    [
        {"attribute": "city", "op": "eq", "value": INJECTION},
        {"attribute": INJECTION, "op": "exists"},
        {"attribute": ["address", INJECTION], "op": "ne", "value": 1},
        {"attribute": "city", "op": "in", "value": ["Paris", INJECTION]},
        {"attribute": "city", "op": "contains", "value": INJECTION},
        {"attribute": "city", "op": "startsWith", "value": INJECTION},
        {"attribute": "city", "op": "lt", "value": INJECTION},
        {"subscribed": INJECTION},
        {"not": {"unsubscribed": INJECTION}},
    ],
)
def test_no_value_name_or_category_ever_appears_in_the_sql(query: dict[str, Any]) -> None:
    sql, params = compile_query(query)
    assert "DROP" not in sql and "'x" not in sql and "--" not in sql
    assert "Paris" not in sql and "address" not in sql
    flat = [v for p in params for v in (p if isinstance(p, list) else [p])]
    assert any(INJECTION in str(v) for v in flat)


def test_ordering_casts_only_json_numbers_and_compares_strings_in_byte_order() -> None:
    numeric, params = compile_query({"attribute": "age", "op": "gt", "value": 30})
    assert numeric.startswith("(CASE jsonb_typeof(c.attributes #> $1::text[]) WHEN 'number'")
    assert "::numeric > $2::text::numeric ELSE false END" in numeric
    assert params == [["age"], "30"]
    text, _ = compile_query({"attribute": "since", "op": "lte", "value": "2024-01-01"})
    assert "WHEN 'string'" in text and 'COLLATE "C" <=' in text


def test_not_and_ne_and_not_exists_are_complements() -> None:
    negated, _ = compile_query({"not": {"attribute": "city", "op": "eq", "value": "Paris"}})
    ne, _ = compile_query({"attribute": "city", "op": "ne", "value": "Paris"})
    assert negated == ne == "(NOT COALESCE(c.attributes #> $1::text[] = $2::jsonb, false))"
    absent, _ = compile_query({"attribute": "vip", "op": "notExists"})
    assert absent.startswith("(NOT COALESCE(jsonb_typeof(")


def test_subscriptions_follow_delivery_only_an_explicit_false_unsubscribes() -> None:
    subscribed, params = compile_query({"subscribed": "news"})
    assert subscribed == "COALESCE(c.subscriptions -> $1::text <> 'false'::jsonb, true)"
    unsubscribed, _ = compile_query({"unsubscribed": "news"})
    assert unsubscribed == "COALESCE(c.subscriptions -> $1::text = 'false'::jsonb, false)"
    assert params == ["news"]


def test_a_list_source_is_an_exists_over_its_members() -> None:
    sql, params = source_condition(Source(42, "list"), first_param=3)
    assert "FROM contact_source_members m" in sql and "m.source_id = $3::bigint" in sql
    assert "m.contact_id = c.contact_id" in sql
    assert params == [42]


def test_an_audience_is_the_include_union_minus_the_exclude_union() -> None:
    query = {"attribute": "city", "op": "eq", "value": "Paris"}
    sql, params = audience_condition(
        [Source(1, "list"), Source(2, "query", query)], [Source(3, "list")], first_param=2
    )
    assert params == [1, ["city"], "Paris", 3]
    assert placeholders(sql) == {2, 3, 4, 5}
    assert " OR " in sql and " AND NOT (EXISTS" in sql
    with pytest.raises(ValueError):
        audience_condition([], [Source(3, "list")])


def nested(depth: int) -> dict[str, Any]:
    tree: dict[str, Any] = {"attribute": "a", "op": "exists"}
    for _ in range(depth - 1):
        tree = {"not": tree}
    return tree


def leaves(count: int) -> dict[str, Any]:
    return {"any": [{"attribute": "a", "op": "eq", "value": i} for i in range(count)]}


def test_limits_on_depth_and_leaves() -> None:
    compile_query(nested(MAX_DEPTH))
    with pytest.raises(QueryError) as deep:
        compile_query(nested(MAX_DEPTH + 1))
    assert deep.value.path == "query" + ".not" * MAX_DEPTH
    compile_query(leaves(MAX_LEAVES))
    with pytest.raises(QueryError) as wide:
        compile_query(leaves(MAX_LEAVES + 1))
    assert wide.value.path == f"query.any.{MAX_LEAVES}"


@pytest.mark.parametrize(
    ("query", "path"),
    [
        ("city = Paris", "query"),
        ({}, "query"),
        (
            {"all": [{"attribute": "a", "op": "eq", "value": 1}, {"attribute": "b", "op": "like"}]},
            "query.all.1.op",
        ),
        ({"all": [{"attribute": "a", "op": "like", "value": 1}]}, "query.all.0.op"),
        ({"any": []}, "query.any"),
        ({"all": {"attribute": "a", "op": "exists"}}, "query.all"),
        ({"not": [1]}, "query.not"),
        ({"all": [], "any": []}, "query"),
        ({"or": []}, "query"),
        ({"attribute": "a", "op": "eq"}, "query.value"),
        ({"attribute": "a", "op": "exists", "value": 1}, "query.value"),
        ({"attribute": "a", "op": "eq", "value": None}, "query.value"),
        ({"attribute": "a", "op": "eq", "value": {"x": 1}}, "query.value"),
        ({"attribute": "a", "op": "gt", "value": True}, "query.value"),
        ({"attribute": "a", "op": "gt", "value": float("nan")}, "query.value"),
        ({"attribute": "a", "op": "in", "value": []}, "query.value"),
        ({"attribute": "a", "op": "in", "value": [1, [2]]}, "query.value.1"),
        ({"attribute": "a", "op": "contains", "value": ""}, "query.value"),
        ({"attribute": "a", "op": "startsWith", "value": 3}, "query.value"),
        ({"attribute": "a", "op": "eq", "value": "nul\x00"}, "query.value"),
        ({"attribute": "a", "op": "eq", "value": "\ud800"}, "query.value"),
        ({"attribute": "", "op": "exists"}, "query.attribute"),
        ({"attribute": ["a", 3], "op": "exists"}, "query.attribute.1"),
        ({"attribute": [], "op": "exists"}, "query.attribute"),
        ({"op": "exists"}, "query.attribute"),
        ({"attribute": "a", "op": "exists", "extra": 1}, "query.extra"),
        ({"subscribed": ""}, "query.subscribed"),
        ({"any": [{"unsubscribed": 5}]}, "query.any.0.unsubscribed"),
    ],
)
def test_a_bad_query_names_the_path_of_the_bad_node(query: Any, path: str) -> None:
    with pytest.raises(QueryError) as error:
        compile_query(query)
    assert error.value.path == path, error.value


def test_listed_contact_ids_are_text_and_booleans_are_refused() -> None:
    body = CreateContactSource(name="vip", contactIds=[13507, "13507", "a"])
    assert body.contactIds == ["13507", "13507", "a"]
    with pytest.raises(ValidationError):
        CreateContactSource(name="vip", contactIds=[True])
    with pytest.raises(ValidationError):
        CreateContactSource(name="vip", contactIds=[1.5])
