"""What the run recorder sends: coalesced task-run states with their log lines, and the
older form for a server that predates it."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import ThreadingHTTPServer
from typing import Any

import pytest

from flowyard.client._batches import ReportBatch, state_text, task_run_head
from flowyard.client._wire import WireClient
from flowyard.client.sdk_integration import ServerReporter
from flowyard.sdk import _reporting as rep
from flowyard.sdk._states import StateType
from tests.unit.client.fakes import JsonHandler, serving

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
TASK = uuid.uuid4()
FIXED = {"id": str(TASK), "flow_run_id": str(uuid.uuid4()), "name": "double-0"}
HEAD = task_run_head(FIXED["id"], FIXED["flow_run_id"], "double-0", "", "", ())


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_a_task_runs_states_in_one_batch_travel_as_one_entry() -> None:
    batch = ReportBatch()
    batch.add_state(TASK.int, HEAD, state_text(StateType.PENDING, "Pending", None, at(0)), 0, None)
    batch.add_state(
        TASK.int, HEAD, state_text(StateType.RUNNING, "Retrying", "again", at(1)), 1, "k1"
    )
    batch.add_state(
        TASK.int, HEAD, state_text(StateType.COMPLETED, "Completed", "", at(2)), 1, None
    )
    batch.add_log(json.dumps({"flow_run_id": FIXED["flow_run_id"], "message": "hi"}))
    assert (batch.states, len(batch)) == (3, 4)
    assert json.loads(batch.body()) == {
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
    assert (len(batch), json.loads(batch.body())) == (0, {})


def test_the_older_form_has_one_entry_per_state_and_the_lines_apart() -> None:
    batch = ReportBatch()
    batch.add_state(TASK.int, HEAD, state_text(StateType.RUNNING, "Running", None, at(1)), 1, None)
    batch.add_state(TASK.int, HEAD, state_text(StateType.FAILED, "Failed", "boom", at(2)), 1, "k")
    batch.add_log(json.dumps({"message": "hi"}))
    task_runs, logs = batch.separate_bodies()
    assert [json.loads(entry) for entry in task_runs] == [
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
    assert [json.loads(line) for line in logs] == [{"message": "hi"}]


class _OlderApi(JsonHandler):
    """An API from before combined batches: it refuses ``logs``, ``previous_states`` and
    ``flow_run_state``."""

    refused: tuple[str, ...] = ("logs", "previous_states", "flow_run_state")

    def do_POST(self) -> None:
        body = self.body()
        unknown = []
        if self.path.endswith("/batch"):
            unknown = [name for name in ("logs", "flow_run_state") if name in body]
        for index, entry in enumerate(body.get("task_runs", [])):
            if "previous_states" in entry:
                unknown.append(f"task_runs.{index}.previous_states")
        unknown = [name for name in unknown if name.rpartition(".")[2] in self.refused]
        if unknown:
            status, answer = (
                422,
                {
                    "detail": f"{unknown[0]}: is not a known field",
                    "errors": [{"field": f, "message": "is not a known field"} for f in unknown],
                },
            )
        elif self.path.endswith("/state"):
            status, answer = 200, {"status": "ACCEPT"}
        else:
            status, answer = 200, {}
        self.answer(status, answer)


@pytest.fixture
def older_api() -> Iterator[ThreadingHTTPServer]:
    with serving(_OlderApi) as server:
        yield server


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


class _Api(JsonHandler):
    """Accepts everything; a created flow run answers with its state."""

    def do_POST(self) -> None:
        body = self.body()
        answer: dict[str, Any] = {}
        if self.path.endswith("/state"):
            answer = {"status": "ACCEPT"}
        elif "flow_run_state" in body:
            answer = {"flow_run_state": {"status": "ACCEPT"}}
        elif self.path.endswith("/flow-runs"):
            answer = {"id": body["id"], "state_type": body["state"]["type"], "deployment_id": "x"}
        self.answer(200, answer)


@pytest.fixture
def api() -> Iterator[ThreadingHTTPServer]:
    with serving(_Api) as server:
        yield server


def _last_state(received: list[tuple[str, dict[str, Any]]]) -> str:
    """The flow-run state the last request carried: it ends the last batch, or goes alone
    (when nothing was left to send before it)."""
    path, body = received[-1]
    state: str = (body if path.endswith("/state") else body["flow_run_state"])["type"]
    return state


def _flow_state(run: uuid.UUID, kind: StateType, seconds: float) -> rep.StateChanged:
    return rep.StateChanged(
        "flow", run, run, rep.StateSnapshot(kind, kind.value.title(), None, at(seconds)), 1
    )


def test_a_flows_last_line_travels_with_its_last_task_runs_before_its_final_state(
    api: ThreadingHTTPServer,
) -> None:
    host, port = api.server_address[:2]
    client = WireClient(f"http://{host!s}:{port}/api", "fy_x", attempts=0)
    reporter = ServerReporter(client, interval=0.01)
    run = uuid.uuid4()
    started = rep.FlowRunStarted(
        run, "brave-fox", "etl", None, {}, None, None, frozenset(), None, at(0)
    )
    finished = rep.LogEmitted(run, None, 20, "flowyard.flow_runs", "Finished", at(9))
    try:
        with reporter._cond:  # one chunk, as when the flow outruns the recorder
            reporter._start()
            for event in [
                started,
                _flow_state(run, StateType.RUNNING, 0),
                *_task_events(run),
                _flow_state(run, StateType.COMPLETED, 8),
                finished,
            ]:
                reporter.emit(event)
        reporter.flush(timeout=30)
    finally:
        reporter.close()
        client.close()
    received: list[tuple[str, dict[str, Any]]] = api.received  # type: ignore[attr-defined]
    # The final state ends the last batch: no request of its own.
    assert [path for path, _ in received] == ["/api/flow-runs", "/api/task-runs/batch"]
    assert received[0][1]["state"]["type"] == "RUNNING"
    last_batch = received[1][1]
    assert [e["state_type"] for e in last_batch["task_runs"]] == ["COMPLETED"]
    assert [line["message"] for line in last_batch["logs"]] == ["done", "Finished"]
    assert last_batch["flow_run_state"] == {
        "flow_run_id": str(run),
        "type": "COMPLETED",
        "name": "Completed",
        "message": "",
        "timestamp": at(8).isoformat(),
    }
    assert reporter._flow_states[run] is StateType.COMPLETED


class _SlowApi(_Api):
    """Takes its time storing each batch, as a busy server does."""

    def do_POST(self) -> None:
        if self.path.endswith("/batch"):
            time.sleep(0.05)
        super().do_POST()


def test_events_emitted_while_a_batch_is_stored_go_out_next_in_order() -> None:
    with serving(_SlowApi) as server:
        host, port = server.server_address[:2]
        client = WireClient(f"http://{host!s}:{port}/api", "fy_x", attempts=0)
        reporter = ServerReporter(client, interval=0.01)
        run = uuid.uuid4()
        started = rep.FlowRunStarted(
            run, "calm-owl", "etl", None, {}, None, None, frozenset(), None, at(0)
        )
        try:
            reporter.emit(started)
            reporter.emit(_flow_state(run, StateType.RUNNING, 0))
            messages = []
            for wave in range(6):  # emitted while earlier batches are being stored
                for i in range(50):
                    *task_events, _done = _task_events(run)
                    for event in task_events:
                        reporter.emit(event)
                    message = f"line {wave}.{i}"
                    messages.append(message)
                    reporter.emit(rep.LogEmitted(run, None, 20, "etl", message, at(wave)))
                time.sleep(0.02)
            reporter.emit(_flow_state(run, StateType.COMPLETED, 8))
            reporter.emit(rep.LogEmitted(run, None, 20, "flowyard", "Finished", at(9)))
            reporter.flush(timeout=30)
            assert not reporter._queue
        finally:
            reporter.close()
            client.close()
    received: list[tuple[str, dict[str, Any]]] = server.received  # type: ignore[attr-defined]
    batches = [body for path, body in received if path.endswith("/batch")]
    assert len(batches) > 2
    sent_lines = [line["message"] for body in batches for line in body.get("logs", [])]
    assert sent_lines == [*messages, "Finished"]
    states = [e["state_type"] for body in batches for e in body.get("task_runs", [])]
    assert states.count("COMPLETED") == 300
    assert _last_state(received) == "COMPLETED"


def test_work_given_to_a_request_runs_once_before_its_answer_is_read(
    api: ThreadingHTTPServer,
) -> None:
    host, port = api.server_address[:2]
    client = WireClient(f"http://{host!s}:{port}/api", "fy_x", attempts=0)
    done: list[int] = []

    def work() -> None:
        # The request is out: the server has it (or soon will) before the answer is read.
        done.append(len(api.received))  # type: ignore[attr-defined]

    def broken() -> None:
        raise RuntimeError("the work failed")

    try:
        assert client.post("/flow-runs/x/state", {"type": "RUNNING"}, meanwhile=work) == {
            "status": "ACCEPT"
        }
        assert len(done) == 1
        with pytest.raises(RuntimeError, match="the work failed"):
            client.post("/flow-runs/x/state", {"type": "RUNNING"}, meanwhile=broken)
        # The connection whose answer was never read is not reused.
        assert client.post("/flow-runs/x/state", {"type": "COMPLETED"}) == {"status": "ACCEPT"}
    finally:
        client.close()
    received: list[tuple[str, dict[str, Any]]] = api.received  # type: ignore[attr-defined]
    types = [body["type"] for _, body in received]
    # Each request reached the server once. The second and third went on different
    # connections, so the server's threads may record them in either order.
    assert types[0] == "RUNNING"
    assert sorted(types[1:]) == ["COMPLETED", "RUNNING"]


def test_events_emitted_from_many_threads_are_all_sent_each_threads_in_order(
    api: ThreadingHTTPServer,
) -> None:
    host, port = api.server_address[:2]
    client = WireClient(f"http://{host!s}:{port}/api", "fy_x", attempts=0)
    reporter = ServerReporter(client, interval=0.005)
    run = uuid.uuid4()
    reporter._flow_states[run] = StateType.RUNNING  # the run exists on the server
    unsent: list[str] = []

    def sent() -> set[str]:
        received = list(api.received)  # type: ignore[attr-defined]
        return {line["message"] for _, body in received for line in body.get("logs", [])}

    def emit(thread: int) -> None:
        for i in range(300):
            reporter.emit(rep.LogEmitted(run, None, 20, "etl", f"{thread}.{i}", at(i)))
            if i % 100 == 99:
                reporter.flush(timeout=30)  # returns once this thread's lines are sent
                if f"{thread}.{i}" not in sent():
                    unsent.append(f"{thread}.{i}")

    threads = [threading.Thread(target=emit, args=(t,)) for t in range(6)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        reporter.flush(timeout=30)
    finally:
        reporter.close()
        client.close()
    assert unsent == []
    received: list[tuple[str, dict[str, Any]]] = api.received  # type: ignore[attr-defined]
    lines = [line["message"] for _, body in received for line in body.get("logs", [])]
    assert len(lines) == 6 * 300
    for thread in range(6):
        own = [int(m.split(".")[1]) for m in lines if m.startswith(f"{thread}.")]
        assert own == list(range(300))


def test_a_recorder_whose_server_keeps_up_sends_few_large_batches(
    api: ThreadingHTTPServer,
) -> None:
    host, port = api.server_address[:2]
    client = WireClient(f"http://{host!s}:{port}/api", "fy_x", attempts=0)
    reporter = ServerReporter(client, interval=5.0)  # longer than the test
    run = uuid.uuid4()
    try:
        reporter.emit(
            rep.FlowRunStarted(
                run, "lazy-cat", "etl", None, {}, None, None, frozenset(), None, at(0)
            )
        )
        reporter.emit(_flow_state(run, StateType.RUNNING, 0))
        for _ in range(40):  # task runs trickle in, a few at a time
            for _ in range(5):
                for event in _task_events(run):
                    reporter.emit(event)
            time.sleep(0.005)
        reporter.emit(_flow_state(run, StateType.COMPLETED, 8))
        reporter.flush(timeout=30)  # the final state goes out at once, not after the interval
    finally:
        reporter.close()
        client.close()
    received: list[tuple[str, dict[str, Any]]] = api.received  # type: ignore[attr-defined]
    batches = [body for path, body in received if path.endswith("/batch")]
    states = [e["state_type"] for body in batches for e in body.get("task_runs", [])]
    assert states.count("COMPLETED") == 200
    # 1,000 events make a batch worth sending: not one request per few task runs.
    assert len(batches) <= 3
    assert _last_state(received) == "COMPLETED"


def test_the_run_a_managed_run_was_started_for_is_not_created_again(
    api: ThreadingHTTPServer,
) -> None:
    host, port = api.server_address[:2]
    client = WireClient(f"http://{host!s}:{port}/api", "fyr_x", attempts=0)
    run = uuid.uuid4()
    reporter = ServerReporter(client, interval=0.01, durable=True, existing=run)
    started = rep.FlowRunStarted(
        run, "brave-fox", "etl", None, {}, None, None, frozenset(), uuid.uuid4(), at(0)
    )
    events: list[rep.Event] = [
        started,
        _flow_state(run, StateType.PENDING, 0),  # the server moved it there already
        _flow_state(run, StateType.RUNNING, 1),
        _flow_state(run, StateType.COMPLETED, 2),
    ]
    try:
        for event in events:
            reporter.emit(event)
        reporter.flush(timeout=30)
    finally:
        reporter.close()
        client.close()
    received: list[tuple[str, dict[str, Any]]] = api.received  # type: ignore[attr-defined]
    assert [(path, body["type"]) for path, body in received] == [
        (f"/api/flow-runs/{run}/state", "RUNNING"),
        (f"/api/flow-runs/{run}/state", "COMPLETED"),
    ]
