"""Fuzz both OpenAPI documents with schemathesis, with valid credentials so the requests
reach the handlers: whatever a client sends, the answer is never a 5xx.

Valid and invalid data alike (NUL characters, lone surrogates, huge integers, wrong types,
missing fields), a bounded number of examples per operation so the whole run stays within
a few minutes. A failure prints the request that reproduces it.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from services.publisher import main as publisher_main
from services.sync import main as sync_main
from tests.conftest import PUBLISHER_URL, SYNC_URL, device_token

pytestmark = pytest.mark.integration

EXAMPLES = int(os.environ.get("PIGEONHOLE_FUZZ_EXAMPLES", "100"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=False,
    suppress_health_check=list(HealthCheck),
)


@schemathesis.serializer("application/x-ndjson")
def _ndjson(_: Any, value: Any) -> bytes:
    """The import's body is text (one JSON object per line) whatever was generated."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    return json.dumps(value, default=str).encode()


def _load(app: FastAPI, url: str) -> schemathesis.BaseSchema:
    """The service's OpenAPI document, built from the code (no request at collection), with
    the running service as the base URL."""
    schema = schemathesis.openapi.from_dict(app.openapi())
    schema.config.update(base_url=url)
    schema.config.generation.update(modes=list(GenerationMode))
    schema.config.generation.codec = None  # any code point, lone surrogates included
    return schema


@pytest.fixture(scope="module")
def device_headers(admin_token: str) -> Iterator[dict[str, str]]:
    """An app and a contact, as a device would see them."""
    headers = {"Authorization": f"Bearer {admin_token}"}
    with httpx.Client(base_url=PUBLISHER_URL, headers=headers, timeout=30) as api:
        app = api.post("/apps", json={"name": f"fuzz-{uuid.uuid4().hex[:6]}"}).json()["data"]
        contact = f"fuzz-{uuid.uuid4().hex[:8]}"
        assert api.put(f"/contacts/{contact}", json={}).status_code == 201
    token = device_token(app["appSecret"], contact)
    yield {"X-App-Key": app["appKey"], "Authorization": f"Bearer {token}"}


publisher = _load(publisher_main.create_app(), PUBLISHER_URL)
# A live stream never ends, so it cannot be read to the end here: its bad input is
# tested in tests/e2e/test_stream.py.
device = _load(sync_main.create_app(), SYNC_URL).exclude(path="/v1/stream")


@publisher.parametrize()
@FUZZ
def test_management_api_never_answers_5xx(case: Any, admin_token: str) -> None:
    case.call_and_validate(
        headers={"Authorization": f"Bearer {admin_token}"},
        checks=[not_a_server_error],
        timeout=30,
    )


@device.parametrize()
@FUZZ
def test_device_api_never_answers_5xx(case: Any, device_headers: dict[str, str]) -> None:
    case.call_and_validate(headers=device_headers, checks=[not_a_server_error], timeout=30)
