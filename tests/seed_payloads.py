"""The payloads of ../shared/seeds/inapp-content-api.txt, transcribed as written."""

from __future__ import annotations

import copy
from typing import Any

_TEXT = (
    "Hello %%First_Name%%, this offer expires at %%expiration_date%% "
    "starting now %%cust_timestamp%%"
)
_DEFAULTS = {"First_Name": "Valued Customer", "expiration_date": "", "cust_timestamp": ""}
_FORMULAS = {
    "cust_timestamp": 'format(Dated, "dd-MM-yyyy")',
    "expiration_date": 'format(Customer_Date, "dd-MM-yyyy")',
}


def _example(content: dict[str, Any]) -> dict[str, Any]:
    template = {"rules": [], "template": "default", "maxViews": 3, "content": content}
    return {
        "payload": {"gcm": copy.deepcopy(template), "apns": copy.deepcopy(template)},
        "personalizationDefaults": dict(_DEFAULTS),
        "personalizationFormulas": dict(_FORMULAS),
    }


_ACTION = {"type": "url", "value": ""}

BOTTOM_BANNER = _example(
    {
        "mainImage": "",
        "title": "Hello %%First_Name%%",
        "text": _TEXT,
        "color": "#00ff00",
        "icon": "note",
        "action": dict(_ACTION),
    }
)
TOP_BANNER = _example(
    {
        "orientation": "top",
        "mainImage": "",
        "title": "Hello %%First_Name%%",
        "text": _TEXT,
        "color": "#00ff00",
        "icon": "note",
        "action": dict(_ACTION),
    }
)
IMAGE_TEMPLATE = _example(
    {
        "title": "Hello %%First_Name%%",
        "text": _TEXT,
        "image": "",
        "action": dict(_ACTION),
    }
)
VIDEO_TEMPLATE = _example(
    {
        "title": "Hello %%First_Name%%",
        "text": _TEXT,
        "video": "",
        "action": dict(_ACTION),
    }
)

SEED_EXAMPLES = {
    "bottom banner": BOTTOM_BANNER,
    "top banner": TOP_BANNER,
    "image template": IMAGE_TEMPLATE,
    "video template": VIDEO_TEMPLATE,
}


def seed_send(content_id: str, app_key: str, contact_id: int = 13507) -> dict[str, Any]:
    """The seed's POST /channels/push/sends body, for our content and app."""
    return {
        "channelQualifiers": [app_key],
        "content": {
            "inAppMessage": {
                "expirationDate": "2099-08-25T22:34:51.123+00:00",
                "maxViews": 3,
                "inAppContentId": content_id,
            }
        },
        "personalizationDefaults": {"first_name": "Valued", "last_name": "Customer"},
        "contacts": [
            {
                "contactId": contact_id,
                "personalization": {"first_name": "Michael", "last_name": "iOS iPhone"},
            }
        ],
    }
