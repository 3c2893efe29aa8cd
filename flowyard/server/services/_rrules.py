"""RRule strings read in a schedule's time zone, and iterated without replaying years.

dateutil iterates an RRule from its DTSTART every time it is asked for the
next occurrence. A rule without DTSTART starts at the default anchor
(2020-01-01, as Prefect does), so an every-minute rule would walk millions of
occurrences per call. :func:`fast_forward` moves DTSTART forward by a whole
number of periods, which leaves every later occurrence where it was, for the
rule shapes where that holds: no COUNT (which counts from DTSTART) and a
frequency whose period is a fixed length of wall-clock time (weekly or
finer; months and years vary in length and are cheap to replay anyway).
"""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo
from typing import Any

from dateutil import rrule as du

_PERIODS = {
    du.WEEKLY: timedelta(weeks=1),
    du.DAILY: timedelta(days=1),
    du.HOURLY: timedelta(hours=1),
    du.MINUTELY: timedelta(minutes=1),
    du.SECONDLY: timedelta(seconds=1),
}

Rule = du.rrule | du.rruleset


def _attr(obj: object, name: str) -> Any:
    # dateutil keeps a parsed rule's fields only in private attributes.
    return getattr(obj, f"_{name}")


def _localized(rule: du.rrule, tz: tzinfo) -> du.rrule:
    dtstart: datetime = _attr(rule, "dtstart")
    until: datetime | None = _attr(rule, "until")
    changes: dict[str, datetime] = {}
    if dtstart.tzinfo is None:
        changes["dtstart"] = dtstart.replace(tzinfo=tz)
        if until is not None and until.tzinfo is None:
            changes["until"] = until.replace(tzinfo=tz)
    return rule.replace(**changes) if changes else rule  # type: ignore[arg-type]


def parse(text: str, tz: tzinfo, default_start: datetime) -> Rule:
    """Parse ``text``; naive DTSTART/UNTIL/RDATE/EXDATE are wall times in ``tz``."""
    parsed = du.rrulestr(text, dtstart=default_start, cache=False)
    if isinstance(parsed, du.rrule):
        return _localized(parsed, tz)
    rules: list[du.rrule] = _attr(parsed, "rrule")
    exrules: list[du.rrule] = _attr(parsed, "exrule")
    rdates: list[datetime] = _attr(parsed, "rdate")
    exdates: list[datetime] = _attr(parsed, "exdate")
    out = du.rruleset()
    for r in rules:
        out.rrule(_localized(r, tz))
    for r in exrules:
        out.exrule(_localized(r, tz))
    for d in rdates:
        out.rdate(d if d.tzinfo is not None else d.replace(tzinfo=tz))
    for d in exdates:
        out.exdate(d if d.tzinfo is not None else d.replace(tzinfo=tz))
    return out


def fast_forward(rule: Rule, before: datetime) -> Rule:
    """The same rule, restarted at most one period before the aware instant ``before``.

    Rules this cannot shift safely (sets, COUNT, monthly and yearly) come back unchanged.
    """
    if not isinstance(rule, du.rrule):
        return rule
    period = _PERIODS.get(_attr(rule, "freq"))
    if period is None or _attr(rule, "count") is not None:
        return rule
    step = period * _attr(rule, "interval")
    dtstart: datetime = _attr(rule, "dtstart")
    target = before.astimezone(dtstart.tzinfo) if dtstart.tzinfo else before
    behind = target.replace(tzinfo=None) - dtstart.replace(tzinfo=None)
    periods = behind // step
    if periods <= 0:
        return rule
    # Naive arithmetic on the wall clock, as dateutil itself iterates.
    return rule.replace(dtstart=dtstart + periods * step)  # type: ignore[arg-type]
