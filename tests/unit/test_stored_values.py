"""Entries filed by value: the texts delivery stores and the JSON sync renders from them
give exactly the copy delivery would have rendered."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.personalization import PersonalizationError, compile_tree, tag_names
from shared.personalization.stored import json_renderer, platform_bits, stored_values

NAMES = ["first_name", "City", "x"]
text_with_tags = st.lists(
    st.one_of(st.text(max_size=8), st.sampled_from([f"%%{n}%%" for n in NAMES] + ["%", "%%"])),
    max_size=6,
).map("".join)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False), text_with_tags,
)  # fmt: skip
trees = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)
values = st.dictionaries(
    st.sampled_from([n.casefold() for n in NAMES]),
    st.one_of(st.text(), st.integers(), st.none(), st.booleans(), st.floats(allow_nan=False)),
)


@settings(max_examples=400, deadline=None)
@given(tree=trees, own=values)
def test_the_json_sync_renders_is_the_copy_delivery_would_have_rendered(
    tree: Any, own: dict[str, Any]
) -> None:
    texts = stored_values(sorted(tag_names(tree)), own) or {}
    try:
        expected = orjson.dumps(compile_tree(tree)(own))
    except PersonalizationError:
        return
    assert json_renderer(tree)(texts) == expected


def test_only_the_tags_used_are_stored_and_empty_texts_are_left_out() -> None:
    own = {"first_name": "Ada", "age": 36, "city": "", "flag": False}
    assert stored_values(["first_name", "flag", "city", "missing"], own) == {
        "first_name": "Ada", "flag": "false",
    }  # fmt: skip
    assert stored_values(["missing"], own) is None


def test_a_value_that_cannot_be_printed_names_its_tag() -> None:
    with pytest.raises(PersonalizationError) as caught:
        stored_values(["n"], {"n": 10**5000})
    assert caught.value.field == "n"


def test_escapes_and_non_ascii_survive() -> None:
    tree = {"title": 'Hi "%%Name%%"\n', "emoji": "🐦 %%name%%", "n": [1, 2.5, None, True]}
    texts = {"name": 'Zoë </script> "\\\u2028'}
    assert orjson.loads(json_renderer(tree)(texts)) == {
        "title": f'Hi "{texts["name"]}"\n', "emoji": f"🐦 {texts['name']}",
        "n": [1, 2.5, None, True],
    }  # fmt: skip


def test_platform_bits() -> None:
    assert platform_bits({"payload": {"gcm": {}, "web": {}}}) == 1 | 4
    assert platform_bits({"payload": {"apns": {}}}) == 2
    assert platform_bits({"title": "an App Inbox message"}) == 0
