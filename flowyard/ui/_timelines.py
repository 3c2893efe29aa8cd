"""Timelines of a run: its states with durations, and its task runs as bars.

Pure functions over plain values, drawn by the templates as SVG (geometry
in a 1000-unit-wide view box, so no inline styles are needed and the
Content-Security-Policy stays strict).

PENDING is where managed compute is prepared (code pulled, environment
built, sandbox started), and the execution plane logs each stage as it
begins. The lines written while a run was PENDING are therefore its
sub-steps: each lasts until the next one begins, the last until PENDING ends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from flowyard.schemas.states import StateType

WIDTH = 1000.0
MIN_BAR = 3.0
MAX_SUBSTEPS = 30


@dataclass(frozen=True)
class StatePoint:
    type: StateType
    name: str
    message: str
    timestamp: datetime


@dataclass(frozen=True)
class LogPoint:
    timestamp: datetime
    message: str


@dataclass(frozen=True)
class Substep:
    label: str
    start: datetime
    seconds: float


@dataclass(frozen=True)
class Segment:
    """One state of the run, from its timestamp to the next state's (or now)."""

    type: StateType
    name: str
    message: str
    start: datetime
    seconds: float
    current: bool
    x: float = 0.0
    width: float = 0.0
    substeps: tuple[Substep, ...] = field(default_factory=tuple)


def _first_line(text: str, limit: int = 160) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def substeps(lines: Sequence[LogPoint], start: datetime, end: datetime) -> tuple[Substep, ...]:
    inside = [p for p in lines if start <= p.timestamp < end][:MAX_SUBSTEPS]
    out = []
    for index, point in enumerate(inside):
        until = inside[index + 1].timestamp if index + 1 < len(inside) else end
        out.append(
            Substep(
                _first_line(point.message),
                point.timestamp,
                (until - point.timestamp).total_seconds(),
            )
        )
    return tuple(out)


def state_timeline(
    states: Sequence[StatePoint], lines: Sequence[LogPoint], now: datetime
) -> list[Segment]:
    """Each state with its duration; the bar geometry spans first state to last (or now)."""
    if not states:
        return []
    last = states[-1]
    finish = last.timestamp if last.type.is_terminal else max(now, last.timestamp)
    origin = states[0].timestamp
    span = max((finish - origin).total_seconds(), 1e-9)
    segments = []
    for index, state in enumerate(states):
        current = index == len(states) - 1
        end = finish if current else states[index + 1].timestamp
        seconds = max(0.0, (end - state.timestamp).total_seconds())
        steps = substeps(lines, state.timestamp, end) if state.type is StateType.PENDING else ()
        x = (state.timestamp - origin).total_seconds() / span * WIDTH
        segments.append(
            Segment(
                type=state.type,
                name=state.name,
                message=state.message,
                start=state.timestamp,
                seconds=seconds,
                current=current and not state.type.is_terminal,
                x=round(x, 2),
                width=round(seconds / span * WIDTH, 2),
                substeps=steps,
            )
        )
    return segments


@dataclass(frozen=True)
class TaskPoint:
    name: str
    state_type: StateType
    state_name: str
    created: datetime
    start: datetime | None
    end: datetime | None
    run_count: int
    max_retries: int


@dataclass(frozen=True)
class TaskBar:
    task: TaskPoint
    x: float
    width: float
    seconds: float | None
    started: bool

    @property
    def retried(self) -> bool:
        return self.task.run_count > 1 or self.task.state_name in ("Retrying", "AwaitingRetry")


@dataclass(frozen=True)
class TaskChart:
    bars: tuple[TaskBar, ...]
    origin: datetime | None
    seconds: float


def task_chart(tasks: Sequence[TaskPoint], now: datetime) -> TaskChart:
    """Bars from each task's start to its end (or now), on one shared time axis."""
    if not tasks:
        return TaskChart((), None, 0.0)
    origin = min(t.start or t.created for t in tasks)
    finish = max(
        t.end or (now if t.start and not t.state_type.is_terminal else t.start or t.created)
        for t in tasks
    )
    span = max((finish - origin).total_seconds(), 1e-9)
    bars = []
    for task in tasks:
        begin = task.start or task.created
        end = task.end or (now if task.start and not task.state_type.is_terminal else begin)
        x = (begin - origin).total_seconds() / span * WIDTH
        width = max(MIN_BAR, (end - begin).total_seconds() / span * WIDTH)
        bars.append(
            TaskBar(
                task=task,
                x=round(min(x, WIDTH - MIN_BAR), 2),
                width=round(min(width, WIDTH - min(x, WIDTH - MIN_BAR)), 2),
                seconds=(end - begin).total_seconds() if task.start else None,
                started=task.start is not None,
            )
        )
    return TaskChart(tuple(bars), origin, span)
