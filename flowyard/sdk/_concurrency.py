"""Global concurrency limits in flow code: ``concurrency(...)`` and ``rate_limit(...)``.

``with concurrency("warehouse", occupy=2):`` takes two slots of the limit
named ``warehouse`` (and of every other name given: all or none), waits while
they are taken (one log line says which limit is full), and frees them when
the block ends, however it ends. The slots are held under a lease that a
thread of this process renews while the block runs; if the process dies,
the lease runs out and the slots come back by themselves.

``rate_limit("api", occupy=1)`` takes slots and never gives them back: the
limit's ``slot_decay_per_second`` frees them, which spaces the callers out.

Limits live on the server and are reached through a
:class:`ConcurrencyBackend` that the server integration installs. A limit
that does not exist limits nothing (a warning says so once per name);
``strict=True`` raises :class:`ConcurrencySlotAcquisitionError` instead, as
it does when there is no server at all.

A task run whose tags include ``T`` holds a slot of the limit ``tag:T``, if
there is one, while it runs (Prefect's tag-based task concurrency): the
engine asks :func:`tag_slots`, which knows the limits' names from one read
every ``TAG_LIMITS_SECONDS``, so tagged tasks cost no request when no tag
is limited.
"""

from __future__ import annotations

import heapq
import logging
import random
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import (
    AbstractAsyncContextManager,
    AbstractContextManager,
    asynccontextmanager,
    contextmanager,
)
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from flowyard.sdk._backends import (
    configured_api_url,
    ensure_server_integration,
    install_deferred,
)
from flowyard.sdk._errors import ObjectNotFound, SDKError

__all__ = [
    "AcquireConcurrencySlotTimeoutError",
    "ConcurrencyBackend",
    "ConcurrencySlotAcquisitionError",
    "Grant",
    "concurrency",
    "rate_limit",
    "set_concurrency_backend",
]

_logger = logging.getLogger("flowyard.concurrency")

Mode = Literal["concurrency", "rate_limit"]


class ConcurrencySlotAcquisitionError(SDKError):
    """Slots could not be taken: a limit does not exist (strict) or there is no server."""


class AcquireConcurrencySlotTimeoutError(ConcurrencySlotAcquisitionError, TimeoutError):
    """The slots were not free within ``timeout_seconds``."""


@dataclass(frozen=True, slots=True)
class Grant:
    """The answer to a take: the lease if ``acquired``, else how long to wait and why."""

    acquired: bool
    lease_id: uuid.UUID | None = None
    retry_after: float = 1.0
    missing: tuple[str, ...] = ()
    blocked_by: str | None = None


@runtime_checkable
class ConcurrencyBackend(Protocol):
    """Where the limits are kept."""

    def acquire(self, names: list[str], slots: int, mode: Mode, lease_seconds: float) -> Grant:
        """Take ``slots`` of every named limit, or none."""
        ...

    def renew(self, lease_id: uuid.UUID, lease_seconds: float) -> bool:
        """Extend a lease; False if it has run out (its slots are gone)."""
        ...

    def release(self, lease_id: uuid.UUID) -> None:
        """Free a lease's slots."""
        ...

    def limit_names(self) -> frozenset[str]:
        """The names of the active limits (to find the ``tag:`` ones)."""
        ...


_backend: ConcurrencyBackend | None = None
_warned: set[str] = set()
TAG_LIMITS_SECONDS = 10.0
MAX_POLL_SECONDS = 1.0
# (when read, by which backend, the active limits' names)
_known: tuple[float, object, frozenset[str]] = (float("-inf"), None, frozenset())


def set_concurrency_backend(backend: ConcurrencyBackend | None) -> ConcurrencyBackend | None:
    """Install the concurrency backend (None: none). Returns the previous one."""
    global _backend
    previous, _backend = _backend, backend
    return previous


def _current_backend() -> ConcurrencyBackend | None:
    ensure_server_integration()
    if _backend is None:
        install_deferred()
    return _backend


def _warn_once(key: str, message: str, *args: object) -> None:
    if key not in _warned:
        _warned.add(key)
        _logger.warning(message, *args)


def _names(names: str | Iterable[str]) -> list[str]:
    listed = [names] if isinstance(names, str) else list(names)
    if not listed or not all(isinstance(n, str) and n for n in listed):
        raise ValueError("names must be a limit's name or a non-empty list of names")
    return listed


def _no_backend(names: list[str], strict: bool) -> None:
    where = configured_api_url()
    reason = (
        f"this installation cannot reach the server at {where}"
        if where
        else "no Flowyard server is configured (FLOWYARD_API_URL)"
    )
    if strict:
        raise ConcurrencySlotAcquisitionError(
            f"cannot take slots of {', '.join(map(repr, names))}: {reason}"
        )
    _warn_once("-no-server", "Concurrency limits are not enforced: %s.", reason)


class _Taking:
    """One take's wait: what each answer means (take it, wait how long, or give up), shared
    by the blocking and the async forms."""

    def __init__(
        self,
        backend: ConcurrencyBackend,
        names: list[str],
        occupy: int,
        mode: Mode,
        timeout_seconds: float | None,
        strict: bool,
        lease_seconds: float,
    ) -> None:
        if not isinstance(occupy, int) or isinstance(occupy, bool) or occupy < 1:
            raise ValueError(f"occupy must be a whole number of slots, at least 1; got {occupy!r}")
        self.backend, self.names, self.occupy, self.mode = backend, names, occupy, mode
        self.timeout_seconds, self.strict = timeout_seconds, strict
        self.lease_seconds = lease_seconds
        self.deadline = None if timeout_seconds is None else time.monotonic() + timeout_seconds
        self.said_waiting = False
        # A held slot is usually released long before its lease would run out, so a waiter
        # asks again soon, then less often: 50 ms doubling to 1 s. A rate limit's slots
        # free themselves when the server says, so its hint is followed as it is.
        self.backoff = 0.05

    def wait_after(self, grant: Grant) -> float | None:
        """None once ``grant`` holds the slots; else how long to wait before asking again."""
        if grant.missing:
            missing = ", ".join(map(repr, grant.missing))
            if self.strict:
                if grant.lease_id is not None:
                    self.backend.release(grant.lease_id)
                raise ConcurrencySlotAcquisitionError(f"no concurrency limit named {missing}")
            for name in grant.missing:
                _warn_once(
                    name,
                    "Concurrency limit %r does not exist, so it limits nothing "
                    "(create it with `flowyard concurrency-limit create %s N`)",
                    name,
                    name,
                )
        if grant.acquired:
            return None
        hint = grant.retry_after
        if self.mode != "rate_limit":
            hint = min(hint, self.backoff)
        self.backoff = min(self.backoff * 2, MAX_POLL_SECONDS)
        wait = hint * random.uniform(0.8, 1.2)  # jitter: waiters do not ask in step
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise AcquireConcurrencySlotTimeoutError(
                    f"could not take {self.occupy} slot(s) of "
                    f"{', '.join(map(repr, self.names))} within {self.timeout_seconds:g} s: "
                    f"{grant.blocked_by!r} stayed full"
                )
            wait = min(wait, left)
        if not self.said_waiting:
            self.said_waiting = True
            _run_logger().info(
                "Waiting for %d slot(s) of concurrency limit %r: it is full",
                self.occupy,
                grant.blocked_by,
            )
        return wait

    def take(self) -> Grant:
        """Ask until the slots are held (or give up), sleeping between asks."""
        while True:
            grant = self._ask()
            wait = self.wait_after(grant)
            if wait is None:
                return grant
            time.sleep(wait)

    async def atake(self) -> Grant:
        """:meth:`take` for the event loop: it waits with ``asyncio.sleep`` and sends each
        request from a thread, so waiters never hold the threads that releases need."""
        import asyncio

        while True:
            asking = asyncio.ensure_future(asyncio.to_thread(self._ask))
            try:
                grant = await asyncio.shield(asking)
            except asyncio.CancelledError:
                # Cancelled while the request is out: give back whatever it takes.
                asking.add_done_callback(lambda done: _give_back(self.backend, done))
                raise
            wait = await asyncio.to_thread(self.wait_after, grant)  # may release (strict)
            if wait is None:
                return grant
            await asyncio.sleep(wait)

    def _ask(self) -> Grant:
        return self.backend.acquire(self.names, self.occupy, self.mode, self.lease_seconds)


def _give_back(backend: ConcurrencyBackend, done: object) -> None:
    grant = done.result() if not done.cancelled() and done.exception() is None else None  # type: ignore[attr-defined]
    if grant is not None and grant.lease_id is not None:
        threading.Thread(target=_release_quietly, args=(backend, grant.lease_id)).start()


def _release_quietly(backend: ConcurrencyBackend, lease_id: uuid.UUID) -> None:
    try:
        backend.release(lease_id)
    except ObjectNotFound:
        pass
    except Exception as exc:  # the lease runs out by itself
        _logger.warning(
            "Could not release concurrency lease %s (%s); its slots come back when it runs out",
            lease_id,
            exc,
        )


def _run_logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    from flowyard.sdk._context import flow_run_context, task_run_context

    if task_run_context.get() is None and flow_run_context.get() is None:
        return _logger
    from flowyard.sdk._logging import get_run_logger

    return get_run_logger()


class _Renewer:
    """One thread that renews every held lease a third of the way through its term."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._due: list[tuple[float, uuid.UUID]] = []
        self._held: dict[uuid.UUID, tuple[ConcurrencyBackend, float]] = {}
        self._thread: threading.Thread | None = None

    def hold(self, backend: ConcurrencyBackend, lease_id: uuid.UUID, seconds: float) -> None:
        with self._cond:
            self._held[lease_id] = (backend, seconds)
            heapq.heappush(self._due, (time.monotonic() + seconds / 3, lease_id))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="flowyard-concurrency-leases", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def drop(self, lease_id: uuid.UUID) -> None:
        with self._cond:
            self._held.pop(lease_id, None)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._due or self._due[0][0] > time.monotonic():
                    timeout = self._due[0][0] - time.monotonic() if self._due else None
                    self._cond.wait(timeout)
                _, lease_id = heapq.heappop(self._due)
                held = self._held.get(lease_id)
            if held is None:
                continue  # released meanwhile
            backend, seconds = held
            try:
                kept = backend.renew(lease_id, seconds)
            except Exception as exc:  # the server is away: try again sooner
                _logger.warning("Could not renew concurrency lease %s: %s", lease_id, exc)
                kept, seconds = True, seconds / 2
            if not kept:
                _logger.warning(
                    "Concurrency lease %s ran out before it was renewed: its slots may be "
                    "taken by others while this block still runs",
                    lease_id,
                )
                self.drop(lease_id)
                continue
            with self._cond:
                if lease_id in self._held:
                    heapq.heappush(self._due, (time.monotonic() + seconds / 3, lease_id))


_renewer = _Renewer()


@contextmanager
def concurrency(
    names: str | list[str],
    occupy: int = 1,
    timeout_seconds: float | None = None,
    max_retries: int | None = None,
    lease_duration: float = 300,
    strict: bool = False,
    holder: object = None,
) -> Iterator[None]:
    """Hold ``occupy`` slots of each named limit for the duration of the block.

    Waits while any of them is full (at most ``timeout_seconds``, then
    :class:`AcquireConcurrencySlotTimeoutError`). ``max_retries`` and ``holder``
    are accepted for Prefect's signature; the timeout bounds the wait.
    """
    listed = _names(names)
    backend = _current_backend()
    if backend is None:
        _no_backend(listed, strict)
        yield
        return
    grant = _Taking(
        backend, listed, occupy, "concurrency", timeout_seconds, strict, lease_duration
    ).take()
    lease_id = grant.lease_id
    if lease_id is not None:
        _renewer.hold(backend, lease_id, lease_duration)
    try:
        yield
    finally:
        if lease_id is not None:
            _renewer.drop(lease_id)
            _release_quietly(backend, lease_id)


@asynccontextmanager
async def aconcurrency(
    names: str | list[str],
    occupy: int = 1,
    timeout_seconds: float | None = None,
    max_retries: int | None = None,
    lease_duration: float = 300,
    strict: bool = False,
    holder: object = None,
) -> AsyncIterator[None]:
    """:func:`concurrency` for ``async with``: waits on the event loop, not on a thread."""
    import asyncio

    listed = _names(names)
    backend = _current_backend()
    if backend is None:
        _no_backend(listed, strict)
        yield
        return
    grant = await _Taking(
        backend, listed, occupy, "concurrency", timeout_seconds, strict, lease_duration
    ).atake()
    lease_id = grant.lease_id
    if lease_id is not None:
        _renewer.hold(backend, lease_id, lease_duration)
    try:
        yield
    finally:
        if lease_id is not None:
            _renewer.drop(lease_id)
            await asyncio.to_thread(_release_quietly, backend, lease_id)


def _limited_tags(tags: frozenset[str]) -> list[str]:
    """The ``tag:<tag>`` limits that exist for ``tags`` (names read once per interval)."""
    global _known
    backend = _current_backend()
    if backend is None:
        return []
    read_at, read_from, names = _known
    if read_from is not backend or time.monotonic() - read_at > TAG_LIMITS_SECONDS:
        try:
            names = backend.limit_names()
        except Exception as exc:  # the server is away: run unthrottled rather than fail
            _warn_once("-tag-limits", "Could not read the tag concurrency limits: %s", exc)
            return []
        _known = (time.monotonic(), backend, names)
    return [f"tag:{tag}" for tag in sorted(tags) if f"tag:{tag}" in names]


def tag_slots(tags: frozenset[str]) -> AbstractContextManager[None] | None:
    """A slot of the ``tag:<tag>`` limit of each of ``tags`` that has one, held for the
    ``with`` (a task run's attempts); None when no tag is limited or there is no server."""
    limited = _limited_tags(tags)
    return concurrency(limited) if limited else None


async def atag_slots(tags: frozenset[str]) -> AbstractAsyncContextManager[None] | None:
    """:func:`tag_slots` for an async task run."""
    import asyncio

    limited = await asyncio.to_thread(_limited_tags, tags)
    return aconcurrency(limited) if limited else None


async def arate_limit(
    names: str | list[str],
    occupy: int = 1,
    timeout_seconds: float | None = None,
    strict: bool = False,
) -> None:
    """:func:`rate_limit` for the event loop."""
    listed = _names(names)
    backend = _current_backend()
    if backend is None:
        _no_backend(listed, strict)
        return
    await _Taking(backend, listed, occupy, "rate_limit", timeout_seconds, strict, 300).atake()


def rate_limit(
    names: str | list[str],
    occupy: int = 1,
    timeout_seconds: float | None = None,
    strict: bool = False,
) -> None:
    """Take ``occupy`` slots of each named limit and keep them: the limit's slot decay frees
    them, so callers are spaced out to its rate. Waits while the limits are full."""
    listed = _names(names)
    backend = _current_backend()
    if backend is None:
        _no_backend(listed, strict)
        return
    _Taking(backend, listed, occupy, "rate_limit", timeout_seconds, strict, 300).take()
