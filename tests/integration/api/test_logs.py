from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import uvicorn

from flowyard.server.api import logs as logs_api
from flowyard.server.app import create_app
from flowyard.server.context import ServerContext
from flowyard.server.ops import logs as logs_ops
from flowyard.settings import Settings
from tests.integration.api.conftest import ClientFactory, make_workspace_key
from tests.integration.api.test_task_runs import batch, entry, new_run, run_token

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def line(run_id: str, message: str, level: object = 20, **fields: object) -> dict[str, Any]:
    return {
        "flow_run_id": run_id,
        "level": level,
        "message": message,
        "timestamp": T0.isoformat(),
        **fields,
    }


async def post_lines(client: httpx.AsyncClient, *lines: dict[str, Any]) -> httpx.Response:
    return await client.post("/logs", json={"logs": list(lines)})


async def test_a_batch_of_thousands_of_lines_is_stored_and_read_back_in_order(
    client: httpx.AsyncClient,
) -> None:
    run = await new_run(client)
    r = await post_lines(client, *(line(run, f"line {i}") for i in range(5000)))
    assert r.status_code == 201, r.text
    assert r.json() == {"count": 5000}
    page = (await client.get(f"/flow-runs/{run}/logs", params={"limit": 5000})).json()
    assert [x["message"] for x in page["items"]] == [f"line {i}" for i in range(5000)]
    ids = [x["id"] for x in page["items"]]
    assert ids == sorted(ids)
    assert page["has_more"] is False
    assert page["next_cursor"] == ids[-1]


async def test_reading_with_a_cursor_pages_through_lines_and_picks_up_new_ones(
    client: httpx.AsyncClient,
) -> None:
    run = await new_run(client)
    await post_lines(client, *(line(run, f"a{i}") for i in range(5)))
    first = (await client.get(f"/flow-runs/{run}/logs", params={"limit": 3})).json()
    assert [x["message"] for x in first["items"]] == ["a0", "a1", "a2"]
    assert first["has_more"] is True
    params = {"after": first["next_cursor"], "limit": 3}
    second = (await client.get(f"/flow-runs/{run}/logs", params=params)).json()
    assert [x["message"] for x in second["items"]] == ["a3", "a4"]
    assert second["has_more"] is False
    params = {"after": second["next_cursor"]}
    empty = (await client.get(f"/flow-runs/{run}/logs", params=params)).json()
    assert empty["items"] == []
    assert empty["next_cursor"] == second["next_cursor"]
    await post_lines(client, line(run, "a5"))
    newer = (await client.get(f"/flow-runs/{run}/logs", params=params)).json()
    assert [x["message"] for x in newer["items"]] == ["a5"]


async def test_level_and_search_filter_lines_and_search_treats_wildcards_literally(
    client: httpx.AsyncClient,
) -> None:
    run = await new_run(client)
    await post_lines(
        client,
        line(run, "Loading 100% done", 20),
        line(run, "debug detail", 10),
        line(run, "ERROR: disk full", 40),
        line(run, "loading_more", 20),
    )
    url = f"/flow-runs/{run}/logs"
    warn = (await client.get(url, params={"level": 30})).json()["items"]
    assert [x["message"] for x in warn] == ["ERROR: disk full"]
    found = (await client.get(url, params={"search": "LOADING"})).json()["items"]
    assert [x["message"] for x in found] == ["Loading 100% done", "loading_more"]
    percent = (await client.get(url, params={"search": "0% d"})).json()["items"]
    assert [x["message"] for x in percent] == ["Loading 100% done"]
    underscore = (await client.get(url, params={"search": "g_m"})).json()["items"]
    assert [x["message"] for x in underscore] == ["loading_more"]


async def test_log_content_is_returned_exactly_as_sent(client: httpx.AsyncClient) -> None:
    run = await new_run(client)
    messages = ["<script>alert(1)</script>", "two\nlines\r\n", "tab\tand ☃ 🚀", "\x1b[31mred"]
    await post_lines(client, *(line(run, m) for m in messages))
    items = (await client.get(f"/flow-runs/{run}/logs")).json()["items"]
    assert [x["message"] for x in items] == messages


async def test_unstorable_characters_become_replacement_characters_not_a_failed_batch(
    client: httpx.AsyncClient,
) -> None:
    run = await new_run(client)
    lines = [line(run, "a\x00b", name="x\x00"), line(run, "bad \udc80 byte")]
    body = json.dumps({"logs": lines}).encode()  # escaped: the surrogate survives the trip
    r = await client.post("/logs", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 201, r.text
    items = (await client.get(f"/flow-runs/{run}/logs")).json()["items"]
    assert (items[0]["message"], items[0]["name"]) == ("a\ufffdb", "x\ufffd")
    assert items[1]["message"] == "bad \ufffd byte"


async def test_bad_lines_are_refused_naming_the_field_and_nothing_is_written(
    client: httpx.AsyncClient,
) -> None:
    run = await new_run(client)
    ok = line(run, "fine")
    cases = [
        (line(run, "x", level=101), "logs.1.level"),
        (line(run, "x", level="high"), "logs.1.level"),
        (line(run, "x", timestamp="2030-01-01T00:00:00"), "logs.1.timestamp"),
        (line(run, "x", timestamp="0001-01-01T00:00:00+01:00"), "logs.1.timestamp"),
        (line(run, "x", colour="red"), "logs.1.colour"),
        ({"flow_run_id": run, "level": 20, "timestamp": T0.isoformat()}, "logs.1.message"),
        (line("not-a-uuid", "x"), "logs.1.flow_run_id"),
    ]
    for bad, field in cases:
        r = await post_lines(client, ok, bad)
        assert r.status_code == 422, (field, r.text)
        assert r.json()["detail"].startswith(f"{field}:"), r.json()
    r = await client.post(
        "/logs", content=b'{"logs": [', headers={"content-type": "application/json"}
    )
    assert r.status_code == 422
    assert "malformed JSON" in r.json()["detail"]
    r = await client.post("/logs", json={"logs": [ok] * 50_001})
    assert r.status_code == 422
    assert r.json()["detail"].startswith("logs:")
    r = await post_lines(client, ok, line(str(uuid.uuid4()), "x"))
    assert r.status_code == 404
    assert r.json()["detail"].startswith("logs.1.flow_run_id:")
    assert (await client.get(f"/flow-runs/{run}/logs")).json()["items"] == []


async def test_an_oversize_body_is_refused_with_413(client: httpx.AsyncClient) -> None:
    run = await new_run(client)
    big = line(run, "x" * 900_000)
    r = await client.post("/logs", json={"logs": [big] * 20})
    assert r.status_code == 413
    assert "larger than the server accepts" in r.json()["detail"]


async def test_bad_read_parameters_are_refused_naming_them(client: httpx.AsyncClient) -> None:
    run = await new_run(client)
    url = f"/flow-runs/{run}/logs"
    cases: list[tuple[dict[str, str | int], str]] = [
        ({"after": -1}, "after"),
        ({"after": 2**70}, "after"),
        ({"limit": 0}, "limit"),
        ({"limit": 100_000}, "limit"),
        ({"level": "loud"}, "level"),
    ]
    for params, field in cases:
        r = await client.get(url, params=params)
        assert r.status_code == 422, params
        assert r.json()["detail"].startswith(f"{field}:")


async def test_another_workspaces_run_logs_are_not_found(
    client: httpx.AsyncClient, client_for: ClientFactory
) -> None:
    run = await new_run(client)
    await post_lines(client, line(run, "private"))
    key = await make_workspace_key(client, "other")
    async with client_for(key) as other:
        assert (await other.get(f"/flow-runs/{run}/logs")).status_code == 404
        assert (await other.get(f"/flow-runs/{run}/logs/follow")).status_code == 404
        r = await post_lines(other, line(run, "intruder"))
        assert r.status_code == 404
    items = (await client.get(f"/flow-runs/{run}/logs")).json()["items"]
    assert [x["message"] for x in items] == ["private"]


async def test_a_run_token_writes_and_reads_logs_of_its_own_run_tree_only(
    client: httpx.AsyncClient, client_for: ClientFactory
) -> None:
    run, stranger = await new_run(client), await new_run(client)
    token = await run_token(client, run)
    async with client_for(token) as runner:
        subflow = await new_run(runner, flow_name="sub")
        r = await post_lines(runner, line(run, "mine"), line(subflow, "sub"))
        assert r.status_code == 201, r.text
        assert (await runner.get(f"/flow-runs/{subflow}/logs")).status_code == 200
        r = await post_lines(runner, line(run, "mine"), line(stranger, "theirs"))
        assert r.status_code == 404
        assert r.json()["detail"].startswith("logs.1.flow_run_id:")
        assert (await runner.get(f"/flow-runs/{stranger}/logs")).status_code == 404
        assert (await runner.get(f"/flow-runs/{stranger}/logs/follow")).status_code == 404
    assert (await client.get(f"/flow-runs/{stranger}/logs")).json()["items"] == []


async def test_a_cursor_reader_misses_no_line_while_several_writers_append(
    client: httpx.AsyncClient,
) -> None:
    # A race detector: without the per-run lock on PostgreSQL a batch could commit
    # after a later-numbered one was read, and the cursor would skip it for good.
    run = await new_run(client)
    writers, batches, size = 8, 40, 5

    async def write(w: int) -> None:
        for b in range(batches):
            r = await post_lines(client, *(line(run, f"{w}-{b}-{i}") for i in range(size)))
            assert r.status_code == 201, r.text

    seen: list[dict[str, Any]] = []

    async def read_once() -> None:
        after = seen[-1]["id"] if seen else None
        params = {"limit": 5000} if after is None else {"limit": 5000, "after": after}
        seen.extend((await client.get(f"/flow-runs/{run}/logs", params=params)).json()["items"])

    tasks = [asyncio.create_task(write(w)) for w in range(writers)]
    while not all(t.done() for t in tasks):
        await read_once()
        await asyncio.sleep(0)
    await asyncio.gather(*tasks)
    await read_once()
    assert len(seen) == writers * batches * size
    assert len({x["message"] for x in seen}) == len(seen)


async def test_a_commit_of_lines_wakes_followers_of_that_run_only(
    client: httpx.AsyncClient,
) -> None:
    run, other = await new_run(client), await new_run(client)
    mine, theirs = asyncio.Event(), asyncio.Event()
    logs_ops.follow(uuid.UUID(run), mine)
    logs_ops.follow(uuid.UUID(other), theirs)
    try:
        await post_lines(client, line(run, "hello"))
        assert mine.is_set()
        assert not theirs.is_set()
    finally:
        logs_ops.unfollow(uuid.UUID(run), mine)
        logs_ops.unfollow(uuid.UUID(other), theirs)


async def test_following_needs_credentials_and_a_sane_last_event_id(
    client: httpx.AsyncClient, client_for: ClientFactory
) -> None:
    run = await new_run(client)
    async with client_for(None) as anonymous:
        assert (await anonymous.get(f"/flow-runs/{run}/logs/follow")).status_code == 401
    r = await client.get(f"/flow-runs/{run}/logs/follow", headers={"Last-Event-ID": "abc"})
    assert r.status_code == 422
    assert r.json()["detail"].startswith("Last-Event-ID:")


# --- the live stream, over a real server: the in-process transport buffers bodies


async def eventually(condition: Callable[[], bool], seconds: float = 20) -> None:
    """Wait for a condition that a background task will make true."""
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached in time")


@pytest.fixture
async def live_api(ctx: ServerContext, settings: Settings) -> AsyncIterator[str]:
    """The app served by uvicorn on a free port, in this test's event loop."""
    app = create_app(settings, context=ctx)
    app.state.ctx = ctx
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, lifespan="off", log_level="warning", ws="none", http="h11")
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    await eventually(lambda: server.started)
    yield f"http://127.0.0.1:{port}/api"
    server.should_exit = True
    await task
    sock.close()


@dataclass(frozen=True)
class Event:
    name: str
    data: str
    id: str | None


class EventReader:
    """Parses a text/event-stream response into events and comments."""

    def __init__(self, response: httpx.Response) -> None:
        self.lines = response.aiter_lines()
        self.comments: list[str] = []

    async def next(self) -> Event:
        fields: dict[str, str] = {}
        async with asyncio.timeout(20):
            async for text in self.lines:
                if text == "":
                    if "event" in fields or "data" in fields:
                        return Event(
                            fields.get("event", "message"), fields.get("data", ""), fields.get("id")
                        )
                    continue
                if text.startswith(":"):
                    self.comments.append(text)
                    continue
                name, _, value = text.partition(": ")
                fields[name] = value
        raise AssertionError("the stream ended without another event")

    async def until(self, name: str) -> list[Event]:
        seen = []
        while True:
            event = await self.next()
            seen.append(event)
            if event.name == name:
                return seen


@asynccontextmanager
async def following(live_api: str, run: str, key: str) -> AsyncIterator[EventReader]:
    """A live follow stream of the run's log, read event by event."""
    headers = {"Authorization": f"Bearer {key}"}
    async with (
        httpx.AsyncClient(base_url=live_api, headers=headers, timeout=20) as http,
        http.stream("GET", f"/flow-runs/{run}/logs/follow") as response,
    ):
        assert response.status_code == 200
        yield EventReader(response)


def messages(events: list[Event]) -> list[str]:
    return [json.loads(e.data)["message"] for e in events if e.name == "log"]


async def test_following_streams_old_and_new_lines_and_state_changes_then_ends(
    client: httpx.AsyncClient, admin_key: str, live_api: str
) -> None:
    run = await new_run(client)
    await post_lines(client, line(run, "one"), line(run, "two"))
    headers = {"Authorization": f"Bearer {admin_key}"}
    async with (
        httpx.AsyncClient(base_url=live_api, headers=headers, timeout=20) as http,
        http.stream("GET", f"/flow-runs/{run}/logs/follow") as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        reader = EventReader(response)
        first = await reader.next()
        assert first.name == "state"
        assert json.loads(first.data)["type"] == "RUNNING"
        got = [await reader.next(), await reader.next()]
        assert messages(got) == ["one", "two"]
        assert all(e.id == str(json.loads(e.data)["id"]) for e in got)
        await post_lines(client, line(run, "three\nwith a newline"))
        assert messages([await reader.next()]) == ["three\nwith a newline"]
        await post_lines(client, line(run, "four"))
        r = await client.post(f"/flow-runs/{run}/state", json={"type": "COMPLETED"})
        assert r.json()["status"] == "ACCEPT"
        rest = await reader.until("end")
    assert messages(rest) == ["four"]
    states = [json.loads(e.data)["type"] for e in rest if e.name == "state"]
    assert states == ["COMPLETED"]
    assert json.loads(rest[-1].data)["state"]["type"] == "COMPLETED"


async def test_a_task_runs_lines_carry_its_name_when_read_and_followed(
    client: httpx.AsyncClient, admin_key: str, live_api: str
) -> None:
    run = await new_run(client)
    task = str(uuid.uuid4())
    assert (await batch(client, entry(run, task, "RUNNING", name="double-0"))).status_code == 200
    unrecorded = str(uuid.uuid4())  # a line may arrive before its task run is recorded
    await post_lines(
        client,
        line(run, "from the flow"),
        line(run, "from the task", task_run_id=task),
        line(run, "from a task not yet recorded", task_run_id=unrecorded),
    )
    items = (await client.get(f"/flow-runs/{run}/logs")).json()["items"]
    assert [item["task_run_name"] for item in items] == [None, "double-0", None]
    await client.post(f"/flow-runs/{run}/state", json={"type": "COMPLETED"})
    async with following(live_api, run, admin_key) as reader:
        events = await reader.until("end")
    followed = [json.loads(e.data) for e in events if e.name == "log"]
    assert [(f["message"], f["task_run_name"]) for f in followed] == [
        ("from the flow", None),
        ("from the task", "double-0"),
        ("from a task not yet recorded", None),
    ]


async def test_following_resumes_after_the_last_event_id(
    client: httpx.AsyncClient, admin_key: str, live_api: str
) -> None:
    run = await new_run(client)
    await post_lines(client, *(line(run, f"l{i}") for i in range(4)))
    items = (await client.get(f"/flow-runs/{run}/logs")).json()["items"]
    await client.post(f"/flow-runs/{run}/state", json={"type": "FAILED"})
    headers = {"Authorization": f"Bearer {admin_key}", "Last-Event-ID": str(items[1]["id"])}
    async with (
        httpx.AsyncClient(base_url=live_api, headers=headers, timeout=20) as http,
        http.stream("GET", f"/flow-runs/{run}/logs/follow") as response,
    ):
        events = await EventReader(response).until("end")
    assert messages(events) == ["l2", "l3"]


async def test_a_run_token_follows_its_own_run_and_a_filter_by_level_applies(
    client: httpx.AsyncClient, live_api: str
) -> None:
    run = await new_run(client)
    token = await run_token(client, run)
    await post_lines(client, line(run, "quiet", 10), line(run, "loud", 40))
    await client.post(f"/flow-runs/{run}/state", json={"type": "COMPLETED"})
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx.AsyncClient(base_url=live_api, headers=headers, timeout=20) as http,
        http.stream("GET", f"/flow-runs/{run}/logs/follow", params={"level": 30}) as response,
    ):
        events = await EventReader(response).until("end")
    assert messages(events) == ["loud"]


async def test_an_idle_stream_sends_heartbeats_and_stops_following_when_closed(
    client: httpx.AsyncClient, admin_key: str, live_api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logs_api, "HEARTBEAT_SECONDS", 0.0)
    run = await new_run(client)
    async with following(live_api, run, admin_key) as reader:
        await reader.next()  # the state
        async with asyncio.timeout(20):
            async for text in reader.lines:
                if text.startswith(":"):
                    break
        assert logs_ops.follower_count(uuid.UUID(run)) == 1
    await eventually(lambda: logs_ops.follower_count(uuid.UUID(run)) == 0)
    assert logs_ops.follower_count(uuid.UUID(run)) == 0


async def test_a_deleted_run_ends_its_stream(
    client: httpx.AsyncClient, admin_key: str, live_api: str
) -> None:
    run = await new_run(client, state={"type": "SCHEDULED"})
    async with following(live_api, run, admin_key) as reader:
        assert json.loads((await reader.next()).data)["type"] == "SCHEDULED"
        assert (await client.delete(f"/flow-runs/{run}")).status_code == 204
        events = await reader.until("end")
    assert json.loads(events[-1].data) == {"state": None, "reason": "flow run deleted"}


async def test_draining_closes_open_streams_without_an_end_event(
    client: httpx.AsyncClient, admin_key: str, live_api: str
) -> None:
    run = await new_run(client)
    async with following(live_api, run, admin_key) as reader:
        assert (await reader.next()).name == "state"
        logs_ops.drain()
        with pytest.raises(AssertionError, match="ended without another event"):
            await reader.next()
    await eventually(lambda: logs_ops.follower_count(uuid.UUID(run)) == 0)


async def test_a_follower_sees_every_state_even_those_between_two_of_its_polls(
    client: httpx.AsyncClient, admin_key: str, live_api: str
) -> None:
    run = await new_run(client)
    async with following(live_api, run, admin_key) as reader:
        assert json.loads((await reader.next()).data)["type"] == "RUNNING"
        # Two changes back to back: the follower, asleep until its next poll, finds both.
        for state in ("CANCELLING", "CANCELLED"):
            r = await client.post(f"/flow-runs/{run}/state", json={"type": state})
            assert r.json()["status"] == "ACCEPT", r.text
        await post_lines(client, line(run, "after the end"))
        rest = await reader.until("end")
    assert [json.loads(e.data)["type"] for e in rest if e.name == "state"] == [
        "CANCELLING",
        "CANCELLED",
    ]
    assert messages(rest) == ["after the end"]
