"""Server-drawn SVG charts: compute minutes per day, and a usage meter.

Geometry is computed here and drawn by templates with SVG attributes only
(no inline styles, no script): the charts render the same with JavaScript
off, and every bar carries its numbers as text for screen readers.
"""

from __future__ import annotations

import calendar
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

WIDTH = 760.0
HEIGHT = 240.0
LEFT = 48.0
RIGHT = 8.0
TOP = 12.0
BOTTOM = 28.0


@dataclass(frozen=True)
class Bar:
    day: date
    minutes: int
    runs: int
    x: float
    y: float
    width: float
    height: float
    label: str  # the x-axis label, '' for most days
    today: bool


@dataclass(frozen=True)
class Tick:
    value: int
    y: float


@dataclass(frozen=True)
class DayChart:
    bars: tuple[Bar, ...]
    ticks: tuple[Tick, ...]
    width: float = WIDTH
    height: float = HEIGHT
    left: float = LEFT
    baseline: float = HEIGHT - BOTTOM
    right_edge: float = WIDTH - RIGHT

    @property
    def empty(self) -> bool:
        return not any(b.minutes for b in self.bars)


def nice_ceiling(value: int) -> int:
    """The smallest 1, 2 or 5 times a power of ten at or above ``value`` (at least 1)."""
    if value <= 1:
        return 1
    power: int = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return step * power
    return 10 * power  # unreachable: step 10 always fits


def day_chart(
    year: int, month: int, minutes: Mapping[date, tuple[int, int]], today: date | None
) -> DayChart:
    """Bars for every day of the month; ``minutes`` maps a day to (minutes, runs)."""
    days = calendar.monthrange(year, month)[1]
    top = nice_ceiling(max((m for m, _ in minutes.values()), default=0))
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    slot = plot_w / days
    bars = []
    for number in range(1, days + 1):
        day = date(year, month, number)
        used, runs = minutes.get(day, (0, 0))
        height = plot_h * used / top
        if used and height < 1.5:
            height = 1.5  # a used day is always visible
        bars.append(
            Bar(
                day=day,
                minutes=used,
                runs=runs,
                x=round(LEFT + slot * (number - 1) + slot * 0.15, 2),
                y=round(TOP + plot_h - height, 2),
                width=round(slot * 0.7, 2),
                height=round(height, 2),
                label=str(number) if number == 1 or number % 5 == 0 else "",
                today=day == today,
            )
        )
    ticks = tuple(Tick(v, round(TOP + plot_h - plot_h * v / top, 2)) for v in (0, top // 2, top))
    return DayChart(tuple(bars), tuple(dict.fromkeys(ticks)))


@dataclass(frozen=True)
class Meter:
    used: int
    limit: int | None
    fraction: float
    fill_width: float
    width: float = 400.0
    level: str = "ok"  # ok | warn | over


def meter(used: int, limit: int | None) -> Meter:
    if not limit:
        return Meter(used, limit, 0.0, 0.0, level="ok")
    fraction = used / limit
    level = "over" if fraction >= 1 else "warn" if fraction >= 0.8 else "ok"
    return Meter(used, limit, fraction, round(400.0 * min(fraction, 1.0), 2), level=level)
