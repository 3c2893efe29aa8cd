"""The late-runs service: a SCHEDULED run not started by its time plus a grace is named Late.

The run stays SCHEDULED (a dispatcher or worker may still pick it up); the
name tells the user it is overdue, through a state written to the run's
history by ``ops.schedules.mark_late_runs``. The grace (15 s by default, as
in Prefect) keeps runs that are merely being picked up from flickering to
Late. Each pass handles bounded batches, one short transaction each.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from flowyard.server.context import ServerContext
from flowyard.server.db import Database
from flowyard.server.ops import schedules as schedule_ops
from flowyard.server.services.periodic import Clock, run_periodically, utcnow

logger = logging.getLogger("flowyard.late_runs")

BATCH = 200


class LateRunMarker:
    """Names overdue SCHEDULED runs Late; one :meth:`run_once` per tick."""

    def __init__(
        self, db: Database, grace: timedelta = timedelta(seconds=15), *, clock: Clock = utcnow
    ) -> None:
        self._db = db
        self._grace = grace
        self._clock = clock

    async def run_once(self) -> int:
        """Mark every run late at ``clock()``; returns how many were marked."""
        now: datetime = self._clock()
        total = 0
        while True:
            async with self._db.session() as session:
                marked = await schedule_ops.mark_late_runs(session, now, self._grace, limit=BATCH)
            total += marked
            # A short batch means the backlog is done (or the rest is locked by a claimer).
            if marked < BATCH:
                break
        if total:
            logger.info("%d runs are late", total)
        return total


async def late_runs_service(ctx: ServerContext) -> None:
    """The in-server late-run marker: runs until cancelled."""
    marker = LateRunMarker(ctx.db, timedelta(seconds=ctx.settings.late_runs_after_seconds))
    await run_periodically(
        "late runs", marker.run_once, interval=ctx.settings.scheduler_loop_seconds
    )
