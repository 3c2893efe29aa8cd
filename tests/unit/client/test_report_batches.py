"""What the run recorder sends: coalesced task-run states with their log lines, and the
older form for a server that predates it."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from flowyard.client._batches import ReportBatch, state_fields
from flowyard.client._wire import WireClient
from flowyard.client.sdk_integration import ServerReporter
from flowyard.sdk import _reporting as rep
from flowyard.sdk._states import StateType

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
TASK = uuid.uuid4()
FIXED = {"id": str(TASK), "flow_run_id": str(uuid.uuid4()), "name": "double-0"}


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_a_task_runs_states_in_one_batch_travel_as_one_entry() -> None:
    batch = ReportBatch()
    batch.add_state(TASK, FIXED, state_fields(StateType.PENDING, "Pending", None, at(0)), 0, None)
    batch.add_state(
        TASK, FIXED, state_fields(StateType.RUNNING, "Retrying", "again", at(1)), 1, "k1"
    )
    batch.add_state(TASK, FIXED, state_fields(StateType.COMPLETED, "Completed", "", at(2)), 1, None)
    batch.add_log({"flow_run_id": FIXED["flow_run_id"], "message": "hi"})
    assert (batch.states, len(batch)) == (3, 4)
    assert batch.body() == {
        "task_runs": [
            {
                **FIXED,
                "state_type": "COMPLETED",
                "timestamp": at(2).isoformat(),
                "run_count": 1,
                "previous_states": [
                    {"type": "PENDING", "timestamp": at(0).isoformat()},
                    {
                        "type": "RUNNING",
                        "timestamp": at(1).isoformat(),
                        "name": "Retrying",
                        "message": "again",
                    },
                ],
            }
        ],
        "logs": [{"flow_run_id": FIXED["flow_run_id"], "message": "hi"}],
    }
    batch.clear()
    assert (len(batch), batch.body()) == (0, {})


def test_the_older_form_has_one_entry_per_state_and_the_lines_apart() -> None:
    batch = ReportBatch()
    batch.add_state(TASK, FIXED, state_fields(StateType.RUNNING, "Running", None, at(1)), 1, None)
    batch.add_state(TASK, FIXED, state_fields(StateType.FAILED, "Failed", "boom", at(2)), 1, "k")
    batch.add_log({"message": "hi"})
    task_runs, logs = batch.separate_bodies()
    assert task_runs == [
        {**FIXED, "state_type": "RUNNING", "timestamp": at(1).isoformat()},
        {
            **FIXED,
            "state_type": "FAILED",
            "timestamp": at(2).isoformat(),
            "state_message": "boom",
            "run_count": 1,
            "cache_key": "k",
        },
    ]
    assert logs == [{"message": "hi"}]


class _OlderApi(BaseHTTPRequestHandler):
    """An API from before combined batches: it refuses ``logs`` and ``previous_states``."""

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.received.append((self.path, body))  # type: ignore[attr-defined]
        unknown = "logs" if "logs" in body and self.path.endswith("/batch") else None
        for index, entry in enumerate(body.get("task_runs", [])):
            if "previous_states" in entry:
                unknown = f"task_runs.{index}.previous_states"
        if unknown:
            status, answer = (
                422,
                {
                    "detail": f"{unknown}: is not a known field",
                    "errors": [{"field": unknown, "message": "is not a known field"}],
                },
            )
        else:
            status, answer = 200, {}
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def older_api() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _OlderApi)
    server.received = []  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def _task_events(flow_run_id: uuid.UUID) -> list[rep.Event]:
    task = uuid.uuid4()
    created = rep.TaskRunCreated(
        task, flow_run_id, "double", "double-0", "m.double", "0", frozenset(), (), at(0)
    )
    states: list[rep.Event] = [
        rep.StateChanged(
            "task", task, flow_run_id, rep.StateSnapshot(kind, kind.value.title(), None, at(i)), 1
        )
        for i, kind in enumerate((StateType.PENDING, StateType.RUNNING, StateType.COMPLETED))
    ]
    line = rep.LogEmitted(flow_run_id, task, 20, "flowyard.task_runs", "done", at(3))
    return [created, *states, line]


def test_an_older_server_gets_task_runs_and_lines_the_older_way(
    older_api: ThreadingHTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    host, port = older_api.server_address[:2]
    client = WireClient(f"http://{host!s}:{port}/api", "fy_x", attempts=0)
    reporter = ServerReporter(client, interval=0.01)
    run = uuid.uuid4()
    try:
        for event in _task_events(run):
            reporter.emit(event)
        reporter.flush(timeout=30)
        for event in _task_events(run):
            reporter.emit(event)
        reporter.flush(timeout=30)
    finally:
        reporter.close()
        client.close()
    received: list[tuple[str, dict[str, Any]]] = older_api.received  # type: ignore[attr-defined]
    paths = [path for path, _ in received]
    # Refused once, then the older form from the start.
    assert paths == ["/api/task-runs/batch"] + ["/api/task-runs/batch", "/api/logs"] * 2
    for _, body in received[1::2][:2]:
        assert [e["state_type"] for e in body["task_runs"]] == ["PENDING", "RUNNING", "COMPLETED"]
    assert [body["logs"][0]["message"] for _, body in received[2::2]] == ["done", "done"]
    assert "could not record" not in caplog.text
