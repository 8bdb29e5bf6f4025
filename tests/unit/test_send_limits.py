"""The publisher refuses at accept time a send that could never be produced to Kafka."""

from __future__ import annotations

import pytest

from services.publisher.errors import ApiError
from services.publisher.sends.send_limits import check_fits, envelope_bytes
from shared.events import SendOptions
from shared.topics import BATCH_ENVELOPE_BYTES, MAX_EVENT_BYTES

OPTIONS = SendOptions().model_dump(mode="json")


def test_an_ordinary_send_fits() -> None:
    check_fits("MqU8NG7y", "inapp", ["app"], OPTIONS, [("13507", {"first_name": "Ada"})])


def test_a_recipient_that_could_not_fit_even_alone_is_named() -> None:
    huge = {"blob": "x" * MAX_EVENT_BYTES}
    with pytest.raises(ApiError) as refused:
        check_fits("MqU8NG7y", "inapp", ["app"], OPTIONS, [("a", {}), ("b", huge), ("c", {})])
    assert refused.value.status == 400
    assert list(refused.value.fields) == ["contacts.1.personalization"]


def test_a_recipient_that_just_fits_beside_the_envelope_is_accepted() -> None:
    room = MAX_EVENT_BYTES - envelope_bytes("MqU8NG7y", "inapp", ["app"], OPTIONS)
    padding = room - len('{"contact_id":"a","personalization":{"b":""}}')
    check_fits("MqU8NG7y", "inapp", ["app"], OPTIONS, [("a", {"b": "x" * padding})])
    with pytest.raises(ApiError):
        check_fits("MqU8NG7y", "inapp", ["app"], OPTIONS, [("a", {"b": "x" * (padding + 1)})])


def test_personalization_defaults_larger_than_the_envelope_are_named() -> None:
    options = SendOptions(personalization_defaults={"d": "x" * BATCH_ENVELOPE_BYTES})
    with pytest.raises(ApiError) as refused:
        check_fits("MqU8NG7y", "inapp", ["app"], options.model_dump(mode="json"))
    assert list(refused.value.fields) == ["personalizationDefaults"]
