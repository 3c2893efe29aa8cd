"""The lost-runs service: active runs whose heartbeats stopped end CRASHED, saying so.

See :mod:`flowyard.server.ops.liveness`. Every server runs it (with the
scheduler), so a run is never left RUNNING by a dispatcher on another host
that died, or by a script killed before it could report its end. The
timeout is many heartbeat intervals long: a slow server is not a dead one.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from flowyard.server.context import ServerContext
from flowyard.server.db import Database
from flowyard.server.ops import liveness
from flowyard.server.services.periodic import Clock, run_periodically, utcnow

logger = logging.getLogger("flowyard.lost_runs")

# How often a dispatcher and the SDK send heartbeats for the runs they supervise.
HEARTBEAT_SECONDS = 10.0


class LostRunSweeper:
    """CRASHES runs whose heartbeats stopped; one :meth:`run_once` per tick."""

    def __init__(self, db: Database, timeout: timedelta, *, clock: Clock = utcnow) -> None:
        self._db = db
        self._timeout = timeout
        self._clock = clock

    async def run_once(self) -> int:
        total = 0
        while True:
            async with self._db.session() as session:
                crashed = await liveness.crash_lost_runs(session, self._clock(), self._timeout)
            for run_id in crashed:
                logger.warning("run %s: lost its heartbeat; marked CRASHED", run_id)
            total += len(crashed)
            if len(crashed) < 200:
                return total


async def lost_runs_service(ctx: ServerContext) -> None:
    """The in-server sweeper: runs until cancelled."""
    sweeper = LostRunSweeper(ctx.db, timedelta(seconds=ctx.settings.lost_run_seconds))
    await run_periodically("lost runs", sweeper.run_once, interval=HEARTBEAT_SECONDS)
