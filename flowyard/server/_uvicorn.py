"""uvicorn as the server runs it: graceful stops, and memory settled once serving."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import socket
from types import FrameType

import uvicorn

logger = logging.getLogger("flowyard.server")

# Long enough for the deferred start-up work (the dispatcher's execution plane)
# to be done, so what it loaded is frozen too.
SETTLE_SECONDS = 3.0


class GracefulServer(uvicorn.Server):
    """uvicorn, but a SIGTERM/SIGINT stop exits 0.

    uvicorn re-raises the captured signal after shutting down, which makes a
    clean stop look like a crash (exit -15) to supervisors. Here a signal
    means "stop gracefully", and a graceful stop is a success.
    """

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            asyncio.get_running_loop().call_later(SETTLE_SECONDS, settle_memory)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self._captured_signals.clear()
        # Live log streams never end by themselves; close them so shutdown does not
        # wait out the grace period (clients resume with Last-Event-ID).
        from flowyard.server.ops import logs

        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop().call_soon_threadsafe(logs.drain)


def settle_memory() -> None:
    """Once serving: collect, freeze what start-up built, and return freed heap to the OS.

    ``flowyard server start`` loads with the cyclic collector paused (see
    ``flowyard.cli.server``). The modules, models and routes built then live
    as long as the process; frozen, the collector never walks them again, so
    later collections only look at what requests create.
    """
    gc.collect()
    gc.freeze()
    gc.enable()
    _malloc_trim()


def _malloc_trim() -> None:
    """glibc keeps freed heap pages; start-up frees many (import-time temporaries)."""
    import ctypes

    try:
        trim = ctypes.CDLL(None).malloc_trim  # the C library the interpreter runs on
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
        return
    trim(0)
