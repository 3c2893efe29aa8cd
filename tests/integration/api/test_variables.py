from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.integration.api.conftest import ClientFactory, make_workspace_key
from tests.integration.api.test_task_runs import new_run, run_token

VALUES: list[Any] = [
    {"region": "eu-west-1", "retries": 3, "nested": {"list": [1, 2.5, None, True]}},
    [1, "two", {"three": 3}],
    "plain string ☃",
    42,
    3.25,
    True,
    None,
]


@pytest.mark.parametrize("value", VALUES, ids=[type(v).__name__ for v in VALUES])
async def test_any_json_value_round_trips(client: httpx.AsyncClient, value: Any) -> None:
    r = await client.put("/variables/config", json={"value": value, "tags": ["prod"]})
    assert r.status_code == 201, r.text
    got = (await client.get("/variables/config")).json()
    assert got["value"] == value
    assert got["tags"] == ["prod"]


async def test_putting_again_replaces_the_value_and_answers_200(
    client: httpx.AsyncClient,
) -> None:
    first = await client.put("/variables/limit", json={"value": 1})
    second = await client.put("/variables/limit", json={"value": 2, "tags": ["x"]})
    assert (first.status_code, second.status_code) == (201, 200)
    assert second.json()["id"] == first.json()["id"]
    assert second.json()["updated"] >= first.json()["updated"]
    got = (await client.get("/variables/limit")).json()
    assert (got["value"], got["tags"]) == (2, ["x"])


async def test_listing_filters_by_prefix_and_pages_by_name(client: httpx.AsyncClient) -> None:
    for name in ["db-host", "db-port", "db-user", "api-url", "dbx"]:
        await client.put(f"/variables/{name}", json={"value": name})
    first = (await client.get("/variables", params={"prefix": "db-", "limit": 2})).json()
    assert [v["name"] for v in first["items"]] == ["db-host", "db-port"]
    params = {"prefix": "db-", "limit": 2, "cursor": first["next_cursor"]}
    rest = (await client.get("/variables", params=params)).json()
    assert [v["name"] for v in rest["items"]] == ["db-user"]
    assert rest["next_cursor"] is None
    every = (await client.get("/variables")).json()["items"]
    assert len(every) == 5


async def test_the_prefix_filter_is_case_sensitive_on_every_database(
    client: httpx.AsyncClient,
) -> None:
    await client.put("/variables/Alpha", json={"value": 1})
    await client.put("/variables/alpha2", json={"value": 2})
    items = (await client.get("/variables", params={"prefix": "alpha"})).json()["items"]
    assert [v["name"] for v in items] == ["alpha2"]


async def test_deleting_a_variable_makes_it_not_found(client: httpx.AsyncClient) -> None:
    await client.put("/variables/gone", json={"value": 1})
    assert (await client.delete("/variables/gone")).status_code == 204
    assert (await client.get("/variables/gone")).status_code == 404
    assert (await client.delete("/variables/gone")).status_code == 404


async def test_bad_values_are_refused_naming_the_field_and_nothing_is_stored(
    client: httpx.AsyncClient,
) -> None:
    cases: list[tuple[bytes, int, str]] = [
        (json.dumps({"value": "x" * 70_000}).encode(), 413, "value:"),
        (b'{"value": NaN}', 422, "value:"),
        (b'{"value": [Infinity]}', 422, "value:"),
        (json.dumps({"value": {"a": "nul\x00"}}).encode(), 422, "value:"),
        (json.dumps({"value": "\ud800"}).encode(), 422, "value:"),
        (json.dumps({"value": 1, "colour": "red"}).encode(), 422, "colour:"),
        (json.dumps({"tags": []}).encode(), 422, "value:"),
        (json.dumps({"value": 1, "tags": "prod"}).encode(), 422, "tags:"),
        (json.dumps({"value": 1, "tags": [""]}).encode(), 422, "tags.0:"),
        (b'{"value": ', 422, "body:"),
        (b"[1, 2]", 422, "body:"),
    ]
    for body, status, field in cases:
        r = await client.put(
            "/variables/bad", content=body, headers={"content-type": "application/json"}
        )
        assert r.status_code == status, (body[:40], r.text)
        assert r.json()["detail"].startswith(field), (body[:40], r.json())
    deep: Any = 1
    for _ in range(100):
        deep = [deep]
    r = await client.put("/variables/bad", json={"value": deep})
    assert r.status_code == 422
    assert "nested" in r.json()["detail"]
    assert (await client.get("/variables/bad")).status_code == 404


async def test_a_literal_backslash_u0000_text_is_not_mistaken_for_a_nul(
    client: httpx.AsyncClient,
) -> None:
    r = await client.put("/variables/escaped", json={"value": "C:\\u0000dir"})
    assert r.status_code == 201, r.text
    assert (await client.get("/variables/escaped")).json()["value"] == "C:\\u0000dir"


async def test_bad_names_and_parameters_are_refused(client: httpx.AsyncClient) -> None:
    r = await client.put("/variables/has space", json={"value": 1})
    assert r.status_code == 422
    assert r.json()["detail"].startswith("name:")
    r = await client.put(f"/variables/{'n' * 300}", json={"value": 1})
    assert r.status_code == 422
    cases: list[tuple[dict[str, str | int], str]] = [
        ({"limit": 0}, "limit"),
        ({"prefix": "a b"}, "prefix"),
    ]
    for params, field in cases:
        r = await client.get("/variables", params=params)
        assert r.status_code == 422
        assert r.json()["detail"].startswith(f"{field}:")


async def test_another_workspaces_variables_are_not_found(
    client: httpx.AsyncClient, client_for: ClientFactory
) -> None:
    await client.put("/variables/shared-name", json={"value": "mine"})
    key = await make_workspace_key(client, "other")
    async with client_for(key) as other:
        assert (await other.get("/variables/shared-name")).status_code == 404
        assert (await other.delete("/variables/shared-name")).status_code == 404
        assert (await other.get("/variables")).json()["items"] == []
        r = await other.put("/variables/shared-name", json={"value": "theirs"})
        assert r.status_code == 201
    assert (await client.get("/variables/shared-name")).json()["value"] == "mine"


async def test_a_run_token_reads_variables_of_its_workspace_but_cannot_change_them(
    client: httpx.AsyncClient, client_for: ClientFactory
) -> None:
    await client.put("/variables/threshold", json={"value": 7})
    token = await run_token(client, await new_run(client))
    async with client_for(token) as runner:
        assert (await runner.get("/variables/threshold")).json()["value"] == 7
        assert [v["name"] for v in (await runner.get("/variables")).json()["items"]] == [
            "threshold"
        ]
        assert (await runner.put("/variables/threshold", json={"value": 8})).status_code == 403
        assert (await runner.delete("/variables/threshold")).status_code == 403
    assert (await client.get("/variables/threshold")).json()["value"] == 7
