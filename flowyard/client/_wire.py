"""A small JSON-over-HTTP client on the standard library, for the hot paths.

The runner inside a managed run's sandbox and the SDK's run recorder send a
few kinds of request (read a run, set a state, post batches of task runs and
logs). Loading httpx and the pydantic schemas for that costs several hundred
milliseconds of start-up in every run, so these paths speak plain JSON over
``http.client`` instead, on TCP, TLS or the API's unix socket, with the same
retry rules as the full client: connection failures, 429 and 5xx answers are
retried with backoff; other errors are raised at once with the API's detail.

On TCP the client acknowledges the answer's packets at once (``TCP_QUICKACK``,
Linux). A server that writes an answer's head and body separately without
``TCP_NODELAY`` holds the body until the head is acknowledged, and Linux
delays that acknowledgement by 40 ms on a kept-alive connection: every request
would wait 40 ms for nothing. The option is one system call per request.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import random
import socket
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlsplit

from flowyard.client._config import ClientConfig, parse_api_url, resolve_config
from flowyard.client._errors import NotConfigured, ServerUnavailable, error_from_body

__all__ = ["WireClient"]

RETRY_STATUSES = frozenset({429, 502, 503, 504})
# Linux only; elsewhere the delayed acknowledgement stays as the system has it.
_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class WireClient:
    """JSON requests to the API over one kept-alive connection per thread."""

    def __init__(
        self,
        api_url: str,
        api_key: str | None,
        *,
        uds: str | None = None,
        timeout: float = 30.0,
        attempts: int = 5,
        backoff: float = 0.2,
    ) -> None:
        endpoint = parse_api_url(api_url, uds)
        parts = urlsplit(endpoint.base_url)
        self.label = endpoint.display
        self._uds = endpoint.uds
        self._scheme = parts.scheme
        self._host = parts.hostname or "localhost"
        self._port = parts.port
        self._prefix = parts.path.rstrip("/")
        self._timeout = timeout
        self._attempts = attempts
        self._backoff = backoff
        self._headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._local = threading.local()
        self._open: set[http.client.HTTPConnection] = set()
        self._open_lock = threading.Lock()

    @classmethod
    def from_config(cls, config: ClientConfig | None = None, **options: Any) -> WireClient:
        config = config or resolve_config()
        if config is None:
            raise NotConfigured("no Flowyard server is configured (FLOWYARD_API_URL)")
        return cls(config.api_url, config.api_key, uds=config.uds, **options)

    def _connection(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            if self._uds:
                conn = _UnixConnection(self._uds, self._timeout)
            elif self._scheme == "https":
                conn = http.client.HTTPSConnection(self._host, self._port, timeout=self._timeout)
            else:
                conn = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
            self._local.conn = conn
            with self._open_lock:
                self._open.add(conn)
        return conn

    def _drop_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            with self._open_lock:
                self._open.discard(conn)
            conn.close()

    def close(self) -> None:
        """Close every thread's connection (a later request opens a new one)."""
        with self._open_lock:
            conns, self._open = self._open, set()
        for conn in conns:
            conn.close()

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def post(self, path: str, body: Any, *, meanwhile: Callable[[], None] | None = None) -> Any:
        return self.request("POST", path, body, meanwhile=meanwhile)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        meanwhile: Callable[[], None] | None = None,
    ) -> Any:
        """Send one request; returns the decoded JSON answer (None when empty).

        ``body`` is a JSON-able value, or ``bytes`` of JSON text sent as they are.

        ``meanwhile`` is called once, after the request is sent and before its
        answer is read: work that overlaps the server's.
        """
        if body is None or isinstance(body, bytes):
            payload = body  # bytes: JSON already written (the recorder writes its own)
        else:
            payload = json.dumps(body, default=str, separators=(",", ":")).encode()
        target = self._prefix + quote(path, safe="/?=&%:-_.~")
        failure = ""
        for attempt in range(self._attempts + 1):
            if attempt:
                delay = min(self._backoff * 2 ** (attempt - 1), 4.0)
                time.sleep(delay * random.uniform(0.5, 1.0))
            try:
                conn = self._connection()
                conn.request(method, target, body=payload, headers=self._headers)
                _ack_at_once(conn)
            except (OSError, http.client.HTTPException) as exc:
                self._drop_connection()
                failure = _describe(exc)
                continue
            if meanwhile is not None:
                work, meanwhile = meanwhile, None
                try:
                    work()
                except BaseException:
                    self._drop_connection()  # its answer will not be read
                    raise
            try:
                response = conn.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException) as exc:
                self._drop_connection()
                failure = _describe(exc)
                continue
            if response.status in RETRY_STATUSES:
                failure = f"HTTP {response.status}"
                continue
            if response.status >= 400:
                raise error_from_body(
                    response.status,
                    response.reason,
                    data,
                    method=method,
                    url=target,
                    has_key="Authorization" in self._headers,
                )
            return json.loads(data) if data else None
        raise ServerUnavailable(self.label, failure)


def _ack_at_once(conn: http.client.HTTPConnection) -> None:
    """Acknowledge the answer's packets as they come (set after sending: sending re-arms the delay)."""
    sock = conn.sock
    if _QUICKACK is None or sock is None or sock.family == socket.AF_UNIX:
        return
    with contextlib.suppress(OSError):  # not a TCP socket after all: nothing to speed up
        sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "no answer in time"
    if isinstance(exc, FileNotFoundError):
        return "no socket at that path"
    return str(exc) or type(exc).__name__
