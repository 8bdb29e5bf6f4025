"""Merge-tag rendering with the documented precedence."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from shared.personalization.formulas import Formula, FormulaError, compile_formula

_TAG = re.compile(r"%%([A-Za-z_][A-Za-z0-9_.\- ]{0,99})%%")


class MergeTagError(ValueError):
    pass


def find_merge_tags(text: str) -> list[str]:
    """The tag names used in ``text``; raises MergeTagError on a ``%%`` left unclosed."""
    names = _TAG.findall(text)
    if _TAG.sub("", text).count("%%"):
        raise MergeTagError("a merge tag is not closed or has an invalid name (use %%Name%%)")
    return names


def _folded(values: Mapping[str, Any] | None) -> dict[str, Any]:
    return {str(k).casefold(): v for k, v in (values or {}).items()}


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class Personalizer:
    """Resolves merge-tag values for one recipient of one send.

    Build once per content (formulas compile once), then call ``for_recipient``.
    """

    def __init__(
        self,
        content_defaults: Mapping[str, Any] | None,
        formulas: Mapping[str, str] | None,
        send_defaults: Mapping[str, Any] | None,
    ) -> None:
        self._content_defaults = _folded(content_defaults)
        self._send_defaults = _folded(send_defaults)
        self._formulas: dict[str, Formula] = {
            name.casefold(): compile_formula(src) for name, src in (formulas or {}).items()
        }

    def values_for(
        self, personalization: Mapping[str, Any] | None, attributes: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        own = _folded(attributes)
        own.update(_folded(personalization))
        values = dict(self._content_defaults)
        values.update(self._send_defaults)
        for name, formula in self._formulas.items():
            if name in own:
                continue
            try:
                result = formula.evaluate(own)
            except FormulaError:
                result = None
            if result is not None:
                values[name] = result
        values.update(own)
        return values

    def render_tree(self, tree: Any, values: Mapping[str, Any]) -> Any:
        """Render every string inside a JSON-like tree."""
        if isinstance(tree, str):
            return render(tree, values)
        if isinstance(tree, dict):
            return {k: self.render_tree(v, values) for k, v in tree.items()}
        if isinstance(tree, list):
            return [self.render_tree(v, values) for v in tree]
        return tree


def render(text: str, values: Mapping[str, Any]) -> str:
    """Replace each ``%%Name%%`` with its value (case-folded lookup), or empty."""
    if "%%" not in text:
        return text
    return _TAG.sub(lambda m: _text(values.get(m.group(1).casefold())), text)
