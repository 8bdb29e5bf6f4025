"""Merge-tag rendering with the documented precedence."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from shared.personalization.formulas import Formula, FormulaError, compile_formula

_TAG = re.compile(r"%%([A-Za-z_][A-Za-z0-9_.\- ]{0,99})%%")


# Formula results remembered per Personalizer (one per batch): bounds its memory.
_MEMO_MAX = 4096


class MergeTagError(ValueError):
    pass


class PersonalizationError(ValueError):
    """One recipient's copy cannot be personalized: ``field`` names the formula or merge
    tag, ``error`` says why. Delivery skips that recipient only."""

    def __init__(self, field: str, error: str) -> None:
        super().__init__(f"{field}: {error}")
        self.field, self.error = field, error


def find_merge_tags(text: str) -> list[str]:
    """The tag names used in ``text``; raises MergeTagError on a ``%%`` left unclosed."""
    names = _TAG.findall(text)
    if _TAG.sub("", text).count("%%"):
        raise MergeTagError("a merge tag is not closed or has an invalid name (use %%Name%%)")
    return names


def tag_names(tree: Any) -> set[str]:
    """The merge-tag names (case-folded) used anywhere in a JSON-like tree."""
    if isinstance(tree, str):
        return {name.casefold() for name in _TAG.findall(tree)} if "%%" in tree else set()
    items = tree.values() if isinstance(tree, dict) else tree if isinstance(tree, list) else ()
    return set().union(*(tag_names(item) for item in items))


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

    Build once per content (formulas compile once), then call ``values_for`` per
    recipient: it raises PersonalizationError when a formula fails on that recipient's
    values (a missing input is no failure: the tag falls back to the defaults).
    """

    def __init__(
        self,
        content_defaults: Mapping[str, Any] | None,
        formulas: Mapping[str, str] | None,
        send_defaults: Mapping[str, Any] | None,
    ) -> None:
        self._content_defaults = _folded(content_defaults)
        self._send_defaults = _folded(send_defaults)
        self._formulas: dict[str, Formula] = {}
        # Results by the values a formula reads (recipients of one batch share most of
        # them: a date, a plan, a city), so each distinct input is evaluated once.
        self._results: dict[tuple[str, tuple[Any, ...]], Any] = {}
        for name, source in (formulas or {}).items():
            try:
                self._formulas[name.casefold()] = compile_formula(source)
            except FormulaError as exc:
                raise PersonalizationError(name, str(exc)) from exc

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
                result = self._evaluate(name, formula, own)
            except FormulaError as exc:
                raise PersonalizationError(name, str(exc)) from exc
            if result is not None:
                values[name] = result
        values.update(own)
        return values

    def _evaluate(self, name: str, formula: Formula, own: Mapping[str, Any]) -> Any:
        # keyed by type too: True, 1 and 1.0 are equal keys but may print differently
        key = (name, tuple((type(v), v) for v in map(own.get, formula.fields)))
        try:
            return self._results[key]
        except KeyError:
            pass
        except TypeError:  # a list or an object among the inputs: not memoized
            return formula.evaluate(own)
        result = formula.evaluate(own)
        if len(self._results) < _MEMO_MAX:
            self._results[key] = result
        return result

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


Renderer = Callable[[Mapping[str, Any]], Any]


def compile_tree(tree: Any) -> Renderer:
    """A renderer for a JSON-like tree, parsed once: rendering a recipient only joins the
    strings that carry merge tags; subtrees without tags are shared, never copied."""
    renderer, _ = _compile(tree)
    return renderer


def _compile(tree: Any) -> tuple[Renderer, bool]:
    """(renderer, whether the result depends on the values)."""
    if isinstance(tree, str):
        return _compile_text(tree)
    if isinstance(tree, dict | list):
        return _compile_container(tree)
    return (lambda _values: tree), False


def _compile_text(text: str) -> tuple[Renderer, bool]:
    if "%%" not in text or not _TAG.search(text):
        return (lambda _values: text), False
    parts = _TAG.split(text)
    literals, names = parts[0::2], [name.casefold() for name in parts[1::2]]

    def render_text(values: Mapping[str, Any]) -> str:
        out = [literals[0]]
        for name, literal in zip(names, literals[1:], strict=True):
            try:
                out += (_text(values.get(name)), literal)
            except Exception as exc:  # e.g. an int too long to print, a value nested too deep
                raise PersonalizationError(name, f"{type(exc).__name__}: {str(exc)[:160]}") from exc
        return "".join(out)

    return render_text, True


def _compile_container(tree: dict[Any, Any] | list[Any]) -> tuple[Renderer, bool]:
    items = list(tree.items()) if isinstance(tree, dict) else list(enumerate(tree))
    compiled = [(key, *_compile(value)) for key, value in items]
    dynamic = [(key, renderer) for key, renderer, varies in compiled if varies]
    if not dynamic:
        return (lambda _values: tree), False
    copy = dict if isinstance(tree, dict) else list

    def render_container(values: Mapping[str, Any]) -> Any:
        out: Any = copy(tree)
        for key, renderer in dynamic:
            out[key] = renderer(values)
        return out

    return render_container, True
