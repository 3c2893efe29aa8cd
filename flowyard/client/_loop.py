"""Running the async client from synchronous code, once, for every method.

A ``SyncClient`` owns a private event loop on a daemon thread and submits
each call to it with ``asyncio.run_coroutine_threadsafe``, then waits for the
answer. Because the loop is its own, the caller may be plain sync code *or*
code on some other running event loop's thread (a sync function called from
an async one, a Jupyter cell): the caller's loop is merely blocked for the
call, never asked to run it, so nothing deadlocks. The one unsupported caller
is the private loop itself, which is refused with a clear error.

Rejected: ``asyncio.run`` per call (fails inside a running loop, and a fresh
loop per call cannot keep pooled connections, which belong to their loop);
``nest_asyncio`` (patches the caller's loop, a new dependency); a sync twin
of each method on ``httpx.Client`` (two implementations to keep equal).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import weakref
from collections.abc import AsyncIterator, Coroutine, Iterator, Mapping
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx

from flowyard.client._client import FlowyardClient
from flowyard.client._config import ClientConfig
from flowyard.client._errors import ClientError
from flowyard.client._http import DEFAULT_TIMEOUT, RetryPolicy

T = TypeVar("T")
_JOIN_TIMEOUT = 10.0
logger = logging.getLogger("flowyard.client")


class LoopThread:
    """An event loop running forever on its own daemon thread, started on first use."""

    def __init__(self, name: str = "flowyard-client") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._lock = threading.Lock()
        self._closed = False

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop and wait for its result (re-raising its error)."""
        with self._lock:
            if self._closed or threading.current_thread() is self._thread:
                coro.close()
                raise ClientError(
                    "this SyncClient is closed"
                    if self._closed
                    else "a SyncClient cannot be called from its own event loop; "
                    "use FlowyardClient with await there"
                )
            if not self._thread.is_alive():
                self._thread.start()
        future: concurrent.futures.Future[T] | None = None
        try:
            future = asyncio.run_coroutine_threadsafe(coro, self.loop)
            return future.result()
        except BaseException:
            # Ctrl-C while waiting: do not leave the request running on the loop.
            if future is not None:
                future.cancel()
            raise

    def iterate(self, items: AsyncIterator[T]) -> Iterator[T]:
        """Pull an async iterator from sync code, one item per round trip to the loop."""
        # The step in flight, as the loop sees it: a Ctrl-C can land before ``run`` holds
        # the step's future, and then only this can still cancel it.
        step: list[asyncio.Task[Any]] = []
        try:
            while True:
                batch = self.run(_next(items, step))
                if not batch:
                    return
                yield batch[0]
        finally:
            # Also reached on Ctrl-C mid-item: closing must not mask that.
            if not self._closed:
                self.run(_aclose(items, step))

    def stop(self) -> None:
        """Stop and close the loop (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            started = self._thread.is_alive()
        if started:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(_JOIN_TIMEOUT)
        if not self._thread.is_alive():
            self.loop.close()


async def _next(items: AsyncIterator[T], step: list[asyncio.Task[Any]]) -> list[T]:
    # StopAsyncIteration must not cross into a concurrent future: "no item" says done.
    task = asyncio.current_task()
    if task is not None:
        step.append(task)
    try:
        return [await items.__anext__()]
    except StopAsyncIteration:
        return []
    finally:
        step.clear()


async def _aclose(items: AsyncIterator[T], step: list[asyncio.Task[Any]]) -> None:
    for task in step:  # abandoned mid-item: stop the item's request first
        task.cancel()
    aclose = getattr(items, "aclose", None)
    if aclose is None:
        return
    # A step cancelled by Ctrl-C may still be unwinding (closing its stream);
    # closing a running generator would raise, so let it finish first.
    for _ in range(500):
        if not getattr(items, "ag_running", False):
            break
        await asyncio.sleep(0.01)
    try:
        await aclose()
    except RuntimeError:
        logger.warning("could not close an abandoned iterator", exc_info=True)


def _shutdown(loop: LoopThread, client: FlowyardClient) -> None:
    # Close the connections on their own loop before stopping it, so no socket
    # is left for the garbage collector to complain about.
    try:
        if loop.loop.is_running():
            loop.run(client.aclose())
    finally:
        loop.stop()


class SyncClientBase:
    """The machinery of ``SyncClient``; its methods are generated into ``_sync.py``."""

    def __init__(
        self,
        api_url: str,
        api_key: str | None = None,
        *,
        uds: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self._client = FlowyardClient(
            api_url,
            api_key,
            uds=uds,
            transport=transport,
            timeout=timeout,
            retry=retry,
            headers=headers,
        )
        self._loop = LoopThread()
        # Closes the loop even when the caller forgets to: at garbage
        # collection or interpreter exit, whichever comes first.
        self._finalizer = weakref.finalize(self, _shutdown, self._loop, self._client)

    @classmethod
    def from_config(
        cls,
        config: ClientConfig,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
    ) -> Self:
        """A client for a resolved :class:`ClientConfig`."""
        return cls(config.api_url, config.api_key, uds=config.uds, timeout=timeout, retry=retry)

    @property
    def api_url(self) -> str:
        """The API this client talks to, as shown in messages."""
        return self._client.api_url

    @property
    def async_client(self) -> FlowyardClient:
        """The async client underneath (usable only on this client's own loop)."""
        return self._client

    def close(self) -> None:
        """Close the connections and stop the private loop."""
        self._finalizer()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SyncClient({self._client.api_url!r})"

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._loop.run(coro)

    def _iterate(self, items: AsyncIterator[T]) -> Iterator[T]:
        return self._loop.iterate(items)
