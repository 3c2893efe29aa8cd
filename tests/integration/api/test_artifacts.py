"""Artifacts through the API: each type stored in one shape, bad data refused naming the field,
run tokens confined to their run tree, a key's history newest first."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.integration.api.conftest import ClientFactory, make_workspace_key
from tests.integration.api.test_task_runs import new_run, run_token

STORED: list[tuple[str, Any, Any]] = [
    ("markdown", "# Report\n\n*12* rows", "# Report\n\n*12* rows"),
    (
        "table",
        [{"name": "a", "n": 1}, {"name": "b", "extra": True}],
        {"columns": ["name", "n", "extra"], "rows": [["a", 1, None], ["b", None, True]]},
    ),
    (
        "table",
        {"name": ["a", "b", "c"], "n": [1, 2]},
        {"columns": ["name", "n"], "rows": [["a", 1], ["b", 2], ["c", None]]},
    ),
    ("table", [[1, 2], [3, 4]], {"columns": [], "rows": [[1, 2], [3, 4]]}),
    ("link", "https://example.com/report", {"url": "https://example.com/report", "text": None}),
    (
        "link",
        {"url": "https://example.com/r", "text": "the report"},
        {"url": "https://example.com/r", "text": "the report"},
    ),
    (
        "image",
        "https://example.com/chart.png",
        {"url": "https://example.com/chart.png", "text": None},
    ),
    ("progress", 42.5, 42.5),
]


@pytest.mark.parametrize(("kind", "data", "stored"), STORED)
async def test_each_type_is_stored_in_its_one_shape(
    client: httpx.AsyncClient, kind: str, data: Any, stored: Any
) -> None:
    run = await new_run(client)
    r = await client.post(
        "/artifacts",
        json={"type": kind, "data": data, "key": "report", "description": "d", "flow_run_id": run},
    )
    assert r.status_code == 201, r.text
    made = r.json()
    assert (made["type"], made["data"], made["key"]) == (kind, stored, "report")
    assert (await client.get(f"/artifacts/{made['id']}")).json() == made
    assert [a["id"] for a in (await client.get("/artifacts", params={"flow_run_id": run})).json()] == [made["id"]]  # fmt: skip


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"type": "markdown", "data": 3}, "data", "expected markdown text"),
        ({"type": "table", "data": [{"a": 1}, [1]]}, "data", "expected a table"),
        ({"type": "table", "data": "a,b"}, "data", "expected a table"),
        ({"type": "link", "data": "javascript:alert(1)"}, "data", "http:// or https://"),
        ({"type": "link", "data": {"url": "ftp://x/y"}}, "data.url", "http:// or https://"),
        ({"type": "link", "data": {"url": "https://x", "text": 3}}, "data.text", "expected text"),
        ({"type": "image", "data": None}, "data", "expected a URL"),
        ({"type": "progress", "data": 101}, "data", "from 0 to 100"),
        ({"type": "progress", "data": True}, "data", "from 0 to 100"),
        ({"type": "progress", "data": "50"}, "data", "from 0 to 100"),
        ({"type": "chart", "data": 1}, "type", "markdown"),
        ({"type": "markdown", "data": "x", "key": "Not A Key"}, "key", "pattern"),
        ({"type": "markdown", "data": "x" * (1024 * 1024 + 1)}, "data", "the limit is 1048576"),
        (
            {"type": "markdown", "data": "x", "flow_run_id": str(uuid.uuid4())},
            "flow_run_id",
            "no flow run",
        ),
        (
            {"type": "markdown", "data": "x", "task_run_id": str(uuid.uuid4())},
            "flow_run_id",
            "is required",
        ),
    ],
)
async def test_bad_artifacts_are_refused_naming_the_field_and_nothing_is_written(
    client: httpx.AsyncClient, body: dict[str, Any], field: str, words: str
) -> None:
    r = await client.post("/artifacts", json=body)
    assert r.status_code in {413, 422}, r.text
    assert r.json()["errors"][0]["field"] == field
    assert words in r.json()["detail"]
    assert (await client.get("/artifacts")).json() == []


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"a": [1] * 100_000, **{f"c{i}": [] for i in range(10)}}, "cells"),
        ([{"x": 1}] * 100_000 + [{f"k{i}": 1 for i in range(3)}], "cells"),
        ([{f"k{i}": 1 for i in range(501)}], "columns"),
        ([[1] * 600], "columns"),
    ],
    ids=["padded-columns", "padded-rows", "wide-objects", "wide-lists"],
)
async def test_a_table_is_refused_before_it_is_built_when_too_big(
    client: httpx.AsyncClient, data: Any, words: str
) -> None:
    r = await client.post("/artifacts", json={"type": "table", "data": data})
    assert r.status_code in {413, 422}, r.text
    assert r.json()["errors"][0]["field"] == "data"
    assert words in r.json()["detail"]


async def test_a_keys_versions_are_its_history_newest_first(client: httpx.AsyncClient) -> None:
    ids = []
    for n in range(3):
        r = await client.post(
            "/artifacts", json={"type": "markdown", "data": f"v{n}", "key": "daily"}
        )
        ids.append(r.json()["id"])
    await client.post("/artifacts", json={"type": "markdown", "data": "other", "key": "weekly"})
    history = (await client.get("/artifacts", params={"key": "daily"})).json()
    assert [a["data"] for a in history] == ["v2", "v1", "v0"]
    latest = (await client.get("/artifacts", params={"key": "daily", "limit": 1})).json()
    assert [a["id"] for a in latest] == [ids[2]]
    tables = (await client.get("/artifacts", params={"type": "table"})).json()
    assert tables == []
    assert (await client.delete(f"/artifacts/{ids[0]}")).status_code == 204
    assert (await client.get(f"/artifacts/{ids[0]}")).status_code == 404


async def test_progress_is_updated_in_place_and_checked_against_its_type(
    client: httpx.AsyncClient,
) -> None:
    made = (await client.post("/artifacts", json={"type": "progress", "data": 0})).json()
    r = await client.patch(f"/artifacts/{made['id']}", json={"data": 75, "description": "3 of 4"})
    assert r.status_code == 200, r.text
    assert (r.json()["data"], r.json()["description"]) == (75, "3 of 4")
    assert r.json()["updated"] >= made["updated"]
    r = await client.patch(f"/artifacts/{made['id']}", json={"data": "done"})
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "data"
    assert (await client.get(f"/artifacts/{made['id']}")).json()["data"] == 75
    assert (await client.patch(f"/artifacts/{uuid.uuid4()}", json={"data": 1})).status_code == 404


async def test_a_run_token_publishes_to_its_own_run_tree_only(
    client: httpx.AsyncClient, client_for: ClientFactory
) -> None:
    run = await new_run(client)
    other = await new_run(client)
    token = await run_token(client, run)
    async with client_for(token) as runner:
        r = await runner.post("/artifacts", json={"type": "progress", "data": 10})
        assert r.status_code == 201, r.text
        mine = r.json()
        assert mine["flow_run_id"] == run  # no run named: the token's own
        assert (await runner.patch(f"/artifacts/{mine['id']}", json={"data": 20})).status_code == 200  # fmt: skip
        r = await runner.post(
            "/artifacts", json={"type": "markdown", "data": "x", "flow_run_id": other}
        )
        assert r.status_code == 422
        assert r.json()["errors"][0]["field"] == "flow_run_id"
        theirs = (
            await client.post(
                "/artifacts", json={"type": "progress", "data": 1, "flow_run_id": other}
            )
        ).json()
        assert (await runner.patch(f"/artifacts/{theirs['id']}", json={"data": 2})).status_code == 404  # fmt: skip
        assert (await runner.get("/artifacts")).status_code == 403  # reading takes an API key


async def test_another_workspaces_artifacts_are_not_found(
    client: httpx.AsyncClient, client_for: ClientFactory
) -> None:
    run = await new_run(client)
    made = (await client.post("/artifacts", json={"type": "markdown", "data": "x"})).json()
    key = await make_workspace_key(client, "other")
    async with client_for(key) as other:
        assert (await other.get(f"/artifacts/{made['id']}")).status_code == 404
        assert (await other.get("/artifacts")).json() == []
        r = await other.post(
            "/artifacts",
            json={
                "type": "markdown",
                "data": "x",
                "flow_run_id": run,  # a run of another workspace
            },
        )
        assert r.status_code == 422


async def test_a_deleted_runs_artifacts_go_with_it(client: httpx.AsyncClient) -> None:
    run = await new_run(client)
    await client.post("/artifacts", json={"type": "markdown", "data": "x", "flow_run_id": run})
    await client.post(f"/flow-runs/{run}/state", json={"type": "COMPLETED"})
    assert (await client.delete(f"/flow-runs/{run}")).status_code == 204
    assert (await client.get("/artifacts")).json() == []
