"""A batch evaluates each formula once per distinct input, with the same results."""

from __future__ import annotations

from typing import Any

from shared.personalization import Personalizer, compile_formula


def test_a_formula_reads_the_fields_it_names() -> None:
    formula = compile_formula('concat(upper(First_Name), " ", format(Dated, "dd-MM-yyyy"))')
    assert formula.fields == ("dated", "first_name")


def test_results_are_the_same_whether_remembered_or_not() -> None:
    formulas = {"when": 'format(Dated, "dd-MM-yyyy")', "shout": "upper(Name)"}
    batch = Personalizer({}, formulas, {})
    recipients: list[dict[str, Any]] = [
        {"dated": "2026-11-21", "name": "ada"},
        {"dated": "2026-11-21", "name": "bob"},
        {"dated": 1, "name": True},  # equal keys to 1.0 and 1 below, printed differently
        {"dated": 1.0, "name": 1},
        {"dated": ["not", "hashable"], "name": {"x": 1}},
        {"dated": "2026-11-21", "name": "ada"},
    ]
    for attributes in recipients:
        fresh = Personalizer({}, formulas, {}).values_for({}, attributes)
        assert batch.values_for({}, attributes) == fresh
