"""The wire client's own HTTP/1.1 against a server that answers exactly what each test scripts."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from flowyard.client._errors import NotFoundError, ServerUnavailable
from flowyard.client._wire import WireClient

Answer = Callable[[bytes], bytes | None]  # the request's bytes -> what to send (None: hang up)


def _json(status: str, body: object, *extra: str) -> bytes:
    data = json.dumps(body).encode()
    head = [f"HTTP/1.1 {status}", "Content-Type: application/json", f"Content-Length: {len(data)}"]
    return ("\r\n".join([*head, *extra]) + "\r\n\r\n").encode() + data


class ScriptedServer:
    """A unix-socket server: each request gets the next scripted answer, in order."""

    def __init__(self, path: Path, answers: list[Answer]) -> None:
        self.path = path
        self.answers = answers
        self.requests: list[bytes] = []
        self.connections = 0
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(str(path))
        self._sock.listen()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while self.answers:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                while self.answers:
                    request = _read_request(conn)
                    if request is None:
                        break
                    self.requests.append(request)
                    answer = self.answers.pop(0)(request)
                    if answer is None:
                        break  # hang up without answering
                    conn.sendall(answer)
                    if b"Connection: close" in answer or b"HTTP/1.0" in answer[:9]:
                        break

    def close(self) -> None:
        self._sock.close()


def _read_request(conn: socket.socket) -> bytes | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        ),
        0,
    )
    while len(body) < length:
        body += conn.recv(65536)
    return head + b"\r\n\r\n" + body


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[[list[Answer]], tuple[ScriptedServer, WireClient]]]:
    made: list[tuple[ScriptedServer, WireClient]] = []

    def start(answers: list[Answer]) -> tuple[ScriptedServer, WireClient]:
        server = ScriptedServer(tmp_path / f"api-{len(made)}.sock", answers)
        client = WireClient("http://localhost/api", "fy_key", uds=str(server.path), backoff=0.0)
        made.append((server, client))
        return server, client

    yield start
    for server, client in made:
        client.close()
        server.close()


def test_answers_by_length_on_one_kept_alive_connection(
    serve: Callable[..., tuple[ScriptedServer, WireClient]],
) -> None:
    server, client = serve(
        [lambda _: _json("200 OK", {"n": 1}), lambda _: _json("200 OK", {"n": 2})]
    )

    assert client.get("/flow-runs/x") == {"n": 1}
    assert client.post("/flow-runs/x/state", {"type": "RUNNING"}) == {"n": 2}

    assert server.connections == 1
    first, second = server.requests
    assert first.startswith(b"GET /api/flow-runs/x HTTP/1.1\r\n")
    assert b"Authorization: Bearer fy_key\r\n" in first
    assert second.endswith(b'{"type":"RUNNING"}')
    assert b"Content-Length: 18\r\n" in second


def test_a_chunked_answer_is_put_together(
    serve: Callable[..., tuple[ScriptedServer, WireClient]],
) -> None:
    body = json.dumps({"items": list(range(50))}).encode()
    chunks = b"".join(
        f"{len(body[i : i + 37]):x}\r\n".encode() + body[i : i + 37] + b"\r\n"
        for i in range(0, len(body), 37)
    )
    answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n"
    _, client = serve([lambda _: answer])

    assert client.get("/flow-runs") == {"items": list(range(50))}


def test_connection_close_and_http_1_0_answers_open_a_new_connection(
    serve: Callable[..., tuple[ScriptedServer, WireClient]],
) -> None:
    server, client = serve(
        [
            lambda _: _json("200 OK", {"n": 1}, "Connection: close"),
            lambda _: b'HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{"n": 2}',
            lambda _: _json("200 OK", {"n": 3}),
        ]
    )

    assert [client.get("/a"), client.get("/b"), client.get("/c")] == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert server.connections == 3


def test_a_connection_the_server_dropped_is_retried_on_a_new_one(
    serve: Callable[..., tuple[ScriptedServer, WireClient]],
) -> None:
    server, client = serve(
        [lambda _: _json("200 OK", {"n": 1}), lambda _: None, lambda _: _json("200 OK", {"n": 2})]
    )

    assert client.get("/a") == {"n": 1}
    assert client.get("/b") == {"n": 2}  # the kept-alive connection was closed meanwhile
    assert server.connections == 2


def test_an_error_answer_raises_with_the_apis_detail(
    serve: Callable[..., tuple[ScriptedServer, WireClient]],
) -> None:
    _, client = serve([lambda _: _json("404 Not Found", {"detail": "flow run x not found"})])

    with pytest.raises(NotFoundError, match="flow run x not found"):
        client.get("/flow-runs/x")


def test_an_answer_that_is_not_http_ends_as_unavailable_after_the_retries(
    serve: Callable[..., tuple[ScriptedServer, WireClient]],
) -> None:
    _, client = serve([lambda _: b"SSH-2.0-OpenSSH_9.2\r\n\r\n"] * 6)

    with pytest.raises(ServerUnavailable, match=r"not an HTTP/1\.1 answer"):
        client.get("/flow-runs/x")


def test_the_host_header_names_an_ipv6_api_in_brackets() -> None:
    from flowyard.client._wire import _Connection

    def host_header(host: str, port: int | None) -> str:
        conn = _Connection(host=host, port=port, uds=None, tls=False, timeout=1)
        return conn._host_header

    assert host_header("::1", 4200) == "[::1]:4200"
    assert host_header("api.example.com", None) == "api.example.com"
    assert host_header("127.0.0.1", 4200) == "127.0.0.1:4200"
