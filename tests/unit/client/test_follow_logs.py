"""Following a run's logs over SSE: typed events, resume after a drop, and giving up."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from flowyard.client import LogEvent, LogReceived, NotFoundError, ServerUnavailable, StateChanged
from flowyard.schemas.states import StateType
from tests.unit.client.fakes import Handler, ScriptedApi, answer, refuse

RUN = uuid.uuid4()


def log_event(log_id: int, message: str) -> str:
    log = {
        "id": log_id,
        "flow_run_id": str(RUN),
        "task_run_id": None,
        "level": 20,
        "name": "flow",
        "message": message,
        "timestamp": "2026-01-01T00:00:00Z",
    }
    return f"event: log\nid: {log_id}\ndata: {json.dumps(log)}\n\n"


def state_event(state_type: str, state_id: uuid.UUID | None = None) -> str:
    state = {
        "id": str(state_id) if state_id else None,
        "type": state_type,
        "name": state_type.title(),
        "message": "",
        "timestamp": "2026-01-01T00:00:01Z",
    }
    return f"event: state\ndata: {json.dumps(state)}\n\n"


class Chunks(httpx.AsyncByteStream):
    """A response body sent in pieces, optionally cut off with an error."""

    def __init__(self, chunks: list[str], then: Exception | None = None) -> None:
        self.chunks = chunks
        self.then = then

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk.encode()
        if self.then is not None:
            raise self.then


def stream(chunks: list[str], then: Exception | None = None) -> Handler:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, headers={"content-type": "text/event-stream"}, stream=Chunks(chunks, then)
        )

    return handle


async def collect(api: ScriptedApi, **kw: int) -> list[LogEvent]:
    async with api.client() as client:
        return [event async for event in client.follow_logs(RUN, **kw)]


async def test_log_and_state_events_are_typed_and_the_stream_stops_at_end() -> None:
    api = ScriptedApi(
        [
            stream(
                [
                    ": connected\n\n",
                    log_event(1, "hello"),
                    state_event("COMPLETED"),
                    "event: end\ndata: {}\n\n",
                ]
            )
        ]
    )
    events = await collect(api)
    assert isinstance(events[0], LogReceived)
    assert events[0].log.message == "hello"
    assert isinstance(events[1], StateChanged)
    assert events[1].type is StateType.COMPLETED
    assert len(events) == 2
    assert api.requests[0].headers["accept"] == "text/event-stream"
    assert api.requests[0].url.path == f"/api/flow-runs/{RUN}/logs/follow"


async def test_a_dropped_stream_resumes_after_the_last_event_it_saw() -> None:
    cut = httpx.ReadError("connection reset")
    api = ScriptedApi(
        [
            stream(["retry: 0\n\n", log_event(1, "one"), log_event(2, "two"), "event: log\n"], cut),
            stream([log_event(3, "three"), "event: end\ndata: {}\n\n"]),
        ]
    )
    events = await collect(api)
    assert [e.log.message for e in events if isinstance(e, LogReceived)] == ["one", "two", "three"]
    assert "last-event-id" not in api.requests[0].headers
    assert api.requests[1].headers["last-event-id"] == "2"


async def test_a_stream_closed_before_the_end_event_is_reopened() -> None:
    api = ScriptedApi(
        [
            stream(["retry: 0\n\n", log_event(7, "a")]),
            stream(["event: end\ndata: {}\n\n"]),
        ]
    )
    events = await collect(api)
    assert len(events) == 1
    assert api.requests[1].headers["last-event-id"] == "7"


async def test_following_from_a_known_line_sends_it_as_the_last_event_id() -> None:
    api = ScriptedApi([stream(["event: end\ndata: {}\n\n"])])
    assert await collect(api, after=41) == []
    assert api.requests[0].headers["last-event-id"] == "41"


async def test_following_gives_up_after_reconnects_that_deliver_nothing() -> None:
    api = ScriptedApi([refuse] * 3)
    with pytest.raises(ServerUnavailable, match="connection refused"):
        await collect(api, max_reconnects=2)
    assert len(api.requests) == 3


async def test_following_an_unknown_run_is_not_found_without_reconnecting() -> None:
    api = ScriptedApi([answer(404, {"detail": f"flow run {RUN} not found"})])
    with pytest.raises(NotFoundError, match="not found"):
        await collect(api)
    assert len(api.requests) == 1


async def test_unknown_event_kinds_are_skipped_for_forward_compatibility() -> None:
    api = ScriptedApi(
        [stream(["event: progress\ndata: 50\n\n", log_event(1, "x"), "event: end\ndata: {}\n\n"])]
    )
    events = await collect(api)
    assert [type(e) for e in events] == [LogReceived]


async def test_a_state_event_may_carry_no_state_id() -> None:
    state_id = uuid.uuid4()
    api = ScriptedApi(
        [
            stream(
                [
                    state_event("SCHEDULED"),
                    state_event("RUNNING", state_id),
                    "event: end\ndata: {}\n\n",
                ]
            )
        ]
    )
    events = await collect(api)
    assert [(e.type, e.state_id) for e in events if isinstance(e, StateChanged)] == [
        (StateType.SCHEDULED, None),
        (StateType.RUNNING, state_id),
    ]


async def test_a_server_error_event_ends_the_connection_and_the_follow_reconnects() -> None:
    api = ScriptedApi(
        [
            stream(["retry: 0\n\n", log_event(1, "a"), 'event: error\ndata: {"detail": "db"}\n\n']),
            stream([log_event(2, "b"), "event: end\ndata: {}\n\n"]),
        ]
    )
    events = await collect(api)
    assert [e.log.id for e in events if isinstance(e, LogReceived)] == [1, 2]
    assert api.requests[1].headers["last-event-id"] == "1"
