"""A flow run's state ends the batch before it: one request for both, and the older ways
for a server that predates it or refuses the batch."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from typing import Any

import pytest

from flowyard.client._wire import WireClient
from flowyard.client.sdk_integration import ServerReporter
from flowyard.sdk import _reporting as rep
from flowyard.sdk._states import StateType
from tests.unit.client.fakes import JsonHandler, serving
from tests.unit.client.test_report_batches import _flow_state, _OlderApi, at


class _NoStatesInBatches(_OlderApi):
    """An API that takes combined batches, but not a flow-run state in one."""

    refused = ("flow_run_state",)


class _RefusesBadLines(JsonHandler):
    """Refuses a batch holding the line "bad" (404, as for a missing run); takes states."""

    def do_POST(self) -> None:
        body = self.body()
        status, answer = 200, {"status": "ACCEPT"}
        if "flow_run_state" in body:
            answer = {"flow_run_state": answer}
        if any(line["message"] == "bad" for line in body.get("logs", [])):
            status, answer = 404, {"detail": "logs.0.flow_run_id: flow run not found"}
        self.answer(status, answer)


@pytest.fixture
def no_states_in_batches() -> Iterator[ThreadingHTTPServer]:
    with serving(_NoStatesInBatches) as server:
        yield server


@pytest.fixture
def older_api() -> Iterator[ThreadingHTTPServer]:
    with serving(_OlderApi) as server:
        yield server


@pytest.fixture
def refuses_bad_lines() -> Iterator[ThreadingHTTPServer]:
    with serving(_RefusesBadLines) as server:
        yield server


def _line(run: uuid.UUID, message: str, seconds: float) -> rep.LogEmitted:
    return rep.LogEmitted(run, None, 20, "flowyard.flow_runs", message, at(seconds))


def _record(server: ThreadingHTTPServer, *chunks: list[rep.Event]) -> ServerReporter:
    """A managed run's recorder sending each chunk of events as one (then flushed)."""
    host, port = server.server_address[:2]
    client = WireClient(f"http://{host!s}:{port}/api", "fyr_x", attempts=0)
    run = next(e.run_id for chunk in chunks for e in chunk if isinstance(e, rep.StateChanged))
    reporter = ServerReporter(client, interval=0.01, durable=True, existing=run)
    started = rep.FlowRunStarted(
        run, "brave-fox", "etl", None, {}, None, None, frozenset(), uuid.uuid4(), at(0)
    )
    try:
        reporter.emit(started)
        for chunk in chunks:
            with reporter._cond:  # one chunk, as when the flow outruns the recorder
                reporter._start()
                for event in chunk:
                    reporter.emit(event)
            reporter.flush(timeout=30)
    finally:
        reporter.close()
        client.close()
    return reporter


def _chunks(run: uuid.UUID, first: str = "hello") -> tuple[list[rep.Event], list[rep.Event]]:
    return (
        [_flow_state(run, StateType.RUNNING, 1), _line(run, first, 2)],
        [_flow_state(run, StateType.COMPLETED, 3), _line(run, "Finished", 4)],
    )


def _sent(server: ThreadingHTTPServer) -> list[tuple[str, Any]]:
    """Each request as its path's last part and what it carried that matters here."""
    received: list[tuple[str, dict[str, Any]]] = server.received  # type: ignore[attr-defined]
    out: list[tuple[str, Any]] = []
    for path, body in received:
        if path.endswith("/state"):
            out.append(("state", body["type"]))
        else:
            state = body.get("flow_run_state")
            lines = [line["message"] for line in body.get("logs", [])]
            out.append((path.rpartition("/")[2], (lines, state and state["type"])))
    return out


def test_an_api_without_states_in_batches_gets_each_state_alone_after_its_batch(
    no_states_in_batches: ThreadingHTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    run = uuid.uuid4()
    reporter = _record(no_states_in_batches, *_chunks(run))
    # Refused once; from then on the batch, then the state, as before.
    assert _sent(no_states_in_batches) == [
        ("batch", (["hello"], "RUNNING")),
        ("batch", (["hello"], None)),
        ("state", "RUNNING"),
        ("batch", (["Finished"], None)),
        ("state", "COMPLETED"),
    ]
    assert reporter._flow_states[run] is StateType.COMPLETED
    assert "could not record" not in caplog.text


def test_an_api_from_before_combined_batches_gets_lines_and_states_apart(
    older_api: ThreadingHTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    run = uuid.uuid4()
    reporter = _record(older_api, *_chunks(run))
    assert _sent(older_api) == [
        ("batch", (["hello"], "RUNNING")),
        ("logs", (["hello"], None)),
        ("state", "RUNNING"),
        ("logs", (["Finished"], None)),
        ("state", "COMPLETED"),
    ]
    assert reporter._flow_states[run] is StateType.COMPLETED
    assert "could not record" not in caplog.text


def test_a_refused_batch_is_tried_alone_and_its_state_still_goes(
    refuses_bad_lines: ThreadingHTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    run = uuid.uuid4()
    reporter = _record(refuses_bad_lines, *_chunks(run, first="bad"))
    assert _sent(refuses_bad_lines) == [
        ("batch", (["bad"], "RUNNING")),
        ("batch", (["bad"], None)),
        ("state", "RUNNING"),
        ("batch", (["Finished"], "COMPLETED")),  # states in batches go on
    ]
    assert reporter._flow_states[run] is StateType.COMPLETED
    assert "could not record task runs and logs" in caplog.text
