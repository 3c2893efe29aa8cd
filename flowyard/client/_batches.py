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


class _TaskRun:
    """One task run's part of a batch: what every entry repeats, and its states in order."""

    __slots__ = ("cache_key", "fields", "run_count", "states")

    def __init__(
        self, fields: dict[str, Any], state: dict[str, Any], run_count: int, cache_key: str | None
    ) -> None:
        self.fields = fields
        self.states = [state]
        self.run_count = run_count
        self.cache_key = cache_key

    def entry(self, states: list[dict[str, Any]], *, last: bool) -> dict[str, Any]:
        """The entry for the last of ``states``, the others as its previous states."""
        *earlier, own = states
        entry = dict(self.fields)
        entry["state_type"] = own["type"]
        entry["timestamp"] = own["timestamp"]
        if "name" in own:
            entry["state_name"] = own["name"]
        if "message" in own:
            entry["state_message"] = own["message"]
        if last:
            if self.run_count:
                entry["run_count"] = self.run_count
            if self.cache_key:
                entry["cache_key"] = self.cache_key[:200]
        if earlier:
            entry["previous_states"] = earlier
        return entry


class ReportBatch:
    """Task-run states (coalesced per task run) and log lines waiting to be sent."""

    __slots__ = ("_logs", "_task_runs", "size", "states")

    def __init__(self) -> None:
        self._task_runs: dict[uuid.UUID, _TaskRun] = {}
        self._logs: list[dict[str, Any]] = []
        # States and lines held (what the API's per-batch limits count), and states alone.
        self.size = 0
        self.states = 0

    def __len__(self) -> int:
        return self.size

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
        self.size += 1
        self.states += 1
        held = self._task_runs.get(task_run_id)
        if held is None:
            self._task_runs[task_run_id] = _TaskRun(task_run, state, run_count, cache_key)
        else:
            held.states.append(state)
            held.run_count = run_count
            held.cache_key = cache_key

    def add_log(self, line: dict[str, Any]) -> None:
        self.size += 1
        self._logs.append(line)

    def body(self) -> dict[str, Any]:
        """The request body: only the parts that hold something."""
        body: dict[str, Any] = {}
        if self._task_runs:
            body["task_runs"] = [t.entry(t.states, last=True) for t in self._task_runs.values()]
        if self._logs:
            body["logs"] = self._logs
        return body

    def separate_bodies(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The older form: one task-run entry per state, and the log lines apart."""
        task_runs: list[dict[str, Any]] = []
        for held in self._task_runs.values():
            count = len(held.states)
            for index, state in enumerate(held.states):
                task_runs.append(held.entry([state], last=index == count - 1))
        return task_runs, self._logs

    def clear(self) -> None:
        self._task_runs = {}
        self._logs = []
        self.size = 0
        self.states = 0
