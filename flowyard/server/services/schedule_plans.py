"""Which runs a schedule needs now: a pure plan from the clock and the high-water mark.

A schedule's ``scheduled_until`` is its high-water mark: every occurrence up
to it has been handled (its run exists, was deleted by a user on purpose, or
was skipped as missed). A plan therefore only ever creates occurrences after
the mark, and the mark never moves backwards, so a user's deletion of a
future run is respected and a pass repeated with the same clock plans
nothing.

Upcoming runs: the occurrences in ``[now, now + horizon]``, at most
``max_runs``, and never fewer than ``min_runs`` even when they lie past the
horizon (a weekly schedule still shows its next runs).

Missed runs (between the mark and ``now``, after downtime) are skipped
unless the schedule asks for catch-up. Catch-up creates them oldest first,
at most ``max_catchup`` per pass; a longer backlog is worked off over the
following passes, each starting where the last one stopped, so nothing is
lost and no single pass floods the queue. Upcoming runs wait until the
backlog is done.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from flowyard.errors import ConfigurationError
from flowyard.schemas.deployments import ScheduleSpec
from flowyard.server.services.occurrences import iter_occurrences

_TICK = timedelta(microseconds=1)


@dataclass(frozen=True)
class FillPolicy:
    """How far ahead, and how many, runs a schedule keeps."""

    horizon: timedelta = timedelta(hours=1)
    max_runs: int = 10
    min_runs: int = 3
    max_catchup: int = 100

    def __post_init__(self) -> None:
        if self.min_runs < 1 or self.max_catchup < 1:
            raise ConfigurationError("scheduler min runs and max catch-up runs must be at least 1")
        if self.max_runs < self.min_runs:
            raise ConfigurationError(
                f"scheduler max runs ({self.max_runs}) is below min runs ({self.min_runs})"
            )
        if self.horizon < timedelta(0):
            raise ConfigurationError("scheduler horizon must not be negative")


@dataclass(frozen=True)
class FillPlan:
    """Occurrences to create (oldest first) and the mark once they exist."""

    occurrences: tuple[datetime, ...]
    scheduled_until: datetime | None
    # Set when missed occurrences were skipped: the mark they were missed from.
    skipped_since: datetime | None = None
    # True when a catch-up backlog remains for the next pass.
    backlog: bool = False

    def changes(self, scheduled_until: datetime | None) -> bool:
        """Whether carrying out this plan writes anything."""
        return bool(self.occurrences) or self.scheduled_until != scheduled_until


def upcoming(spec: ScheduleSpec, now: datetime, policy: FillPolicy) -> list[datetime]:
    """The runs a schedule should have ahead of ``now``."""
    out: list[datetime] = []
    end = now + policy.horizon
    for instant in iter_occurrences(spec, now):
        if len(out) >= policy.max_runs or (instant > end and len(out) >= policy.min_runs):
            break
        out.append(instant)
    return out


def _missed(spec: ScheduleSpec, mark: datetime, now: datetime, limit: int) -> list[datetime]:
    out: list[datetime] = []
    for instant in iter_occurrences(spec, mark + _TICK):
        if instant >= now or len(out) >= limit:
            break
        out.append(instant)
    return out


def plan_fill(
    spec: ScheduleSpec,
    *,
    now: datetime,
    scheduled_until: datetime | None,
    catchup: bool,
    policy: FillPolicy,
) -> FillPlan:
    """What one pass should create for one schedule. Pure: same input, same plan."""
    mark = scheduled_until
    missed: list[datetime] = []
    skipped_since = None
    if mark is not None and mark < now:
        if catchup:
            missed = _missed(spec, mark, now, policy.max_catchup + 1)
            if len(missed) > policy.max_catchup:
                batch = tuple(missed[: policy.max_catchup])
                return FillPlan(batch, scheduled_until=batch[-1], backlog=True)
        elif _missed(spec, mark, now, 1):
            skipped_since = mark
    ahead = upcoming(spec, now, policy)
    fresh = [t for t in ahead if mark is None or t > mark]
    handled = [t for t in (mark, *missed[-1:], *ahead[-1:]) if t is not None]
    if skipped_since is not None:
        handled.append(now - _TICK)  # even if the schedule has ended: skip once, not every pass
    new_mark = max(handled) if handled else None
    return FillPlan(tuple(missed + fresh), scheduled_until=new_mark, skipped_since=skipped_since)
