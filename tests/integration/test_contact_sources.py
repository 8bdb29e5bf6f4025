"""Contact sources against the running publisher and the real PostgreSQL.

The database is shared and never wiped, so every contact made here carries the
attribute ``run`` = this run's uuid and every query includes that condition.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from tests.conftest import PUBLISHER_URL, create_token

RUN = uuid.uuid4().hex
NUMERIC_ID = int(RUN[:12], 16)  # a contact id the list names as a JSON number
INJECTION = "x'; DROP TABLE contacts; --"

CONTACTS: dict[str, dict[str, Any]] = {
    "ann": {
        "attributes": {"city": "Paris", "age": 34, "email": "Ann@Example.com", "tags": ["golf"]},
        "subscriptions": {"news": True},
    },
    "bob": {
        "attributes": {"city": "Berlin", "age": 19, "email": "bob@gmail.com", "tags": ["chess"]},
        "subscriptions": {"news": False},
    },
    "cy": {"attributes": {"city": "paris", "age": "40", "vip": None}},
    "dee": {
        "attributes": {"city": "London", "age": 52.5, "vip": True, "address": {"city": "Lyon"}},
        "subscriptions": {"news": False, "offers": True},
    },
    "eve": {"attributes": {"age": 34}},
}


def cid(name: str) -> str:
    return f"{RUN}-{name}"


def ours(condition: dict[str, Any]) -> dict[str, Any]:
    return {"all": [{"attribute": "run", "op": "eq", "value": RUN}, condition]}


@pytest.fixture(scope="module")
async def contacts(admin_token: str) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {admin_token}"}
    async with httpx.AsyncClient(base_url=PUBLISHER_URL, headers=headers) as client:
        for name, body in CONTACTS.items():
            body = {**body, "attributes": {**body["attributes"], "run": RUN}}
            response = await client.put(f"/contacts/{cid(name)}", json=body)
            assert response.status_code == 201, response.text
    return {name: cid(name) for name in CONTACTS}


async def members(api: httpx.AsyncClient, source_id: int, limit: int = 2) -> list[str]:
    """Every member, following nextPageUrl page by page."""
    found: list[str] = []
    url: str | None = f"/contact-sources/{source_id}/members?limit={limit}"
    while url:
        response = await api.get(url)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["data"]) <= limit
        found += [m["contactId"] for m in page["data"]]
        url = page["meta"]["nextPageUrl"]
    assert found == sorted(found)
    return found


async def create(api: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    response = await api.post("/contact-sources", json={"name": f"t-{RUN[:6]}", **body})
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()["data"]
    assert data["location"].endswith(f"/contact-sources/{data['id']}")
    return data


async def test_a_list_counts_listed_ids_that_are_contacts_and_gains_them_when_created(
    api: httpx.AsyncClient, contacts: dict[str, str]
) -> None:
    ghost = cid("ghost")
    listed = [contacts["ann"], contacts["bob"], ghost, contacts["ann"], NUMERIC_ID]
    data = await create(api, {"contactIds": listed})
    assert (data["kind"], data["memberCount"], data["listedCount"]) == ("list", 2, 4)
    assert await members(api, data["id"]) == sorted([contacts["ann"], contacts["bob"]])

    for contact_id in (ghost, str(NUMERIC_ID)):
        # Not tagged with ``run``: the query tests below must not see these two.
        created = await api.put(f"/contacts/{contact_id}", json={"attributes": {"list": RUN}})
        assert created.status_code == 201, created.text
    again = (await api.get(f"/contact-sources/{data['id']}")).json()["data"]
    assert (again["memberCount"], again["listedCount"]) == (4, 4)
    expected = sorted([contacts["ann"], contacts["bob"], ghost, str(NUMERIC_ID)])
    assert await members(api, data["id"]) == expected


QUERIES: list[tuple[str, dict[str, Any], set[str]]] = [
    ("eq is exact", {"attribute": "city", "op": "eq", "value": "Paris"}, {"ann"}),
    ("in", {"attribute": "city", "op": "in", "value": ["Paris", "Berlin"]}, {"ann", "bob"}),
    (
        "gt compares JSON numbers only",
        {"attribute": "age", "op": "gt", "value": 30},
        {"ann", "dee", "eve"},
    ),
    (
        "lt on strings is byte order",
        {"attribute": "city", "op": "lt", "value": "M"},
        {"bob", "dee"},
    ),
    ("contains text", {"attribute": "email", "op": "contains", "value": "GMAIL"}, {"bob"}),
    ("contains element", {"attribute": "tags", "op": "contains", "value": "golf"}, {"ann"}),
    ("startsWith", {"attribute": "city", "op": "startsWith", "value": "par"}, {"ann", "cy"}),
    ("exists ignores null", {"attribute": "vip", "op": "exists"}, {"dee"}),
    ("notExists", {"attribute": "city", "op": "notExists"}, {"eve"}),
    (
        "not",
        {"not": {"attribute": "city", "op": "eq", "value": "Paris"}},
        {"bob", "cy", "dee", "eve"},
    ),
    ("ne", {"attribute": "city", "op": "ne", "value": "Paris"}, {"bob", "cy", "dee", "eve"}),
    (
        "any",
        {
            "any": [
                {"attribute": "city", "op": "eq", "value": "Berlin"},
                {"attribute": "age", "op": "gte", "value": 50},
            ]
        },
        {"bob", "dee"},
    ),
    (
        "all",
        {
            "all": [
                {"attribute": "age", "op": "eq", "value": 34},
                {"attribute": "city", "op": "exists"},
            ]
        },
        {"ann"},
    ),
    ("nested path", {"attribute": ["address", "city"], "op": "eq", "value": "Lyon"}, {"dee"}),
    ("subscribed", {"subscribed": "news"}, {"ann", "cy", "eve"}),
    ("unsubscribed", {"unsubscribed": "news"}, {"bob", "dee"}),
    ("injection value", {"attribute": "city", "op": "eq", "value": INJECTION}, set()),
    ("injection name", {"attribute": INJECTION, "op": "exists"}, set()),
]


@pytest.mark.parametrize(("title", "condition", "expected"), QUERIES, ids=[q[0] for q in QUERIES])
async def test_a_query_source_has_exactly_the_matching_contacts(
    api: httpx.AsyncClient,
    pool: asyncpg.Pool,
    contacts: dict[str, str],
    title: str,
    condition: dict[str, Any],
    expected: set[str],
) -> None:
    data = await create(api, {"query": ours(condition)})
    want = sorted(contacts[name] for name in expected)
    assert (data["kind"], data["memberCount"]) == ("query", len(want)), title
    assert await members(api, data["id"]) == want, title
    stored = (await api.get(f"/contact-sources/{data['id']}")).json()["data"]
    assert stored["query"] == ours(condition)
    assert await pool.fetchval("SELECT count(*) FROM contacts WHERE contact_id = $1", cid("ann"))


async def _source_count(pool: asyncpg.Pool) -> int:
    count: int = await pool.fetchval("SELECT count(*) FROM contact_sources")
    return count


BAD_BODIES: list[tuple[dict[str, Any], str]] = [
    (
        {"query": ours({"all": [{"attribute": "a", "op": "like", "value": 1}]})},
        "query.all.1.all.0.op",
    ),
    ({"query": {"attribute": "age", "op": "gt", "value": True}}, "query.value"),
    ({"query": {"not": {"any": []}}}, "query.not.any"),
    ({"query": {"attribute": "a", "op": "eq", "value": "ok", "oops": 1}}, "query.oops"),
    ({"query": "city = 'Paris'"}, "query"),
    ({"contactIds": [cid("ann")], "query": ours({"subscribed": "news"})}, "contactIds"),
    ({}, "contactIds"),
    ({"contactIds": []}, "contactIds"),
    ({"contactIds": ["ok", True]}, "contactIds.1"),
    ({"contactIds": [str(i) for i in range(100_001)]}, "contactIds"),
]


@pytest.mark.parametrize(("body", "field"), BAD_BODIES)
async def test_a_bad_source_is_a_400_naming_the_field_and_writes_nothing(
    api: httpx.AsyncClient, pool: asyncpg.Pool, body: dict[str, Any], field: str
) -> None:
    before = await _source_count(pool)
    response = await api.post("/contact-sources", json={"name": "bad", **body})
    assert response.status_code == 400, response.text
    assert field in response.json()["meta"]["fieldErrors"], response.json()
    assert await _source_count(pool) == before


async def test_a_missing_name_is_a_400(api: httpx.AsyncClient) -> None:
    response = await api.post("/contact-sources", json={"contactIds": ["a"]})
    assert response.status_code == 400
    assert "name" in response.json()["meta"]["fieldErrors"]


async def test_unknown_and_deleted_sources_are_404(
    api: httpx.AsyncClient, contacts: dict[str, str]
) -> None:
    data = await create(api, {"contactIds": [contacts["ann"]]})
    deleted = await api.delete(f"/contact-sources/{data['id']}")
    assert deleted.status_code == 200
    assert deleted.json()["data"] == {"id": data["id"], "deleted": True}
    for method, path in [
        ("GET", f"/contact-sources/{data['id']}"),
        ("GET", f"/contact-sources/{data['id']}/members"),
        ("DELETE", f"/contact-sources/{data['id']}"),
        ("GET", "/contact-sources/9000000000000000000"),
    ]:
        response = await api.request(method, path)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["meta"]["generalErrors"]


async def test_members_paging_rejects_a_bad_limit(
    api: httpx.AsyncClient, contacts: dict[str, str]
) -> None:
    data = await create(api, {"contactIds": [contacts["ann"]]})
    response = await api.get(f"/contact-sources/{data['id']}/members?limit=0")
    assert response.status_code == 400
    assert "limit" in response.json()["meta"]["fieldErrors"]


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer ph_00000000_not-a-real-token"}, 401),
        ("content", 403),
    ],
)
async def test_contact_sources_need_a_token_with_the_contacts_scope(
    headers: dict[str, str] | str, status: int
) -> None:
    if isinstance(headers, str):
        headers = {"Authorization": f"Bearer {create_token(headers)}"}
    async with httpx.AsyncClient(base_url=PUBLISHER_URL, headers=headers) as client:
        for method, path in [
            ("POST", "/contact-sources"),
            ("GET", "/contact-sources/1"),
            ("GET", "/contact-sources/1/members"),
            ("DELETE", "/contact-sources/1"),
        ]:
            body = {"name": "x", "contactIds": ["a"]} if method == "POST" else None
            response = await client.request(method, path, json=body)
            assert response.status_code == status, (method, path, response.text)
