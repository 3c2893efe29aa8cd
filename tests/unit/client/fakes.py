"""A scripted API for unit tests: an httpx mock transport that records requests, and a base
for small real HTTP servers that answer JSON."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from flowyard.client import FlowyardClient, RetryPolicy

Handler = Callable[[httpx.Request], httpx.Response]

# No waiting between retries in unit tests.
QUICK = RetryPolicy(attempts=3, backoff=0.0, max_backoff=0.0)


@dataclass
class ScriptedApi:
    """Answers each request with the next scripted handler; remembers what it saw."""

    script: list[Handler]
    requests: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if not self.script:
            raise AssertionError(f"unexpected request {request.method} {request.url}")
        return self.script.pop(0)(request)

    def client(self, api_key: str | None = "fy_test", retry: RetryPolicy = QUICK) -> FlowyardClient:
        return FlowyardClient(
            "http://api.test:4280/api",
            api_key,
            transport=httpx.MockTransport(self),
            retry=retry,
        )


def answer(status: int, body: object = None, **kw: object) -> Handler:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=body, **kw)  # type: ignore[arg-type]

    return handle


def refuse(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("[Errno 111] Connection refused", request=request)


def drop(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadError("connection reset by peer", request=request)


class JsonHandler(BaseHTTPRequestHandler):
    """A quiet request handler; subclasses read the body and :meth:`answer`."""

    def body(self) -> Any:
        """The request's JSON body, recorded in ``server.received`` with its path."""
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.received.append((self.path, body))  # type: ignore[attr-defined]
        return body

    def answer(self, status: int, answer: object) -> None:
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[ThreadingHTTPServer]:
    """``handler`` on a local port, on a thread; ``server.received`` collects the bodies."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.received = []  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
