"""Contents as sync renders them: compiled once per content id, kept in a bounded LRU.

An inbox entry filed by value holds the texts of its merge tags and the id of its
content. Contents are immutable once published and a deleted content keeps its body
(``deleted_at`` only hides it from operators), so a compiled content never goes stale:
what is cached is dropped only to bound memory, and a miss reads the row again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson
from cachetools import LRUCache

from shared.personalization import compile_tree
from shared.personalization.merge import Renderer
from shared.personalization.stored import JsonRenderer, json_renderer

MAX_CONTENTS = 5_000


@dataclass
class CompiledContent:
    id: str
    kind: str
    body: dict[str, Any]
    _platforms: dict[str, JsonRenderer | None] = field(default_factory=dict)
    _tree: Renderer | None = None

    def message_fields(self, platform: str, values: Mapping[str, str]) -> bytes | None:
        """``"template":…,"rules":…,"content":…`` of an in-app message for a platform,
        rendered with an entry's stored texts; None when the content has no template for
        it."""
        try:
            render = self._platforms[platform]
        except KeyError:
            render = self._platforms[platform] = _fields_renderer(self.body, platform)
        return None if render is None else render(values)

    def rendered(self, values: Mapping[str, str]) -> dict[str, Any]:
        """The whole body rendered (App Inbox entries: a page is at most 100)."""
        if self._tree is None:  # the default copy: locale variants are stored rendered
            self._tree = compile_tree({k: v for k, v in self.body.items() if k != "locales"})
        rendered: dict[str, Any] = self._tree(values)
        return rendered


def _message_fields(template: Mapping[str, Any]) -> dict[str, Any]:
    """What a device gets of a platform's template."""
    return {
        "template": template.get("template"),
        "rules": template.get("rules", []),
        "content": template.get("content", {}),
    }


def _fields_renderer(body: Mapping[str, Any], platform: str) -> JsonRenderer | None:
    payload = body.get("payload")
    template = payload.get(platform) if isinstance(payload, dict) else None
    if not isinstance(template, dict):
        return None
    render = json_renderer(_message_fields(template))
    return lambda values: render(values)[1:-1]  # the fields, without the object's braces


class ContentCache:
    def __init__(self, max_contents: int = MAX_CONTENTS) -> None:
        self._contents: LRUCache[str, CompiledContent] = LRUCache(max_contents)

    async def get_many(
        self, pool: asyncpg.Pool, content_ids: set[str]
    ) -> dict[str, CompiledContent]:
        """The contents by id (one query for those not cached); an id with no row (never
        happens for a filed entry) is absent."""
        found: dict[str, CompiledContent] = {}
        missing = []
        for content_id in content_ids:
            try:
                found[content_id] = self._contents[content_id]
            except KeyError:
                missing.append(content_id)
        if missing:
            rows = await pool.fetch(
                "SELECT id, kind, body FROM contents WHERE id = ANY($1::text[])", missing
            )
            for row in rows:
                compiled = CompiledContent(row["id"], row["kind"], row["body"])
                found[row["id"]] = self._contents[row["id"]] = compiled
        return found


CONTENTS = ContentCache()


def dumps_fields(template: Mapping[str, Any]) -> bytes:
    """The same fields for an entry stored rendered (filed before values were stored, or
    a content whose URLs are personalized)."""
    return orjson.dumps(_message_fields(template))[1:-1]
