"""App Inbox messages and image uploads against the running publisher."""

from __future__ import annotations

import io
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from PIL import Image

from tests.conftest import PUBLISHER_URL


def image_bytes(fmt: str, size: tuple[int, int] = (3, 2)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(out, format=fmt)
    return out.getvalue()


def inbox_message(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "name": "Black Friday (internal)",
        "title": "Hi %%First_Name%%",
        "text": "Your code %%code%% is waiting",
        "url": "https://shop.example/offers?c=%%code%%",
        "openInNewTab": True,
        "category": "offers",
        "tags": ["black-friday", "2026"],
        "ttlSeconds": 86400,
        "personalizationDefaults": {"First_Name": "friend", "code": "NONE"},
    }
    body.update(overrides)
    return body


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
async def test_upload_accepts_jpeg_and_png_and_serves_them_back(
    api: httpx.AsyncClient, fmt: str
) -> None:
    data = image_bytes(fmt)
    response = await api.post(
        "/media", content=data, headers={"content-type": "application/octet-stream"}
    )
    assert response.status_code == 201, response.text
    uploaded = response.json()["data"]
    assert uploaded["contentType"] == f"image/{fmt.lower()}"
    assert (uploaded["width"], uploaded["height"]) == (3, 2)
    async with httpx.AsyncClient() as anonymous:  # devices load images without a token
        served = await anonymous.get(uploaded["url"])
    assert served.status_code == 200
    assert served.content == data
    assert served.headers["content-type"] == f"image/{fmt.lower()}"


async def test_upload_rejects_a_renamed_text_file_and_an_oversize_image(
    api: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    before = await pool.fetchval("SELECT count(*) FROM media")
    text = await api.post(
        "/media", content=b"just text, named photo.jpg", headers={"content-type": "image/jpeg"}
    )
    assert text.status_code == 415
    assert "JPEG or PNG" in text.json()["meta"]["generalErrors"][0]
    big = image_bytes("PNG") + b"\0" * (5 * 1024 * 1024)
    oversize = await api.post("/media", content=big, headers={"content-type": "image/png"})
    assert oversize.status_code == 413

    async def chunks() -> AsyncIterator[
        bytes
    ]:  # no Content-Length: the limit is enforced while streaming
        yield image_bytes("PNG")
        for _ in range(6):
            yield b"\0" * (1024 * 1024)

    streamed = await api.post("/media", content=chunks(), headers={"content-type": "image/png"})
    assert streamed.status_code == 413
    assert await pool.fetchval("SELECT count(*) FROM media") == before


async def test_inbox_message_round_trips_and_is_found_by_tag(api: httpx.AsyncClient) -> None:
    logo = (await api.post("/media", content=image_bytes("PNG"))).json()["data"]["url"]
    tag = f"tag-{uuid.uuid4().hex[:8]}"
    body = inbox_message(image="%%hero_image%%", logo=logo, tags=[tag, "shared"])
    created = await api.post("/appinbox/messages", json=body)
    assert created.status_code == 201, created.text
    message_id = created.json()["data"]["id"]

    stored = (await api.get(f"/appinbox/messages/{message_id}")).json()["data"]
    for field in ("name", "title", "text", "url", "openInNewTab", "image", "logo", "category"):
        assert stored[field] == body[field], field
    assert stored["ttlSeconds"] == 86400 and stored["tags"] == [tag, "shared"]

    by_tag = (await api.get("/appinbox/messages", params={"tag": tag})).json()["data"]
    assert [m["id"] for m in by_tag] == [message_id]
    other = (await api.get("/appinbox/messages", params={"tag": f"none-{tag}"})).json()["data"]
    assert other == []


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"url": "javascript:alert(1)"}, "url"),
        ({"image": "data:image/png;base64,AAAA"}, "image"),
        ({"logo": "ftp://files.example/logo.png"}, "logo"),
        ({"title": ""}, "title"),
        ({"name": None}, "name"),
        ({"text": "Hello %%First_Name"}, "text"),
        ({"ttlSeconds": 0}, "ttlSeconds"),
        ({"personalizationFormulas": {"code": "upper(code"}}, "personalizationFormulas.code"),
    ],
)
async def test_bad_inbox_message_is_a_400_naming_the_field(
    api: httpx.AsyncClient, pool: asyncpg.Pool, overrides: dict[str, object], field: str
) -> None:
    before = await pool.fetchval("SELECT count(*) FROM contents")
    response = await api.post("/appinbox/messages", json=inbox_message(**overrides))
    assert response.status_code == 400, response.text
    assert field in response.json()["meta"]["fieldErrors"], response.json()
    assert await pool.fetchval("SELECT count(*) FROM contents") == before


async def test_media_download_of_unknown_id_is_404() -> None:
    async with httpx.AsyncClient(base_url=PUBLISHER_URL) as client:
        assert (await client.get("/media/nope")).status_code == 404
