"""When a schedule fires: cron, interval and RRule occurrences as aware UTC instants.

Pure functions, no I/O. Every schedule is evaluated in its own time zone and
every result is an aware UTC ``datetime``, strictly increasing.

Daylight saving time follows Prefect's documented rules, so a schedule moved
from Prefect keeps its times:

* Calendar schedules (cron, RRule, and intervals of whole days) are defined
  on the wall clock. A wall time that does not exist on a spring-forward day
  (02:30 in New York on the second Sunday of March) fires at the same
  distance past the transition (03:30 EDT); a wall time that happens twice on
  a fall-back day fires once, the first time. An hourly cron therefore pauses
  two hours when clocks go back: it fires the first time 1am and the first
  time 2am are reached.
* Sub-day intervals are absolute: an hourly interval fires every 3600 s
  across any transition.

croniter's own time-zone mode was rejected: it moves 02:30 to 03:00 on
spring-forward days and fires a 01:30 daily cron twice on fall-back days. We
iterate croniter on naive wall-clock times and localise each result instead.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter
from pydantic import TypeAdapter, ValidationError

from flowyard.errors import FlowyardError
from flowyard.schemas.deployments import (
    CronSchedule,
    IntervalSchedule,
    RRuleSchedule,
    ScheduleSpec,
)
from flowyard.server.services import _rrules

# Phase of intervals without an anchor and start of RRules without DTSTART
# (Prefect uses the same date, so imported schedules keep their phase).
DEFAULT_ANCHOR = datetime(2020, 1, 1)
_DAY = timedelta(days=1)
_DST_SLACK = timedelta(hours=3)
_SPEC: TypeAdapter[ScheduleSpec] = TypeAdapter(ScheduleSpec)


class ScheduleError(FlowyardError):
    """A stored schedule cannot be evaluated (unknown shape or time zone)."""


def parse_schedule(data: Mapping[str, object]) -> ScheduleSpec:
    """The wire model of a stored schedule (``DeploymentSchedule.schedule``)."""
    try:
        return _SPEC.validate_python(dict(data))
    except ValidationError as exc:
        raise ScheduleError(
            f"unreadable schedule {dict(data)!r}: {exc.errors()[0]['msg']}"
        ) from None


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"unknown time zone {name!r}") from None


def localize(wall: datetime, tz: tzinfo) -> datetime:
    """A naive wall-clock time in ``tz`` as UTC (gaps shift forward, repeats take the first)."""
    return wall.replace(tzinfo=tz, fold=0).astimezone(UTC)


def wall_clock(instant: datetime, tz: tzinfo) -> datetime:
    """The naive wall-clock reading of an aware instant in ``tz``."""
    return instant.astimezone(tz).replace(tzinfo=None)


def iter_occurrences(spec: ScheduleSpec, start: datetime) -> Iterator[datetime]:
    """Every occurrence at or after ``start``, strictly increasing, in UTC.

    Infinite for open-ended schedules: callers bound it (``itertools.islice``,
    or stop at an end instant).
    """
    if start.tzinfo is None:
        raise ScheduleError("start must be an aware datetime")
    start = start.astimezone(UTC)
    if isinstance(spec, CronSchedule):
        raw = _cron(spec, start)
    elif isinstance(spec, IntervalSchedule):
        raw = _interval(spec, start)
    else:
        raw = _rrule(spec, start)
    last: datetime | None = None
    for instant in raw:
        # Wall-clock iteration can repeat or reorder an instant around a DST gap.
        if instant < start or (last is not None and instant <= last):
            continue
        last = instant
        yield instant


def occurrences_between(
    spec: ScheduleSpec, start: datetime, end: datetime, *, limit: int
) -> list[datetime]:
    """Occurrences in ``[start, end]``, oldest first, at most ``limit`` of them."""
    out: list[datetime] = []
    for instant in iter_occurrences(spec, start):
        if instant > end or len(out) >= limit:
            break
        out.append(instant)
    return out


def next_occurrences(spec: ScheduleSpec, start: datetime, count: int) -> list[datetime]:
    """The next ``count`` occurrences at or after ``start``."""
    return list(itertools.islice(iter_occurrences(spec, start), count))


def _gap_margin(start: datetime, tz: tzinfo) -> timedelta:
    # A wall time inside a spring-forward gap maps to an instant *after* later
    # wall times; start the naive walk early enough to see it.
    now_offset = start.astimezone(tz).utcoffset() or timedelta(0)
    before = (start - 2 * _DAY).astimezone(tz).utcoffset() or timedelta(0)
    return max(timedelta(0), now_offset - before) + timedelta(seconds=1)


def _cron(spec: CronSchedule, start: datetime) -> Iterator[datetime]:
    tz = zone(spec.timezone)
    base = wall_clock(start, tz) - _gap_margin(start, tz)
    walker = croniter(spec.cron, base)
    while True:
        try:
            wall = walker.get_next(datetime)
        except CroniterError:
            return  # e.g. "0 0 30 2 *": a valid expression that never fires
        yield localize(wall, tz)


def _interval(spec: IntervalSchedule, start: datetime) -> Iterator[datetime]:
    tz = zone(spec.timezone)
    anchor = spec.anchor_date or DEFAULT_ANCHOR
    anchor_wall = wall_clock(anchor, tz) if anchor.tzinfo is not None else anchor
    # Whole days follow the wall clock (a daily run stays at 9am local);
    # the rest of the interval is absolute time.
    days = int(spec.interval // 86400)
    seconds = spec.interval - days * 86400

    def nth(k: int) -> datetime:
        return localize(anchor_wall + timedelta(days=k * days), tz) + timedelta(seconds=k * seconds)

    elapsed = (start - localize(anchor_wall, tz)).total_seconds()
    # Jump close to start, then step: DST moves the wall-day part by hours at most.
    k = int(elapsed // spec.interval) - 2
    while nth(k) >= start:
        k -= 1
    while True:
        k += 1
        yield nth(k)


def _rrule(spec: RRuleSchedule, start: datetime) -> Iterator[datetime]:
    tz = zone(spec.timezone)
    rule = _rrules.parse(spec.rrule, tz, DEFAULT_ANCHOR)
    # Slack for the widest DST shift between a wall clock and its instant (2 h).
    rule = _rrules.fast_forward(rule, start - _DST_SLACK)
    for occurrence in rule.xafter(start, inc=True):
        if occurrence.tzinfo is None:  # pragma: no cover - parse() localises every rule
            occurrence = occurrence.replace(tzinfo=tz)
        yield occurrence.astimezone(UTC)
