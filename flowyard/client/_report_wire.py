"""What the recorder sends, as the API takes it: states, task runs, log lines, and how an
older API says it does not take a newer body."""

from __future__ import annotations

import functools
import math
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from flowyard.client._batches import json_text, task_run_head
from flowyard.client._errors import ApiError
from flowyard.sdk import _reporting as rep

__all__ = [
    "TaskInfo",
    "always",
    "jsonable",
    "log_line",
    "predates_batch_states",
    "predates_batches",
    "state_body",
]


def jsonable(value: object, depth: int = 0) -> Any:
    """A JSON-safe copy of ``value`` for the API: unknown objects become their repr."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if depth > 20:
        return repr(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v, depth + 1) for v in value]
    if isinstance(value, datetime | uuid.UUID):
        return str(value)
    text = repr(value)
    return text if len(text) <= 2_000 else text[:2_000] + "..."


def state_body(state: rep.StateSnapshot) -> dict[str, Any]:
    return {
        "type": state.type.value,
        "name": state.name[:50] or None,
        "message": (state.message or "")[:20_000],
        "timestamp": state.timestamp.isoformat(),
    }


class TaskInfo:
    """What every report of a task run repeats: its id, flow run, names and tags, as sent."""

    __slots__ = ("created", "flow_run_id", "head", "text")

    def __init__(self, event: rep.TaskRunCreated, text: str, flow_run_text: str) -> None:
        self.created = event
        self.flow_run_id = event.flow_run_id
        self.text = text
        self.head = self.head_for(flow_run_text)

    def head_for(self, flow_run_text: str) -> str:
        event = self.created
        return task_run_head(
            self.text,
            flow_run_text,
            event.task_run_name,
            event.task_key,
            event.dynamic_key,
            event.tags,
        )


def log_line(event: rep.LogEmitted, flow_run_id: str, task_run_id: str | None) -> str:
    """A log line as the API takes it, written as a JSON object."""
    line = f'{{"flow_run_id":"{flow_run_id}"'
    if task_run_id is not None:
        line += f',"task_run_id":"{task_run_id}"'
    line += f',"level":{max(0, min(100, event.level)):d}'
    if event.logger_name:
        line += ',"name":' + logger_name(event.logger_name)
    message = json_text(event.message[:1_000_000])
    return line + f',"message":{message},"timestamp":"{event.timestamp.isoformat()}"}}'


@functools.lru_cache(maxsize=256)
def logger_name(name: str) -> str:
    return json_text(name[:200])


def predates_batches(exc: ApiError) -> bool:
    """Whether the API refused a combined batch for fields it does not know (an older server)."""
    return exc.status == 422 and any(
        e.message == "is not a known field"
        and (e.field == "logs" or e.field.endswith(".previous_states"))
        for e in exc.errors
    )


def always(exc: ApiError) -> bool:
    return True


def predates_batch_states(exc: ApiError) -> bool:
    """Whether the API refused a flow-run state in a batch, or the batch, as an older server."""
    return predates_batches(exc) or (
        exc.status == 422
        and any(
            e.message == "is not a known field" and e.field == "flow_run_state" for e in exc.errors
        )
    )
