"""Redis key names shared by delivery (writer) and sync (reader). Redis only holds what
can be rebuilt from PostgreSQL: losing it costs a full sync, never a message."""

from __future__ import annotations

PREFIX = "ph"


def inbox_version(contact_id: str) -> str:
    """A counter bumped whenever the contact's inbox changes; sync's cursor compares it."""
    return f"{PREFIX}:inbox:{{{contact_id}}}:v"
