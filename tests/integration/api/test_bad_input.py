"""Bad input is a clear 4xx naming what is wrong, and writes nothing."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.api.conftest import make_pool


async def test_malformed_json_is_422_saying_so(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/work-pools", content=b'{"name": "p",', headers={"content-type": "application/json"}
    )
    assert r.status_code == 422
    assert r.json()["detail"].startswith("body: malformed JSON")


async def test_a_body_that_is_not_utf8_is_malformed_json_422_not_400(
    client: httpx.AsyncClient,
) -> None:
    r = await client.post(
        "/work-pools", content=b'{"name": "\xff"}', headers={"content-type": "application/json"}
    )
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith("body: malformed JSON: 'utf-8' codec can't decode")
    assert r.json()["errors"] == [
        {"field": "body", "message": r.json()["detail"].removeprefix("body: ")}
    ]
    assert (await client.get("/work-pools")).json() == []


@pytest.mark.parametrize(
    "nested", [b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 10_000 + b"1" + b"}" * 10_000]
)
async def test_json_nested_too_deeply_is_malformed_json_422(
    client: httpx.AsyncClient, nested: bytes
) -> None:
    body = b'{"name": "p", "base_job_template": ' + nested + b"}"
    r = await client.post("/work-pools", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.json()["detail"] == "body: malformed JSON: nested too deeply"
    assert (await client.get("/work-pools")).json() == []


async def test_wrong_types_name_the_field(client: httpx.AsyncClient) -> None:
    r = await client.post("/work-pools", json={"name": "p", "concurrency_limit": "lots"})
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "concurrency_limit"


async def test_unknown_enum_values_name_the_allowed_ones(client: httpx.AsyncClient) -> None:
    r = await client.post("/work-pools", json={"name": "p", "type": "kubernetes"})
    assert r.status_code == 422
    assert "'managed' or 'process'" in r.json()["detail"]


async def test_unknown_fields_are_refused_not_ignored(client: httpx.AsyncClient) -> None:
    r = await client.post("/work-pools", json={"name": "p", "colour": "blue"})
    assert r.status_code == 422
    assert r.json()["detail"] == "colour: is not a known field"


async def test_an_oversize_body_is_a_clear_413(client: httpx.AsyncClient) -> None:
    big = b'{"name": "' + b"x" * (17 * 1024 * 1024) + b'"}'
    r = await client.post("/work-pools", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert "larger than the server accepts" in r.json()["detail"]


async def test_bad_names_are_refused(client: httpx.AsyncClient) -> None:
    r = await client.post("/work-pools", json={"name": "has spaces/and slashes"})
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "name"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/flow-runs/not-a-uuid"),
        ("get", "/deployments/123"),
        ("post", "/flow-runs/00000000-0000-0000-0000-000000000000/state"),
        ("get", "/flow-runs?state=EXPLODED"),
        ("get", "/flow-runs?limit=0"),
        ("get", "/flow-runs?sort=sideways"),
        ("get", "/usage?month=2026-13"),
        ("get", "/usage?month=June"),
    ],
)
async def test_bad_paths_and_queries_are_4xx_never_500(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    r = await client.request(method, path, json={"type": "RUNNING"} if method == "post" else None)
    assert 400 <= r.status_code < 500, r.text
    assert r.json()["detail"]


async def test_duplicate_names_are_409(client: httpx.AsyncClient) -> None:
    await make_pool(client)
    assert (await client.post("/work-pools", json={"name": "pool"})).status_code == 409
    assert (await client.post("/workspaces", json={"name": "default"})).status_code == 409


async def test_text_that_cannot_be_stored_is_422_not_500(client: httpx.AsyncClient) -> None:
    r = await client.post("/work-pools", json={"name": "p", "description": "a\x00b"})
    assert r.status_code in (201, 422), r.text  # SQLite stores NUL; PostgreSQL cannot
    if r.status_code == 422:
        assert "cannot be stored" in r.json()["detail"]


async def test_json_values_postgresql_cannot_hold_are_422_not_503(
    client: httpx.AsyncClient,
) -> None:
    r = await client.post("/flow-runs", json={"flow_name": "f", "tags": ["a\x00b"]})
    assert r.status_code in (201, 422), r.text  # SQLite stores NUL; PostgreSQL JSON cannot
    if r.status_code == 422:
        assert "cannot be stored" in r.json()["detail"]
        assert (await client.get("/flow-runs")).json()["items"] == []
    r = await client.get("/flow-runs", params={"tag": "\x08"})
    assert r.status_code in (200, 422), r.text
