"""Which URLs content may carry, checked when it is published and again when it is sent.

Content is not tied to one app when it is published, so the rule has two steps:

- **Publish** (in-app content and App Inbox messages alike): a link field (an action's
  ``value`` when its ``type`` is a URL type, ``url``, ``link``, ``…Url``) holds an http(s)
  URL, a deep link whose scheme at least one app declares (``deepLinkSchemes`` on
  ``POST /apps``), or no scheme at all (a relative path). A media field (``mainImage``,
  ``image``, ``icon``, ``logo``, ``video``, ``…Image``) holds http(s) or no scheme (an
  icon name such as ``note``). ``javascript:``, ``data:``, ``vbscript:``, ``file:`` and
  ``blob:`` are never allowed, in any field, whatever an app declares. The scheme is read
  as a browser reads it: leading and trailing spaces and control characters dropped,
  tabs and newlines removed anywhere, case ignored (``" JaVaScRiPt:"``, ``"java\\tscript:"``).
- **Send**: every app the send names must declare every deep-link scheme its content
  uses, else 400 naming ``channelQualifiers`` / ``appKeys``.

A value that starts with a merge tag (``%%Landing_Page%%``) has no scheme until it is
personalized. Delivery re-checks the fields of ``shared/personalization/urls.py`` once
personalized (in-app ``mainImage``, ``image``, ``video``, the ``url`` action; App Inbox
``url``, ``image``, ``logo``): only those may start with a merge tag.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from shared.personalization.urls import starts_with_merge_tag

WEB_SCHEMES = frozenset({"http", "https"})
NEVER_SCHEMES = frozenset({"javascript", "data", "vbscript", "file", "blob"})
# Never a prefix of ordinary text, so refused in every string of the content.
SCRIPT_SCHEMES = frozenset({"javascript", "vbscript"})
URL_ACTION_TYPES = frozenset({"url", "link", "deeplink", "deep_link", "openurl", "open_url"})
DEEP_LINK_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]{0,31}$")

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_STRIPPED = "".join(chr(c) for c in range(0x21))  # C0 controls and space
_REMOVED = re.compile(r"[\t\n\r]")
_LINK_KEYS = ("url", "link", "href", "deeplink")
# The fields delivery re-checks after personalization (shared/personalization/urls.py).
_RECHECKED = re.compile(
    r"^(payload\.\w+\.content\.(mainImage|image|video|action\.value)|url|image|logo)$"
)
_MEDIA_KEYS = ("image", "icon", "logo", "video", "src", "poster", "thumbnail")


def scheme_of(value: str) -> str | None:
    """The scheme a browser or an app would read in ``value`` (lower case), or None."""
    cleaned = _REMOVED.sub("", value.strip(_STRIPPED))
    match = _SCHEME.match(cleaned)
    return match.group(1).lower() if match else None


def deep_link_problem(scheme: str) -> str | None:
    """Why ``scheme`` cannot be declared as an app's deep-link scheme, or None."""
    if not DEEP_LINK_SCHEME.match(scheme):
        return f"{scheme!r} is not a URL scheme (a letter, then letters, digits, + . -)"
    if scheme in WEB_SCHEMES or scheme in NEVER_SCHEMES:
        return f"{scheme!r} cannot be declared as a deep-link scheme"
    return None


def _kind_of(key: str) -> str | None:
    lowered = key.lower()
    if lowered.endswith(_LINK_KEYS):
        return "link"
    if lowered.endswith(_MEDIA_KEYS) or lowered == "mainimage":
        return "media"
    return None


def _kind_in(parent: dict[str, Any], key: str) -> str | None:
    if key == "value" and str(parent.get("type", "")).lower() in URL_ACTION_TYPES:
        # an action's target; delivery re-checks the "url" type only
        return "url-action" if parent.get("type") == "url" else "link"
    return _kind_of(key)


def url_fields(tree: Any, path: str = "") -> Iterator[tuple[str, str, str | None]]:
    """(path, value, kind) for every string in ``tree``: kind is "link", "url-action" (a
    link delivery re-checks), "media", or None for strings that are not URL fields."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            child = f"{path}.{key}" if path else str(key)
            kind = _kind_in(tree, str(key))
            if isinstance(value, str):
                yield child, value, kind
            elif isinstance(value, list) and kind is not None:
                for i, item in enumerate(value):
                    if isinstance(item, str):
                        yield f"{child}.{i}", item, kind
                    else:
                        yield from url_fields(item, f"{child}.{i}")
            else:
                yield from url_fields(value, child)
    elif isinstance(tree, list):
        for i, item in enumerate(tree):
            if isinstance(item, str):
                yield f"{path}.{i}", item, None
            else:
                yield from url_fields(item, f"{path}.{i}")


def problem(value: str, kind: str | None, path: str = "") -> tuple[str | None, str | None]:
    """(why ``value`` at ``path`` is refused whatever apps declare, or None; the
    deep-link scheme it needs an app to declare, or None)."""
    if starts_with_merge_tag(value):
        rechecked = _RECHECKED.match(path) and (
            kind == "url-action" or not path.endswith("action.value")
        )
        if kind is None or rechecked:
            return None, None
        return "cannot start with a merge tag: only re-checked URL fields can", None
    scheme = scheme_of(value)
    if scheme is None:
        return None, None
    if scheme in NEVER_SCHEMES and (kind is not None or scheme in SCRIPT_SCHEMES):
        return f"the {scheme}: scheme is never allowed", None
    if kind is None or scheme in WEB_SCHEMES:
        return None, None
    if kind == "media":
        return f"must be an http(s) URL, not {scheme}:", None
    return None, scheme


def check(tree: Any, path: str = "") -> tuple[dict[str, str], dict[str, str]]:
    """(refused fields: path -> reason, deep links: path -> scheme) of ``tree``."""
    refused: dict[str, str] = {}
    deep_links: dict[str, str] = {}
    for field, value, kind in url_fields(tree, path):
        reason, scheme = problem(value, kind, field)
        if reason is not None:
            refused[field] = reason
        elif scheme is not None:
            deep_links[field] = scheme
    return refused, deep_links
