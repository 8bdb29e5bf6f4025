"""What an inbox entry stores, and how sync turns it back into the recipient's message.

Values are fixed at launch: delivery resolves each merge tag the content uses to the text
it renders as (``stored_values``) and files only those texts with a reference to the
content. Contents are immutable once published (an edit is a new content; a deletion
keeps the body), so rendering the content with the stored texts at sync gives exactly
the copy delivery would have rendered.

Sync renders JSON, not trees: ``json_renderer`` compiles a content tree once into
constant byte runs and value slots, so a message costs a join of bytes and the escaping
of its own values — the same bytes ``orjson.dumps`` would give for the rendered tree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson

from shared.personalization.merge import _TAG, PersonalizationError, _text

# In-app templates by platform, as the bits of ``inbox_entries.platforms``.
PLATFORM_BITS = {"gcm": 1, "apns": 2, "web": 4}

StoredValues = dict[str, str]
JsonRenderer = Callable[[Mapping[str, str]], bytes]


def platform_bits(body: Mapping[str, Any]) -> int:
    """The platforms an in-app content has a template for, as bits."""
    payload = body.get("payload")
    platforms = payload if isinstance(payload, dict) else {}
    return sum(bit for name, bit in PLATFORM_BITS.items() if name in platforms)


def stored_values(names: Iterable[str], values: Mapping[str, Any]) -> StoredValues | None:
    """The text each used tag renders as (empty texts left out: a missing tag renders
    empty anyway); None when there is none. Raises PersonalizationError naming the tag
    whose value cannot be printed, as rendering would."""
    texts: StoredValues = {}
    for name in names:
        try:
            text = _text(values.get(name))
        except Exception as exc:  # e.g. an int too long to print, a value nested too deep
            raise PersonalizationError(name, f"{type(exc).__name__}: {str(exc)[:160]}") from exc
        if text:
            texts[name] = text
    return texts or None


def json_renderer(tree: Any) -> JsonRenderer:
    """A function of the stored texts giving ``orjson.dumps`` of the rendered tree."""
    parts: list[bytes | str] = []  # bytes: constant JSON; str: the case-folded tag name
    _emit(tree, parts)
    merged: list[bytes | str] = []
    for part in parts:
        if isinstance(part, bytes) and merged and isinstance(merged[-1], bytes):
            merged[-1] += part
        else:
            merged.append(part)
    if len(merged) == 1 and isinstance(merged[0], bytes):
        constant = merged[0]
        return lambda _values: constant

    def render(values: Mapping[str, str]) -> bytes:
        return b"".join(
            part if isinstance(part, bytes) else _escaped(values.get(part, "")) for part in merged
        )

    return render


def _escaped(text: str) -> bytes:
    return orjson.dumps(text)[1:-1]


def _emit(tree: Any, parts: list[bytes | str]) -> None:
    if isinstance(tree, str):
        pieces = _TAG.split(tree) if "%%" in tree else [tree]
        parts.append(b'"')
        for i, piece in enumerate(pieces):
            if i % 2:
                parts.append(piece.casefold())
            elif piece:
                parts.append(_escaped(piece))
        parts.append(b'"')
    elif isinstance(tree, dict):
        parts.append(b"{")
        for i, (key, value) in enumerate(tree.items()):
            parts.append((b"," if i else b"") + orjson.dumps(key) + b":")
            _emit(value, parts)
        parts.append(b"}")
    elif isinstance(tree, list):
        parts.append(b"[")
        for i, value in enumerate(tree):
            if i:
                parts.append(b",")
            _emit(value, parts)
        parts.append(b"]")
    else:
        parts.append(orjson.dumps(tree))
