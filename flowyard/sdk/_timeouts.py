"""Enforcing ``timeout_seconds`` on synchronous and asynchronous code.

Async code uses ``asyncio.timeout``. Synchronous code cannot be cancelled
from outside, so, as Prefect does, it is interrupted: in the main thread by
``SIGALRM`` (which also breaks a blocking ``time.sleep``), elsewhere by an
exception injected into the thread when the deadline passes. The injected
exception lands at the next Python bytecode, so a thread blocked inside one
long C call is interrupted only when that call returns. Running every timed
call in a helper thread was rejected: the abandoned call would keep running
(and keep its side effects going) after the run was already marked failed.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from types import FrameType

__all__ = ["async_timeout", "sync_timeout"]


def _message(seconds: float) -> str:
    return f"Scope timed out after {seconds:g} second(s)."


@contextmanager
def sync_timeout(seconds: float | None, exc_type: type[TimeoutError]) -> Iterator[None]:
    """Raise ``exc_type`` inside the block if it runs longer than ``seconds``."""
    if not seconds:
        yield
        return
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer"):
        previous_delay, previous_interval = signal.getitimer(signal.ITIMER_REAL)
        if not previous_delay or previous_delay > seconds:
            with _alarm(seconds, exc_type, previous_delay, previous_interval):
                yield
            return
    with _injected(seconds, exc_type):
        yield


@contextmanager
def _alarm(
    seconds: float, exc_type: type[TimeoutError], previous_delay: float, previous_interval: float
) -> Iterator[None]:
    done = False

    def on_alarm(signum: int, frame: FrameType | None) -> None:
        if not done:
            raise exc_type(_message(seconds))

    previous_handler = signal.signal(signal.SIGALRM, on_alarm)
    started = time.monotonic()
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        done = True
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous_handler)
        if previous_delay:
            # Re-arm the outer alarm (another timeout, or a test runner's) for its remaining time.
            remaining = previous_delay - (time.monotonic() - started)
            signal.setitimer(signal.ITIMER_REAL, max(remaining, 0.001), previous_interval)


@contextmanager
def _injected(seconds: float, exc_type: type[TimeoutError]) -> Iterator[None]:
    import ctypes

    target = threading.get_ident()
    lock = threading.Lock()
    state = {"done": False, "fired": False}

    def fire() -> None:
        with lock:
            if state["done"]:
                return
            state["fired"] = True
            ctypes.pythonapi.PyThreadState_SetAsyncExc(
                ctypes.c_ulong(target), ctypes.py_object(exc_type)
            )

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()
    try:
        yield
    except exc_type as exc:
        if state["fired"] and not exc.args:
            raise exc_type(_message(seconds)) from None
        raise
    finally:
        timer.cancel()
        with lock:
            state["done"] = True
            if state["fired"]:
                # The block may have finished just as the deadline passed; drop the
                # exception if it has not been delivered yet.
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(target), None)


@asynccontextmanager
async def async_timeout(seconds: float | None, exc_type: type[TimeoutError]) -> AsyncIterator[None]:
    """Cancel the block and raise ``exc_type`` if it runs longer than ``seconds``."""
    if not seconds:
        yield
        return
    import asyncio

    scope = asyncio.timeout(seconds)
    try:
        async with scope:
            yield
    except TimeoutError:
        if scope.expired():
            raise exc_type(_message(seconds)) from None
        raise
