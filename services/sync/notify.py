"""What a device's change tells the rest: engagement to statistics (Kafka), and a new
inbox version plus a wake for the contact's streams (Redis)."""

from __future__ import annotations

import asyncio

from fastapi import Request

from services.sync.auth import Device
from services.sync.events import Applied
from shared.events import MessageEngaged
from shared.inbox_signals import inboxes_changed
from shared.topics import ENGAGEMENT


async def engagement(request: Request, device: Device, applied: list[Applied]) -> None:
    """Engagement for statistics, keyed by contact: sent and acknowledged, or raise."""
    producer = request.app.state.producer
    sent = [
        await producer.send(
            ENGAGEMENT.name,
            MessageEngaged(
                event_id=a.event_id, contact_id=device.contact_id, message_id=a.message_id,
                job_id=a.job_id, content_id=a.content_id, type=a.type, at=a.at,
            ).model_dump_json().encode(),
            key=device.contact_id.encode(),
        )
        for a in applied
    ]  # fmt: skip
    await asyncio.gather(*sent)


async def inbox_changed(request: Request, device: Device) -> None:
    """The contact's inbox changed: a new version for phone homes, a wake for its streams
    (the device's other sessions)."""
    await inboxes_changed(request.app.state.redis, [device.contact_id])
