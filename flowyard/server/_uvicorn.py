from __future__ import annotations

import asyncio
import contextlib
from types import FrameType

import uvicorn


class GracefulServer(uvicorn.Server):
    """uvicorn, but a SIGTERM/SIGINT stop exits 0.

    uvicorn re-raises the captured signal after shutting down, which makes a
    clean stop look like a crash (exit -15) to supervisors. Here a signal
    means "stop gracefully", and a graceful stop is a success.
    """

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self._captured_signals.clear()
        # Live log streams never end by themselves; close them so shutdown does not
        # wait out the grace period (clients resume with Last-Event-ID).
        from flowyard.server.ops import logs

        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop().call_soon_threadsafe(logs.drain)
