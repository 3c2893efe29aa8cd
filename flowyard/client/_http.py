"""One place that sends requests: base URL, auth, retries, and error translation.

Retries are deliberately narrow. A request is retried only when repeating it
cannot do something twice:

* the connection could not be made (refused, connect timeout, no free pooled
  connection): nothing reached the server, so any method may be retried;
* the connection broke or timed out after sending, or the server answered
  503 (its database was unavailable and the transaction rolled back): only
  idempotent requests (GET, PUT, DELETE, and the few POSTs marked so, such as
  upserts by id) are retried.

Anything else is answered at once: a 4xx will not get better by repeating it.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import random
import re
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, datetime
from enum import Enum
from urllib.parse import quote

import httpx

from flowyard._version import __version__
from flowyard.client._config import parse_api_url
from flowyard.client._errors import ServerUnavailable, error_from_response

logger = logging.getLogger("flowyard.client")

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
DEFAULT_TIMEOUT = 30.0
# Refused connections answer at once; an unroutable host should not hang a CLI.
CONNECT_TIMEOUT = 5.0

# A tuple, not a list: tuples are covariant, so httpx's parameter types accept it.
Query = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to repeat a request that may safely be repeated."""

    attempts: int = 3
    """Retries after the first try (0 disables retrying)."""
    backoff: float = 0.25
    """Delay before the first retry, in seconds; doubles each time, with jitter."""
    max_backoff: float = 4.0

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (0-based)."""
        if retry_after is not None:
            return min(retry_after, self.max_backoff)
        base = min(self.backoff * 2.0**retry, self.max_backoff)
        return base * random.uniform(0.5, 1.0)  # jitter spreads retries of many clients


def segment(value: object) -> str:
    """A value as one URL path segment (``/`` and the like escaped).

    ``.`` and ``..`` are escaped too: left alone, URL normalisation would make
    ``read_work_pool("..")`` a request for the pool listing.
    """
    text = quote(str(value), safe="")
    return text.replace(".", "%2E") if text in (".", "..") else text


def query(**values: object) -> Query:
    """Query parameters: ``None`` left out, sequences repeated, enums and times as text."""
    out: list[tuple[str, str]] = []
    for name, value in values.items():
        items = value if isinstance(value, list | tuple | set | frozenset) else [value]
        out.extend((name, _text(item)) for item in items if item is not None)
    return tuple(out)


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, uuid.UUID | str | int | float):
        return str(value)
    raise TypeError(f"cannot send {type(value).__name__} as a query parameter")


class HttpCore:
    """An ``httpx.AsyncClient`` for one API, with retries and error translation."""

    def __init__(
        self,
        api_url: str,
        api_key: str | None,
        *,
        uds: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        endpoint = parse_api_url(api_url, uds)
        self.url = endpoint.display
        self.has_key = bool(api_key)
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        all_headers = {"User-Agent": f"flowyard-client/{__version__}", **(headers or {})}
        if api_key:
            all_headers["Authorization"] = f"Bearer {api_key}"
        self.client = httpx.AsyncClient(
            base_url=endpoint.base_url,
            transport=transport or httpx.AsyncHTTPTransport(uds=endpoint.uds),
            timeout=httpx.Timeout(timeout, connect=min(timeout, CONNECT_TIMEOUT)),
            headers=all_headers,
        )

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Query | None = None,
        json: object = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
    ) -> httpx.Response:
        """Send, retrying what may be retried; an error status raises :class:`ApiError`."""
        if idempotent is None:
            idempotent = method in IDEMPOTENT_METHODS
        retry = 0
        while True:
            try:
                response = await self.client.request(
                    method, path, params=params, json=json, content=content, headers=headers
                )
            except httpx.TransportError as exc:
                if retry < self.retry.attempts and (idempotent or never_sent(exc)):
                    await self._pause(method, path, retry, reason(exc, self.timeout))
                    retry += 1
                    continue
                raise self.unavailable(exc) from exc
            if response.status_code == 503 and idempotent and retry < self.retry.attempts:
                await self._pause(method, path, retry, "503", _retry_after(response))
                retry += 1
                continue
            if response.is_error:
                raise error_from_response(response, has_key=self.has_key)
            return response

    @asynccontextmanager
    async def stream(
        self,
        path: str,
        *,
        params: Query | None = None,
        headers: Mapping[str, str] | None = None,
        read_timeout: float | None = None,
    ) -> AsyncIterator[httpx.Response]:
        """A streamed GET. Transport errors propagate (the caller decides to reconnect)."""
        timeout = httpx.Timeout(self.timeout, connect=CONNECT_TIMEOUT, read=read_timeout)
        async with self.client.stream(
            "GET", path, params=params, headers=headers, timeout=timeout
        ) as response:
            if response.is_error:
                await response.aread()
                raise error_from_response(response, has_key=self.has_key)
            yield response

    def unavailable(self, exc: httpx.TransportError) -> ServerUnavailable:
        """The error that says the server cannot be reached, and how to start one."""
        return ServerUnavailable(self.url, reason(exc, self.timeout))

    async def aclose(self) -> None:
        await self.client.aclose()

    async def _pause(
        self, method: str, path: str, retry: int, why: str, retry_after: float | None = None
    ) -> None:
        delay = self.retry.delay(retry, retry_after)
        logger.debug("%s %s: %s; retry %d in %.2f s", method, path, why, retry + 1, delay)
        await asyncio.sleep(delay)


def never_sent(exc: httpx.TransportError) -> bool:
    """Whether the request certainly did not reach the server."""
    return isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)


def reason(exc: httpx.TransportError, timeout: float) -> str:
    """A short lower-case reason for an error message: 'connection refused'."""
    if isinstance(exc, httpx.ConnectTimeout):
        return f"no connection within {min(timeout, CONNECT_TIMEOUT):g} s"
    if isinstance(exc, httpx.TimeoutException):
        return f"no answer within {timeout:g} s"
    os_error = _os_error(exc)
    if os_error is not None and os_error.errno in _ERRNO_REASONS:
        return _ERRNO_REASONS[os_error.errno]
    text = re.sub(r"^\[Errno -?\d+\]\s*", "", str(exc)).strip()
    if not text:
        return type(exc).__name__
    return text[0].lower() + text[1:]


_ERRNO_REASONS = {
    errno.ECONNREFUSED: "connection refused",
    errno.ECONNRESET: "connection reset",
    errno.ENOENT: "no such socket file",
    errno.EACCES: "permission denied",
    errno.EHOSTUNREACH: "host unreachable",
    errno.ENETUNREACH: "network unreachable",
}


def _os_error(exc: BaseException) -> OSError | None:
    # httpx wraps the socket error (sometimes twice, with anyio's "all
    # connection attempts failed" in between); the errno is at the bottom.
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno is not None:
            return current
        current = current.__cause__ or current.__context__
    return None


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
