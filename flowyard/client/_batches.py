"""What the run recorder sends in one request: task-run states and log lines.

A trivial task emits three states (PENDING, RUNNING, COMPLETED) and a log
line within microseconds, so most of a batch is several states of the same
task runs. They travel coalesced: one entry per task run holding its latest
state, with the states before it in ``previous_states``, and the log lines in
the same body (``POST /task-runs/batch``). The server stores exactly the
history it would store for one entry per state; the request is a third of the
size, and one request and one transaction replace two.

The body is written as JSON text piece by piece: a task run's fixed fields
(id, flow run, names, tags) once, when it is created, each state and line as
it comes. Building dicts for ``json.dumps`` cost the recorder thread more than
everything else it does, and that thread shares the GIL with the flow's.
Strings go through the standard library's JSON string encoder, so the text is
what ``json.dumps`` would write.

Fields equal to the API's defaults (no cache key, no tags, the state's default
name, an empty message, a zero count) are left out.

A batch may end with a flow run's state (``flow_run_state``): the server
proposes it once the rest is stored, so a flow's RUNNING or final state
costs no request of its own.

A server from before ``previous_states`` and ``logs`` refuses such a body
(422 naming the unknown field); :meth:`ReportBatch.separate_bodies` gives the
older form, one entry per state and the lines apart, for that case. One from
before ``flow_run_state`` gets the state in a request of its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from json.encoder import encode_basestring_ascii
from typing import NamedTuple

from flowyard.sdk._states import StateType

__all__ = ["ReportBatch", "StateText", "json_array", "json_text", "state_text", "task_run_head"]

# The API's default state names (flowyard.schemas.states.DEFAULT_NAMES), here to
# keep pydantic off the recorder's import path.
_DEFAULT_NAMES = {t: t.value.capitalize() for t in StateType}
_TYPES = {t: t.value for t in StateType}


def json_text(value: str) -> str:
    """``value`` as a JSON string (quoted and escaped, as ``json.dumps`` writes it)."""
    return encode_basestring_ascii(value)  # type: ignore[no-any-return]


def json_array(items: Iterable[str]) -> str:
    """Items already written as JSON, as a JSON array."""
    return "[" + ",".join(items) + "]"


def task_run_head(
    task_run_id: str,
    flow_run_id: str,
    name: str,
    task_key: str,
    dynamic_key: str,
    tags: Iterable[str],
) -> str:
    """The fixed fields every entry of a task run repeats, as JSON members (no braces)."""
    head = f'"id":"{task_run_id}","flow_run_id":"{flow_run_id}","name":{json_text(name[:200] or "task")}'
    if task_key:
        head += f',"task_key":{json_text(task_key[:200])}'
    if dynamic_key:
        head += f',"dynamic_key":{json_text(dynamic_key[:200])}'
    tags = sorted(tags)[:50]
    if tags:
        head += ',"tags":' + json_array(json_text(t[:100]) for t in tags)
    return head


class StateText(NamedTuple):
    """A state's fields as JSON text: its type, its time, and a name and message unless defaults."""

    type: str
    timestamp: str
    name: str | None
    message: str | None

    def item(self) -> str:
        """As an item of ``previous_states``."""
        text = f'{{"type":"{self.type}","timestamp":"{self.timestamp}"'
        if self.name is not None:
            text += ',"name":' + self.name
        if self.message is not None:
            text += ',"message":' + self.message
        return text + "}"

    def members(self) -> str:
        """As an entry's own state: members to follow the task run's head."""
        text = f',"state_type":"{self.type}","timestamp":"{self.timestamp}"'
        if self.name is not None:
            text += ',"state_name":' + self.name
        if self.message is not None:
            text += ',"state_message":' + self.message
        return text


def state_text(type_: StateType, name: str, message: str | None, timestamp: datetime) -> StateText:
    """A state as the API takes it: defaults left out."""
    name = name[:50]
    return StateText(
        _TYPES[type_],
        timestamp.isoformat(),
        json_text(name) if name and name != _DEFAULT_NAMES[type_] else None,
        json_text(message[:20_000]) if message else None,
    )


class _TaskRun:
    """One task run's part of a batch: what every entry repeats, and its states in order."""

    __slots__ = ("cache_key", "head", "run_count", "states")

    def __init__(self, head: str, state: StateText, run_count: int, cache_key: str | None) -> None:
        self.head = head
        self.states = [state]
        self.run_count = run_count
        self.cache_key = cache_key

    def entry(self, states: list[StateText], *, last: bool) -> str:
        """The entry for the last of ``states``, the others as its previous states."""
        *earlier, own = states
        text = "{" + self.head + own.members()
        if last:
            if self.run_count:
                text += f',"run_count":{self.run_count:d}'
            if self.cache_key:
                text += ',"cache_key":' + json_text(self.cache_key[:200])
        if earlier:
            text += ',"previous_states":' + json_array(s.item() for s in earlier)
        return text + "}"


class ReportBatch:
    """Task-run states (coalesced per task run) and log lines waiting to be sent."""

    __slots__ = ("_logs", "_task_runs", "size", "states")

    def __init__(self) -> None:
        # Task runs by the integer of their id (it hashes in C; a UUID does not).
        self._task_runs: dict[int, _TaskRun] = {}
        self._logs: list[str] = []
        # States and lines held (what the API's per-batch limits count), and states alone.
        self.size = 0
        self.states = 0

    def __len__(self) -> int:
        return self.size

    def add_state(
        self, task_run: int, head: str, state: StateText, run_count: int, cache_key: str | None
    ) -> None:
        """Add a task run's new state.

        ``task_run`` is the integer of its id, ``head`` its fixed fields (see
        :func:`task_run_head`), ``state`` from :func:`state_text`.
        """
        self.size += 1
        self.states += 1
        held = self._task_runs.get(task_run)
        if held is None:
            self._task_runs[task_run] = _TaskRun(head, state, run_count, cache_key)
        else:
            held.states.append(state)
            held.run_count = run_count
            held.cache_key = cache_key

    def add_log(self, line: str) -> None:
        """Add a log line, written as a JSON object."""
        self.size += 1
        self._logs.append(line)

    def body(self, flow_run_state: str | None = None) -> bytes:
        """The request body: only the parts that hold something.

        ``flow_run_state``, a JSON object, is the flow-run state the server
        proposes once the rest is stored.
        """
        parts = []
        if self._task_runs:
            entries = (t.entry(t.states, last=True) for t in self._task_runs.values())
            parts.append('"task_runs":' + json_array(entries))
        if self._logs:
            parts.append('"logs":' + json_array(self._logs))
        if flow_run_state is not None:
            parts.append('"flow_run_state":' + flow_run_state)
        return ("{" + ",".join(parts) + "}").encode()

    def separate_bodies(self) -> tuple[list[str], list[str]]:
        """The older form: one task-run entry per state, and the log lines apart."""
        task_runs: list[str] = []
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
