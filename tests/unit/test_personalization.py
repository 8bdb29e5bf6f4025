"""Personalization: merge tags, precedence, case-insensitive names, formulas."""

from __future__ import annotations

from typing import Any

import pytest

from shared.personalization import (
    FormulaError,
    MergeTagError,
    PersonalizationError,
    Personalizer,
    compile_formula,
    compile_tree,
    find_merge_tags,
    render,
)


def _deep(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


SEED_DEFAULTS = {"First_Name": "Valued Customer", "expiration_date": "", "cust_timestamp": ""}
SEED_FORMULAS = {
    "cust_timestamp": 'format(Dated, "dd-MM-yyyy")',
    "expiration_date": 'format(Customer_Date, "dd-MM-yyyy")',
}
SEED_TEXT = (
    "Hello %%First_Name%%, this offer expires at %%expiration_date%% "
    "starting now %%cust_timestamp%%"
)


def values(
    personalization: dict[str, Any] | None = None,
    attributes: dict[str, Any] | None = None,
    send_defaults: dict[str, Any] | None = None,
) -> dict[str, Any]:
    p = Personalizer(SEED_DEFAULTS, SEED_FORMULAS, send_defaults)
    return p.values_for(personalization, attributes)


@pytest.mark.parametrize(
    ("personalization", "attributes", "send_defaults", "expected"),
    [
        # the seed's send: recipient personalization, lower-case name fills %%First_Name%%
        ({"first_name": "Michael"}, {}, {"first_name": "Valued"}, "Hello Michael"),
        # recipient personalization beats the contact's attributes
        ({"first_name": "Michael"}, {"FIRST_NAME": "Mike"}, {}, "Hello Michael"),
        # attributes beat the send's defaults
        ({}, {"first_name": "Mike"}, {"first_name": "Valued"}, "Hello Mike"),
        # send defaults beat content defaults
        ({}, {}, {"FIRST_name": "Valued"}, "Hello Valued"),
        # content defaults are the last resort
        ({}, {}, {}, "Hello Valued Customer"),
    ],
)
def test_merge_tag_precedence(
    personalization: dict[str, Any],
    attributes: dict[str, Any],
    send_defaults: dict[str, Any],
    expected: str,
) -> None:
    assert (
        render("Hello %%First_Name%%", values(personalization, attributes, send_defaults))
        == expected
    )


def test_formula_fills_tag_from_attribute_and_falls_back_to_default_when_missing() -> None:
    v = values({"first_name": "Michael"}, {"Dated": "2026-03-05T10:00:00Z"})
    assert render(SEED_TEXT, v) == "Hello Michael, this offer expires at  starting now 05-03-2026"


def test_formula_result_loses_to_a_value_given_directly() -> None:
    v = values({"cust_timestamp": "yesterday"}, {"Dated": "2026-03-05"})
    assert render("%%cust_timestamp%%", v) == "yesterday"


def test_formula_beats_send_defaults() -> None:
    v = values({}, {"Dated": "2026-03-05"}, {"cust_timestamp": "never"})
    assert render("%%cust_timestamp%%", v) == "05-03-2026"


@pytest.mark.parametrize(
    ("formula", "attributes", "expected"),
    [
        ('format(d, "dd-MM-yyyy")', {"d": "2024-02-29"}, "29-02-2024"),
        ('format(d, "yyyy/MM/dd HH:mm")', {"d": "2024-02-29T13:05:00+00:00"}, "2024/02/29 13:05"),
        ('format(d, "d MMM yy")', {"d": "2024-02-09"}, "9 Feb 24"),
        ('format(d, "EEEE, MMMM d")', {"d": "2024-02-09"}, "Friday, February 9"),
        ('format(d, "dd-MM-yyyy")', {"d": 1709251200000}, "01-03-2024"),  # epoch millis
        ("format(d, \"'day' dd\")", {"d": "2024-02-09"}, "day 09"),
        ('format(d, "dd-MM-yyyy")', {}, None),
        ("upper(name)", {"name": "ada"}, "ADA"),
        ("lower(name)", {"name": "ADA"}, "ada"),
        ("trim(name)", {"name": "  ada "}, "ada"),
        ("capitalize(name)", {"name": "ada"}, "Ada"),
        ('concat(first, " ", last)', {"first": "Ada", "last": "Lovelace"}, "Ada Lovelace"),
        ('coalesce(nick, first, "friend")', {"first": "Ada"}, "Ada"),
        ('coalesce(nick, "friend")', {"nick": ""}, "friend"),
        ("left(code, 3)", {"code": "ABCDEF"}, "ABC"),
        ("right(code, 2)", {"code": "ABCDEF"}, "EF"),
        ('format(addDays(d, 7), "dd-MM-yyyy")', {"d": "2024-02-25"}, "03-03-2024"),
        ("upper(Name)", {"name": "ada"}, "ADA"),  # field names are case-insensitive
    ],
)
def test_formula_functions(formula: str, attributes: dict[str, Any], expected: str | None) -> None:
    folded = {k.casefold(): v for k, v in attributes.items()}
    assert compile_formula(formula).evaluate(folded) == expected


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        # where CLDR (babel) reads a letter otherwise, the Java meaning is kept
        ("EEE u", "Thu 4"),  # u: day number of the week, Monday = 1 (CLDR: the year)
        ("HH:mm:ss.SSS", "13:05:07.007"),  # S: milliseconds (CLDR: a fraction)
        ("S", "7"),
        ("EEEEE MMMMM", "Thursday February"),  # 4+ letters: the full name (CLDR: narrow)
        ("hh:mm aa", "01:05 PM"),
        ("GGGG yyyyy", "AD 02024"),
        ("h 'o''clock' ''yy", "1 o'clock '24"),  # quotes as in Java
        ("yyyy-MM-dd'T'HH:mmXXX Z", "2024-02-29T13:05+02:00 +0200"),  # the date's own offset
        ("YYYY-'W'ww D", "2024-W09 60"),  # week year, week of year (en_US), day of year
    ],
)
def test_date_patterns_mean_what_they_mean_in_java(pattern: str, expected: str) -> None:
    formula = compile_formula(f'format(d, "{pattern}")')
    assert formula.evaluate({"d": "2024-02-29T13:05:07.007+02:00"}) == expected


def test_a_date_without_an_offset_is_utc() -> None:
    formula = compile_formula('format(d, "dd-MM-yyyy HH:mm Z")')
    assert formula.evaluate({"d": "2024-02-29T13:05"}) == "29-02-2024 13:05 +0000"
    assert formula.evaluate({"d": 1709251200000}) == "01-03-2024 00:00 +0000"


@pytest.mark.parametrize(
    "formula",
    [
        "format(Dated, ",  # ends early
        'format(Dated "dd")',  # missing comma
        "eval(x)",  # unknown function
        "__import__('os')",  # not a name we call
        'format(Dated, "dd-MM-yyyy", 3)',  # too many arguments
        'format(Dated, "qq-MM")',  # unsupported pattern letters
        'format(Dated, "QQ yyyy")',  # a CLDR letter Java does not have
        'format(Dated, "ddd")',  # longer than the field can be
        'format(Dated, "\'at HH")',  # an unterminated quote
        "upper(a) upper(b)",  # trailing tokens
        "",
        'concat("a" + "b")',
    ],
)
def test_bad_formulas_are_rejected(formula: str) -> None:
    with pytest.raises(FormulaError):
        compile_formula(formula)


def test_unclosed_merge_tag_is_reported() -> None:
    assert find_merge_tags("Hi %%First_Name%% and %%Last%%") == ["First_Name", "Last"]
    with pytest.raises(MergeTagError):
        find_merge_tags("Hi %%First_Name")


def test_render_tree_personalizes_every_string_and_leaves_other_values() -> None:
    p = Personalizer({}, {}, {})
    tree = {
        "title": "Hi %%n%%",
        "maxViews": 3,
        "rules": ["r-%%n%%"],
        "action": {"value": "x/%%N%%"},
    }
    out = p.render_tree(tree, p.values_for({"n": "Ada"}, {}))
    assert out == {
        "title": "Hi Ada",
        "maxViews": 3,
        "rules": ["r-Ada"],
        "action": {"value": "x/Ada"},
    }


def test_a_compiled_tree_renders_like_render_tree_and_shares_what_has_no_tags() -> None:
    p = Personalizer({"n": "friend"}, {}, {})
    static = {"color": "#00ff00", "action": {"type": "url", "value": ""}}
    tree = {"payload": {"gcm": {"content": {"title": "Hi %%N%%", **static}, "rules": ["a"]},
                        "apns": {"content": {"text": "Hey %%n%%, %%missing%%!"}}},
            "static": static}  # fmt: skip
    render = compile_tree(tree)
    for given in ({"n": "Ada"}, {}):
        values = p.values_for(given, {})
        assert render(values) == p.render_tree(tree, values)
    assert render(p.values_for({}, {}))["static"] is static


@pytest.mark.parametrize(
    ("formula", "attributes"),
    [
        ('format(d, "dd-MM-yyyy")', {"d": 1e20}),  # the issue: OSError errno 75 before
        ('format(d, "dd-MM-yyyy")', {"d": 10**30}),
        ('format(d, "dd-MM-yyyy")', {"d": -(10**15)}),  # before year 1
        ('format(d, "dd-MM-yyyy")', {"d": 253402300800000}),  # year 10000
        ('format(d, "dd-MM-yyyy")', {"d": float("nan")}),
        ('format(d, "dd-MM-yyyy")', {"d": float("inf")}),
        ("format(d, p)", {"d": "2024-02-09", "p": "x" * 1000}),
        ("format(d, p)", {"d": "2024-02-09", "p": "qq"}),
        ("addDays(d, n)", {"d": "2024-02-09", "n": 10**30}),
        ("addDays(d, n)", {"d": "9999-12-30", "n": 5}),
        ("left(s, n)", {"s": "abc", "n": 10**30}),
        ("right(s, n)", {"s": "abc", "n": "lots"}),
        ("left(s, n)", {"s": "abc", "n": float("nan")}),
        ("right(s, n)", {"s": "abc", "n": None}),
        ("upper(s)", {"s": 10**5000}),  # an int too long to print
        ("str(s)", {"s": _deep(5000)}),  # a list too deep to print
        ("concat(s, s, s, s, s)", {"s": "x" * 5000}),  # longer than a result may be
    ],
)
def test_formulas_raise_only_formula_error_on_hostile_values(
    formula: str, attributes: dict[str, Any]
) -> None:
    folded = {k.casefold(): v for k, v in attributes.items()}
    with pytest.raises(FormulaError):
        compile_formula(formula).evaluate(folded)


@pytest.mark.parametrize(
    ("formula", "attributes", "expected"),
    [
        ('format(d, "yyyy-MM-dd")', {"d": -62135596800000}, "0001-01-01"),  # year 1, as Java
        ('format(d, "dd-MM-yyyy")', {"d": 253402214400000}, "31-12-9999"),
        ('format(d, "dd-MM-yyyy")', {"d": "not a date"}, None),  # not a date: the default
        ('format(d, "dd-MM-yyyy")', {"d": "2024-02-09" * 20}, None),
        ("left(s, n)", {"s": "abcdef", "n": "2"}, "ab"),
        ("addDays(d, n)", {"d": "2024-02-09", "n": True}, None),
    ],
)
def test_formula_edges_that_are_not_errors(
    formula: str, attributes: dict[str, Any], expected: str | None
) -> None:
    folded = {k.casefold(): v for k, v in attributes.items()}
    assert compile_formula(formula).evaluate(folded) == expected


@pytest.mark.parametrize(
    "formula",
    [
        "upper(" * 40 + "x" + ")" * 40,  # nested too deep
        "left(x, 1" + "0" * 30 + ")",  # a number literal too long for an int64
        "concat(" + ", ".join(['"ab"'] * 19) + ")" + " " * 3000,  # too long a source
    ],
)
def test_formulas_too_large_to_compile_are_rejected(formula: str) -> None:
    with pytest.raises(FormulaError):
        compile_formula(formula)


def test_a_failing_formula_names_itself_for_the_recipient_it_failed_on() -> None:
    with pytest.raises(PersonalizationError) as failed:
        values({}, {"Customer_Date": 1e20})
    assert failed.value.field == "expiration_date"
    assert "9999" in failed.value.error
    # a missing input is no failure: the tag falls back to the defaults
    assert render("%%expiration_date%%", values({}, {})) == ""
