"""A small JSON-over-HTTP client on the standard library, for the hot paths.

The runner inside a managed run's sandbox and the SDK's run recorder send a
few kinds of request (read a run, set a state, post batches of task runs and
logs). Loading httpx and the pydantic schemas for that costs several hundred
milliseconds of start-up in every run, so these paths speak plain JSON over
the standard library instead, on TCP, TLS or the API's unix socket, with the same
retry rules as the full client: connection failures, 429 and 5xx answers are
retried with backoff; other errors are raised at once with the API's detail.

It speaks HTTP/1.1 itself (:class:`_Connection`, a request written in one
send, an answer read by its length or its chunks) rather than through
``http.client``: that module loads the ``email`` package and ``ssl``, about a
sixth of a managed run's start-up CPU, for headers this client never needs.
``ssl`` is loaded only for an ``https`` API.

On TCP the client acknowledges the answer's packets at once (``TCP_QUICKACK``,
Linux). A server that writes an answer's head and body separately without
``TCP_NODELAY`` holds the body until the head is acknowledged, and Linux
delays that acknowledgement by 40 ms on a kept-alive connection: every request
would wait 40 ms for nothing. The option is one system call per request.
"""

from __future__ import annotations

import contextlib
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


class BadAnswer(Exception):
    """The server's answer is not HTTP/1.1 this client can read."""


class _Answer:
    __slots__ = ("body", "keep_alive", "reason", "status")

    def __init__(self, status: int, reason: str, body: bytes, keep_alive: bool) -> None:
        self.status, self.reason, self.body, self.keep_alive = status, reason, body, keep_alive


class _Connection:
    """One kept-alive HTTP/1.1 connection (TCP, TLS or a unix socket), opened on first use."""

    def __init__(
        self, *, host: str, port: int | None, uds: str | None, tls: bool, timeout: float
    ) -> None:
        self._host, self._uds, self._tls, self._timeout = host, uds, tls, timeout
        self._port = port or (443 if tls else 80)
        named = f"[{host}]" if ":" in host else host  # an IPv6 address goes in brackets
        self._host_header = named if port is None else f"{named}:{port}"
        self.sock: socket.socket | None = None
        self._reader: Any = None

    def _connect(self) -> None:
        if self._uds:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self._timeout)
            try:
                sock.connect(self._uds)
            except OSError:
                sock.close()
                raise
        else:
            sock = socket.create_connection((self._host, self._port), timeout=self._timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._tls:
                import ssl

                try:
                    sock = ssl.create_default_context().wrap_socket(
                        sock, server_hostname=self._host
                    )
                except OSError:
                    sock.close()
                    raise
        self.sock = sock
        self._reader = sock.makefile("rb")

    def request(
        self, method: str, target: str, body: bytes | None, headers: dict[str, str]
    ) -> None:
        if self.sock is None:
            self._connect()
        assert self.sock is not None
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self._host_header}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        lines.append(f"Content-Length: {len(body) if body else 0}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.sock.sendall(head + body if body else head)

    def answer(self) -> _Answer:
        reader = self._reader
        status_line = reader.readline(65537)
        if not status_line:
            raise BadAnswer("the server closed the connection without answering")
        version, _, rest = status_line.decode("latin-1").rstrip("\r\n").partition(" ")
        code, _, reason = rest.partition(" ")
        if not version.startswith("HTTP/1.") or not code.isdigit():
            raise BadAnswer(f"not an HTTP/1.1 answer: {status_line[:80]!r}")
        headers: dict[str, str] = {}
        while True:
            line = reader.readline(65537)
            if line in (b"\r\n", b"\n"):
                break
            if not line:
                raise BadAnswer("the answer's headers end early")
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        keep_alive = headers.get("connection", "").lower() != "close" and version == "HTTP/1.1"
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = self._chunks()
        elif "content-length" in headers:
            body = self._exactly(int(headers["content-length"]))
        elif int(code) in (204, 304) or 100 <= int(code) < 200:
            body = b""
        else:  # no length: the body runs to the end of the connection
            body, keep_alive = reader.read(), False
        return _Answer(int(code), reason, body, keep_alive)

    def _exactly(self, size: int) -> bytes:
        data = self._reader.read(size)
        if len(data) != size:
            raise BadAnswer(f"the answer ends after {len(data)} of {size} bytes")
        return bytes(data)

    def _chunks(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size_line = self._reader.readline(65537)
            try:
                size = int(size_line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise BadAnswer(f"bad chunk size {size_line[:40]!r}") from None
            if size == 0:
                while self._reader.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(parts)
            parts.append(self._exactly(size))
            self._exactly(2)  # the chunk's CRLF

    def close(self) -> None:
        if self._reader is not None:
            with contextlib.suppress(OSError):
                self._reader.close()
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.close()
        self.sock, self._reader = None, None


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
        self._open: set[_Connection] = set()
        self._open_lock = threading.Lock()

    @classmethod
    def from_config(cls, config: ClientConfig | None = None, **options: Any) -> WireClient:
        config = config or resolve_config()
        if config is None:
            raise NotConfigured("no Flowyard server is configured (FLOWYARD_API_URL)")
        return cls(config.api_url, config.api_key, uds=config.uds, **options)

    def _connection(self) -> _Connection:
        conn: _Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = _Connection(
                host=self._host,
                port=self._port,
                uds=self._uds,
                tls=self._scheme == "https",
                timeout=self._timeout,
            )
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
                conn.request(method, target, payload, self._headers)
                _ack_at_once(conn)
            except (OSError, BadAnswer) as exc:
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
                response = conn.answer()
            except (OSError, BadAnswer, ValueError) as exc:
                self._drop_connection()
                failure = _describe(exc)
                continue
            if not response.keep_alive:
                self._drop_connection()
            data = response.body
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


def _ack_at_once(conn: _Connection) -> None:
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
