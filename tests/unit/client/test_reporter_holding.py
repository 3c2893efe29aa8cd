"""The run recorder when the API goes away: a managed run holds its events, a script does not."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from datetime import UTC, datetime
from http.server import ThreadingHTTPServer

import pytest

from flowyard.client._wire import WireClient
from flowyard.client.sdk_integration import ServerReporter
from flowyard.sdk import _reporting as rep
from flowyard.sdk._states import StateType
from tests.unit.client.fakes import JsonHandler


class _Api(JsonHandler):
    def do_POST(self) -> None:
        body = self.body()
        answer: dict[str, object] = {}
        if self.path.endswith("/state"):
            answer = {"status": "ACCEPT"}
        elif "flow_run_state" in body:
            answer = {"flow_run_state": {"status": "ACCEPT"}}
        self.answer(200, answer)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def port() -> int:
    return _free_port()


def _serve_later(port: int, delay: float, started: list[ThreadingHTTPServer]) -> None:
    """Start answering on ``port`` after ``delay`` seconds: a server coming back."""
    time.sleep(delay)
    server = ThreadingHTTPServer(("127.0.0.1", port), _Api)
    server.received = []  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    started.append(server)


def _log(run_id: uuid.UUID, message: str) -> rep.LogEmitted:
    return rep.LogEmitted(run_id, None, 20, "flow", message, datetime.now(UTC))


def test_a_managed_run_holds_its_events_until_the_api_answers_again(port: int) -> None:
    client = WireClient(f"http://127.0.0.1:{port}/api", "fyr_x", attempts=0)
    reporter = ServerReporter(client, durable=True, interval=0.01)
    run_id = uuid.uuid4()
    reporter.emit(_log(run_id, "written while the server restarts"))
    started: list[ThreadingHTTPServer] = []
    later = threading.Thread(target=_serve_later, args=(port, 1.5, started))
    later.start()
    try:
        reporter.emit(
            rep.StateChanged(
                "flow",
                run_id,
                run_id,
                rep.StateSnapshot(StateType.COMPLETED, "Completed", None, datetime.now(UTC)),
                1,
            )
        )
        reporter.flush(timeout=30)
        later.join()
        received = started[0].received  # type: ignore[attr-defined]
        assert [path for path, _ in received] == ["/api/task-runs/batch"]
        assert received[0][1]["logs"][0]["message"] == "written while the server restarts"
        assert received[0][1]["flow_run_state"]["type"] == "COMPLETED"
    finally:
        reporter.close()
        client.close()
        for server in started:
            server.shutdown()
            server.server_close()


def test_a_script_stops_recording_instead_of_waiting_on_a_dead_server(port: int) -> None:
    client = WireClient(f"http://127.0.0.1:{port}/api", "fy_x", attempts=0)
    reporter = ServerReporter(client, interval=0.01)
    try:
        begin = time.monotonic()
        reporter.emit(_log(uuid.uuid4(), "nobody is listening"))
        reporter.flush(timeout=30)
        reporter.emit(_log(uuid.uuid4(), "still nobody"))
        reporter.flush(timeout=30)
        assert time.monotonic() - begin < 5
    finally:
        reporter.close()
        client.close()
