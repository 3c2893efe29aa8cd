"""The scheduler service: SCHEDULED runs created ahead of time for every live schedule.

A pass (every ``scheduler_loop_seconds``, and at once after a deployment or
schedule changes) first prunes future runs that no live schedule wants (a
schedule removed, replaced or deactivated, a deployment paused), then plans
each active schedule of each non-paused deployment against its high-water
mark (:mod:`schedule_plans`) and creates what the plan says. Planning reads
without locks; only a schedule with work gets a short write transaction of
its own, so one failing schedule neither blocks nor undoes the others.

Several schedulers may run at once (replicas on one PostgreSQL database, or
a restart overlapping the old process): the per-occurrence idempotency key in
``ops.schedules`` makes duplicates impossible, whatever the interleaving.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Mapper, ORMExecuteState, Session, object_session

from flowyard.errors import ConfigurationError, FlowyardError
from flowyard.server.context import ServerContext
from flowyard.server.db import Database
from flowyard.server.db import models as m
from flowyard.server.ops import schedules as schedule_ops
from flowyard.server.services.occurrences import parse_schedule
from flowyard.server.services.periodic import Clock, Wakeup, run_periodically, utcnow
from flowyard.server.services.schedule_plans import FillPolicy, plan_fill
from flowyard.settings import Settings

logger = logging.getLogger("flowyard.scheduler")

WAKEUP = Wakeup()
_CHANGED = "flowyard_schedules_changed"
_OWN = "flowyard_scheduler_session"


def wake_scheduler() -> None:
    """Ask every scheduler in this process for a pass now (e.g. after a deployment changed)."""
    WAKEUP.wake()


def fill_policy(settings: Settings) -> FillPolicy:
    """The fill policy the settings describe (raises ConfigurationError if inconsistent)."""
    if settings.scheduler_max_runs < settings.scheduler_min_runs:
        raise ConfigurationError(
            f"setting scheduler_max_runs (FLOWYARD_SCHEDULER_MAX_RUNS) is "
            f"{settings.scheduler_max_runs}, below scheduler_min_runs "
            f"(FLOWYARD_SCHEDULER_MIN_RUNS) {settings.scheduler_min_runs}"
        )
    return FillPolicy(
        horizon=timedelta(seconds=settings.scheduler_horizon_seconds),
        max_runs=settings.scheduler_max_runs,
        min_runs=settings.scheduler_min_runs,
        max_catchup=settings.scheduler_max_catchup_runs,
    )


@dataclass(frozen=True)
class PassReport:
    """What one scheduler pass did."""

    created: int = 0
    pruned: int = 0
    failed: int = 0


class Scheduler:
    """Fills every live schedule ahead of ``clock()``; one :meth:`run_once` per tick."""

    def __init__(
        self, db: Database, policy: FillPolicy | None = None, *, clock: Clock = utcnow
    ) -> None:
        self._db = db
        self._policy = policy or FillPolicy()
        self._clock = clock
        self._errors: dict[uuid.UUID, str] = {}

    async def run_once(self) -> PassReport:
        now = self._clock()
        async with self._db.session() as session:
            session.sync_session.info[_OWN] = True
            pruned = await schedule_ops.prune_future_runs(session, now)
            snapshots = await schedule_ops.fillable_schedules(session)
        if pruned:
            logger.info("removed %d future runs no schedule wants any more", pruned)
        created = failed = 0
        for snapshot in snapshots:
            await asyncio.sleep(0)  # planning is CPU work: let requests in between schedules
            try:
                created += await self._fill(snapshot, now)
            except FlowyardError as exc:
                failed += 1
                self._report(snapshot.id, str(exc))
            except Exception:
                failed += 1
                logger.exception("schedule %s: filling failed", snapshot.id)
            else:
                self._errors.pop(snapshot.id, None)
        live = {snapshot.id for snapshot in snapshots}
        self._errors = {k: v for k, v in self._errors.items() if k in live}
        return PassReport(created=created, pruned=pruned, failed=failed)

    async def _fill(self, snapshot: schedule_ops.ScheduleSnapshot, now: datetime) -> int:
        # A cheap unlocked look first: most passes have nothing to do for most schedules.
        plan = plan_fill(
            parse_schedule(snapshot.schedule),
            now=now,
            scheduled_until=snapshot.scheduled_until,
            catchup=snapshot.catchup,
            policy=self._policy,
        )
        if not plan.changes(snapshot.scheduled_until):
            return 0
        async with self._db.session() as session:
            session.sync_session.info[_OWN] = True
            row = await schedule_ops.lock_schedule(session, snapshot.id)
            if row is None:
                return 0  # gone, paused, or another scheduler is filling it right now
            plan = plan_fill(
                parse_schedule(row.schedule),
                now=now,
                scheduled_until=row.scheduled_until,
                catchup=row.catchup,
                policy=self._policy,
            )
            created = await schedule_ops.fill_schedule(
                session, row, plan.occurrences, plan.scheduled_until
            )
        if plan.skipped_since is not None:
            logger.info(
                "schedule %s: occurrences missed since %s are skipped (catchup is off)",
                snapshot.id,
                plan.skipped_since.isoformat(),
            )
        if plan.backlog:
            logger.info("schedule %s: catching up, %d missed runs created", snapshot.id, created)
        return created

    def _report(self, schedule_id: uuid.UUID, message: str) -> None:
        # A broken schedule fails every pass; say so once per distinct reason.
        if self._errors.get(schedule_id) != message:
            self._errors[schedule_id] = message
            logger.warning("schedule %s cannot be filled: %s", schedule_id, message)


async def scheduler_service(ctx: ServerContext) -> None:
    """The in-server scheduler: runs until cancelled."""
    scheduler = Scheduler(ctx.db, fill_policy(ctx.settings))
    await run_periodically(
        "scheduler",
        scheduler.run_once,
        interval=ctx.settings.scheduler_loop_seconds,
        wakeup=WAKEUP,
    )


# Any committed change to a deployment or a schedule wakes the scheduler, so a
# new or edited schedule has its runs (and a removed one loses them) at once.
# The scheduler's own writes are ignored, or it would wake itself forever.
_WATCHED = (m.Deployment, m.DeploymentSchedule)


def _flag(session: Session | None) -> None:
    if session is not None and not session.info.get(_OWN):
        session.info[_CHANGED] = True


def _on_row_change(_mapper: Mapper[Any], _connection: Any, target: object) -> None:
    _flag(object_session(target))


for _model in _WATCHED:
    for _name in ("after_insert", "after_update", "after_delete"):
        event.listen(_model, _name, _on_row_change)


@event.listens_for(Session, "do_orm_execute")
def _on_bulk_change(state: ORMExecuteState) -> None:
    if (state.is_update or state.is_delete) and any(
        mapper.class_ in _WATCHED for mapper in state.all_mappers
    ):
        _flag(state.session)


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    if session.info.pop(_CHANGED, False):
        wake_scheduler()


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_CHANGED, None)
