"""Schedules the scheduler can use: a schedule is stored only if it will fire.

A schedule can parse and still never fire: a cron on 30 February, an RRule
whose parts exclude every day or whose last occurrence is past. The
scheduler would evaluate it on every pass and create nothing, so it is
refused here (422, naming the schedule and what was expected), before
anything is written. The wire models refuse what needs no clock (an interval
out of range, an RRule INTERVAL of 0); this needs one: "will it fire" is
asked from now.

Finding the next run of a schedule that fires takes microseconds. An RRule
that never fires is walked by dateutil day by day to the year 9999, seconds
of CPU, so the search runs on a worker thread and is given up after
``SEARCH_SECONDS`` (dateutil's walk ends by itself some seconds later). A
rule whose next run is centuries away is refused the same way. The searches
have threads of their own (:data:`SEARCHERS`): a walk that goes on after its
refusal holds one of them, never the default executor that the server's
other work (the dispatcher's sandboxes, file I/O) runs on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from flowyard.errors import FlowyardError
from flowyard.schemas import deployments as s
from flowyard.server.ops.errors import InvalidInput

SEARCH_SECONDS = 1.0
SEARCHERS = 2
_searchers = ThreadPoolExecutor(SEARCHERS, thread_name_prefix="flowyard-schedule-check")


def _described(spec: s.ScheduleSpec) -> tuple[str, str]:
    """The field that defines the schedule, and its value as the user wrote it."""
    if isinstance(spec, s.CronSchedule):
        return "cron", repr(spec.cron)
    if isinstance(spec, s.IntervalSchedule):
        return "interval", f"an interval of {spec.interval:g} s"
    return "rrule", repr(spec.rrule)


def _first_run(spec: s.ScheduleSpec, now: datetime) -> datetime | None:
    from flowyard.server.services import occurrences  # services import ops: not at load

    return next(occurrences.iter_occurrences(spec, now), None)


async def check_schedules(
    schedules: Sequence[s.DeploymentScheduleCreate],
    *,
    field: str = "schedules",
    now: datetime | None = None,
) -> None:
    """Raise InvalidInput for the first schedule that will not fire after ``now``."""
    now = now or datetime.now(UTC)
    expected = "expected a schedule with runs to come"
    for index, item in enumerate(schedules):
        kind, shown = _described(item.schedule)
        name = f"{field}.{index}.schedule.{kind}"
        try:
            async with asyncio.timeout(SEARCH_SECONDS):
                first = await asyncio.get_running_loop().run_in_executor(
                    _searchers, _first_run, item.schedule, now
                )
        except TimeoutError:
            raise InvalidInput(
                name, f"{shown}: no run found in {SEARCH_SECONDS:g} s of searching; {expected}"
            ) from None
        except (ArithmeticError, ValueError, TypeError, FlowyardError) as exc:
            # dateutil and croniter fail this way on rules they parse but cannot
            # walk; the scheduler's own ScheduleError (an unknown time zone).
            raise InvalidInput(name, f"{shown} cannot be evaluated ({exc}); {expected}") from None
        if first is None:
            raise InvalidInput(
                name, f"{shown} never fires after {now:%Y-%m-%d %H:%M} UTC; {expected}"
            )
