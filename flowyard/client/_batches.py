"""What the run recorder sends in one request: task-run states and log lines.

A trivial task emits three states (PENDING, RUNNING, COMPLETED) and a log
line within microseconds, so most of a batch is several states of the same
task runs. They travel coalesced: one entry per task run holding its latest
state, with the states before it in ``previous_states``, and the log lines in
the same body (``POST /task-runs/batch``). The server stores exactly the
history it would store for one entry per state; the request is a third of the
size, and one request and one transaction replace two.

Fields equal to the API's defaults (no cache key, no tags, the state's default
name, an empty message, a zero count) are left out of the JSON.

A server from before ``previous_states`` and ``logs`` refuses such a body
(422 naming the unknown field); :meth:`ReportBatch.separate_bodies` gives the
older form, one entry per state and the lines apart, for that case.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from flowyard.sdk._states import StateType

__all__ = ["ReportBatch", "state_fields"]

# The API's default state names (flowyard.schemas.states.DEFAULT_NAMES), here to
# keep pydantic off the recorder's import path.
_DEFAULT_NAMES = {t: t.value.capitalize() for t in StateType}
_TYPES = {t: t.value for t in StateType}


def state_fields(
    type_: StateType, name: str, message: str | None, timestamp: datetime
) -> dict[str, Any]:
    """A state as ``previous_states`` item fields: defaults left out."""
    fields: dict[str, Any] = {"type": _TYPES[type_], "timestamp": timestamp.isoformat()}
    name = name[:50]
    if name and name != _DEFAULT_NAMES[type_]:
        fields["name"] = name
    if message:
        fields["message"] = message[:20_000]
    return fields


class ReportBatch:
    """Task-run states (coalesced per task run) and log lines waiting to be sent."""

    __slots__ = ("_entries", "_logs", "states")

    def __init__(self) -> None:
        self._entries: dict[uuid.UUID, dict[str, Any]] = {}
        self._logs: list[dict[str, Any]] = []
        # States and lines held: what the API's per-batch limits count.
        self.states = 0

    def __len__(self) -> int:
        return self.states + len(self._logs)

    def add_state(
        self,
        task_run_id: uuid.UUID,
        task_run: dict[str, Any],
        state: dict[str, Any],
        run_count: int,
        cache_key: str | None,
    ) -> None:
        """Add a task run's new state.

        ``task_run`` holds the entry's fixed fields (id, flow run, names, tags);
        ``state`` is from :func:`state_fields`.
        """
        self.states += 1
        entry = self._entries.get(task_run_id)
        if entry is None:
            entry = self._entries[task_run_id] = dict(task_run)
        else:
            entry.setdefault("previous_states", []).append(_own_state(entry))
        entry["state_type"] = state["type"]
        entry["timestamp"] = state["timestamp"]
        for key, field in (("name", "state_name"), ("message", "state_message")):
            if key in state:
                entry[field] = state[key]
            else:
                entry.pop(field, None)
        if run_count:
            entry["run_count"] = run_count
        else:
            entry.pop("run_count", None)
        if cache_key:
            entry["cache_key"] = cache_key[:200]
        else:
            entry.pop("cache_key", None)

    def add_log(self, line: dict[str, Any]) -> None:
        self._logs.append(line)

    def body(self) -> dict[str, Any]:
        """The request body: only the parts that hold something."""
        body: dict[str, Any] = {}
        if self._entries:
            body["task_runs"] = list(self._entries.values())
        if self._logs:
            body["logs"] = self._logs
        return body

    def separate_bodies(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The older form: one task-run entry per state, and the log lines apart."""
        task_runs: list[dict[str, Any]] = []
        for entry in self._entries.values():
            fixed = {k: v for k, v in entry.items() if k not in _OWN_STATE_KEYS}
            for earlier in entry.get("previous_states", ()):
                flat = {**fixed, "state_type": earlier["type"], "timestamp": earlier["timestamp"]}
                if "name" in earlier:
                    flat["state_name"] = earlier["name"]
                if "message" in earlier:
                    flat["state_message"] = earlier["message"]
                task_runs.append(flat)
            task_runs.append({k: v for k, v in entry.items() if k != "previous_states"})
        return task_runs, self._logs

    def clear(self) -> None:
        self._entries = {}
        self._logs = []
        self.states = 0


_OWN_STATE_KEYS = frozenset(
    {
        "state_type",
        "state_name",
        "state_message",
        "timestamp",
        "run_count",
        "cache_key",
        "previous_states",
    }
)


def _own_state(entry: dict[str, Any]) -> dict[str, Any]:
    """An entry's current state as a ``previous_states`` item."""
    state: dict[str, Any] = {"type": entry["state_type"], "timestamp": entry["timestamp"]}
    if "state_name" in entry:
        state["name"] = entry["state_name"]
    if "state_message" in entry:
        state["message"] = entry["state_message"]
    return state
