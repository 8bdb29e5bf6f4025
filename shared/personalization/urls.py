"""URL safety: only http(s) URLs reach a device or a web page (no javascript:, data:…)."""

from __future__ import annotations

from urllib.parse import urlsplit

SAFE_SCHEMES = frozenset({"http", "https"})
# In-app action values may also be app deep links; these schemes are never allowed.
UNSAFE_SCHEMES = frozenset({"javascript", "data", "vbscript", "file", "blob"})


def is_safe_url(value: str) -> bool:
    """True for an absolute http(s) URL with a host."""
    try:
        parts = urlsplit(value.strip())
    except ValueError:
        return False
    return parts.scheme.lower() in SAFE_SCHEMES and bool(parts.netloc)


def starts_with_merge_tag(value: str) -> bool:
    """A value such as ``%%Landing%%/x``: its scheme is only known once personalized."""
    return value.lstrip().startswith("%%")


_INAPP_URL_FIELDS = ("mainImage", "image", "video")
_INBOX_URL_FIELDS = ("url", "image", "logo")


def _clean(value: object) -> object:
    return value if not isinstance(value, str) or not value or is_safe_url(value) else ""


def drop_unsafe_urls(kind: str, body: dict[str, object]) -> dict[str, object]:
    """Blank every URL field that personalization turned into a non-http(s) URL."""
    if kind == "inbox":
        return {k: _clean(v) if k in _INBOX_URL_FIELDS else v for k, v in body.items()}
    payload = body.get("payload")
    if not isinstance(payload, dict):
        return body
    cleaned: dict[str, object] = {}
    for platform, template in payload.items():
        content = template.get("content") if isinstance(template, dict) else None
        if isinstance(content, dict):
            content = {k: _clean(v) if k in _INAPP_URL_FIELDS else v for k, v in content.items()}
            action = content.get("action")
            if isinstance(action, dict) and action.get("type") == "url":
                content["action"] = {**action, "value": _clean(action.get("value"))}
            template = {**template, "content": content}
        cleaned[platform] = template
    return {**body, "payload": cleaned}


def urls_depend_on_personalization(kind: str, body: dict[str, object]) -> bool:
    """Whether any URL field carries a merge tag. If none does, the URLs were checked when
    the content was published and no recipient's copy needs checking again."""
    fields: list[object] = []
    if kind == "inbox":
        fields = [body.get(k) for k in _INBOX_URL_FIELDS]
    else:
        payload = body.get("payload")
        for template in payload.values() if isinstance(payload, dict) else []:
            content = template.get("content") if isinstance(template, dict) else None
            if isinstance(content, dict):
                fields += [content.get(k) for k in _INAPP_URL_FIELDS]
                action = content.get("action")
                if isinstance(action, dict):
                    fields.append(action.get("value"))
    return any(isinstance(f, str) and "%%" in f for f in fields)
