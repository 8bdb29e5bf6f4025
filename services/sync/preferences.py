"""A contact's subscription choices, from the device: ``GET/PUT /v1/preferences``.

The categories a device shows are the ones its app declares (``PUT /apps/{key}/categories``
on the management API), in the operator's order. A contact is subscribed to a category
unless it opted out (``false``), which is the rule delivery applies (skipped
``unsubscribed``).

A change is first produced to ``pigeonhole.contacts`` as a ``ContactUpserted`` (keyed by
contact, like an upstream system's update) and acknowledged, then merged into the
contact's row, so the device reads its own change at once and every consumer of the
topic (the publisher's, an upstream CDP's) sees it in order with the other updates of
that contact. The publisher's consumer merging it again changes nothing. A device of a
contact Pigeonhole does not know yet creates it, with no attributes, so the choice holds
when the contact arrives.
"""

from __future__ import annotations

from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from shared.events import ContactUpserted
from shared.topics import CONTACTS, bucket_of

MAX_CHANGES = 50  # an app declares at most 50 categories


class PutPreferences(BaseModel):
    """``{"subscriptions": {"offers": false}}``: the categories named change, others stay."""

    model_config = ConfigDict(extra="forbid")

    subscriptions: dict[str, StrictBool] = Field(min_length=1, max_length=MAX_CHANGES)


class UndeclaredCategories(Exception):
    """The change names categories the app does not declare."""

    def __init__(self, names: list[str]) -> None:
        super().__init__(f"not a category of this app: {', '.join(sorted(names))}")
        self.names = names


async def read(pool: asyncpg.Pool, app_key: str, contact_id: str) -> dict[str, Any]:
    """The app's categories with the contact's choice for each."""
    row = await pool.fetchrow(
        """SELECT a.subscription_categories AS categories,
                  (SELECT c.subscriptions FROM contacts c WHERE c.contact_id = $2) AS chosen
             FROM apps a WHERE a.app_key = $1""",
        app_key,
        contact_id,
    )
    categories = row["categories"] if row else []
    chosen = (row["chosen"] if row else None) or {}
    return {
        "categories": [
            {**category, "subscribed": chosen.get(category["name"]) is not False}
            for category in categories
        ]
    }


async def change(
    pool: asyncpg.Pool,
    producer: AIOKafkaProducer,
    app_key: str,
    contact_id: str,
    body: PutPreferences,
) -> dict[str, Any]:
    """Publish and store the contact's choices; answer the preferences as they now are."""
    declared = await pool.fetchval(
        "SELECT subscription_categories FROM apps WHERE app_key = $1", app_key
    )
    names = {category["name"] for category in declared or []}
    if undeclared := [name for name in body.subscriptions if name not in names]:
        raise UndeclaredCategories(undeclared)
    event = ContactUpserted(contact_id=contact_id, subscriptions=body.subscriptions)
    await producer.send_and_wait(
        CONTACTS.name, event.model_dump_json().encode(), key=contact_id.encode()
    )
    await pool.execute(
        """INSERT INTO contacts (contact_id, bucket, attributes, subscriptions)
           VALUES ($1, $2, '{}', $3)
           ON CONFLICT (contact_id) DO UPDATE
              SET subscriptions = contacts.subscriptions || EXCLUDED.subscriptions,
                  updated_at = now()""",
        contact_id,
        bucket_of(contact_id),
        body.subscriptions,
    )
    return await read(pool, app_key, contact_id)
