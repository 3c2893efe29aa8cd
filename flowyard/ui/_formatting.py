"""How values read on a page: times, durations, sizes, states and log levels.

Pure functions, registered as Jinja filters. Times are shown in UTC with the
relative form beside them; the page never guesses the reader's time zone.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

from flowyard.schemas.states import StateType

_UNITS = (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024))
LEVELS = {10: "DEBUG", 20: "INFO", 30: "WARNING", 40: "ERROR", 50: "CRITICAL"}


def now() -> datetime:
    return datetime.now(UTC)


def when(value: datetime | None) -> str:
    """``2026-11-24 18:22:17 UTC``; an em dash for nothing."""
    if value is None:
        return "—"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def clock(value: datetime) -> str:
    """``18:22:17.042`` (UTC): log lines show the time of day to the millisecond."""
    return value.astimezone(UTC).strftime("%H:%M:%S.%f")[:-3]


def iso(value: datetime | None) -> str:
    return "" if value is None else value.astimezone(UTC).isoformat()


def ago(value: datetime | None, reference: datetime | None = None) -> str:
    """``5 min ago``, ``in 2 h``, ``just now``."""
    if value is None:
        return "—"
    delta = ((reference or now()) - value).total_seconds()
    future = delta < 0
    seconds = abs(delta)
    if seconds < 45:
        return "just now" if not future else "in a few seconds"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            amount = round(seconds / size)
            return f"in {amount} {unit}" if future else f"{amount} {unit} ago"
    return "just now"  # unreachable: seconds >= 45 always meets "min"


def duration(seconds: float | None) -> str:
    """``420 ms``, ``3.2 s``, ``4 min 05 s``, ``2 h 03 min``, ``3 d 4 h``."""
    if seconds is None or math.isnan(seconds):
        return "—"
    seconds = max(0.0, seconds)
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s"


def between(start: datetime | None, end: datetime | None, reference: datetime | None = None) -> str:
    """How long from ``start`` to ``end`` (or to ``reference``/now while it lasts)."""
    if start is None:
        return "—"
    return duration(((end or reference or now()) - start).total_seconds())


def size(count: int | float | None) -> str:
    """``512 MiB``, ``1.5 GiB``, ``300 B``."""
    if count is None:
        return "—"
    count = int(count)
    for unit, unit_size in _UNITS:
        if count >= unit_size:
            value = count / unit_size
            return f"{value:.0f} {unit}" if value >= 100 else f"{value:.3g} {unit}"
    return f"{count} B"


def state_class(state: StateType | str) -> str:
    """A CSS class per state type; the page always shows the state's name beside it."""
    return "state-" + str(state).lower()


def level_name(level: int) -> str:
    if level in LEVELS:
        return LEVELS[level]
    lower = max((lv for lv in LEVELS if lv <= level), default=10)
    return f"{LEVELS[lower]}+{level - lower}" if level > lower else f"LEVEL {level}"


def level_class(level: int) -> str:
    if level >= 40:
        return "lvl-error"
    if level >= 30:
        return "lvl-warning"
    if level >= 20:
        return "lvl-info"
    return "lvl-debug"


def pretty_json(value: Any) -> str:
    """Indented JSON for display (escaped by the template like any other text)."""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def compact_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def short_id(value: object) -> str:
    return str(value)[:8]


FILTERS = {
    "when": when,
    "iso": iso,
    "clock": clock,
    "ago": ago,
    "duration": duration,
    "duration_between": between,
    "size": size,
    "state_class": state_class,
    "level_name": level_name,
    "level_class": level_class,
    "pretty_json": pretty_json,
    "compact_json": compact_json,
    "short_id": short_id,
}
