"""Request bodies of /contact-sources."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field

from services.publisher.fields import Strict
from shared.http_limits import storable_text

MAX_LISTED_CONTACTS = 100_000


def _contact_id_text(value: Any) -> Any:
    """Contact ids are text everywhere: ``13507`` and ``"13507"`` are the same contact."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("a contact id is a string or an integer")
    text = str(value)
    if not 0 < len(text) <= 200:
        raise ValueError("a contact id is 1..200 characters")
    return _storable(text)


def _storable(text: str) -> str:
    """PostgreSQL text holds neither NUL nor lone surrogates (which JSON can spell)."""
    if not storable_text(text):
        raise ValueError("must be valid Unicode text without NUL characters")
    return text


ListedContactId = Annotated[str, BeforeValidator(_contact_id_text)]


class CreateContactSource(Strict):
    """Exactly one of ``contactIds`` (a static list) or ``query`` (``docs/contact-sources.md``)."""

    name: Annotated[str, AfterValidator(_storable)] = Field(min_length=1, max_length=200)
    contactIds: list[ListedContactId] | None = Field(
        default=None, min_length=1, max_length=MAX_LISTED_CONTACTS
    )
    query: dict[str, Any] | None = None
