"""A scripted API for unit tests: an httpx mock transport that records requests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

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
