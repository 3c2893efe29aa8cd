"""The recorder: the engine's events sent to the API in batches, from one thread.

:class:`ServerReporter` batches task-run states and log lines together (see
``_batches``) and sends flow-run states one call each (they are few). Events
are sent in the order they were emitted, so a flow run exists before its task
runs and its final state lands after them. A failure never fails a flow: the
first error of each kind is logged with its reason, and ``flush`` returns once
everything emitted is sent or given up on. :mod:`.sdk_integration` installs it.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeGuard

from flowyard.client._batches import ReportBatch, state_fields
from flowyard.client._errors import ApiError, ClientError
from flowyard.client._wire import WireClient
from flowyard.sdk import _reporting as rep
from flowyard.sdk._states import StateType

if TYPE_CHECKING:
    pass

logger = logging.getLogger("flowyard.sdk.server")

# How long events may wait before they are sent, and how many make a batch
# worth sending at once.
FLUSH_INTERVAL = 0.1
BATCH_SIZE = 2_000
# How many batches in a row may be built while the one before is stored, before
# the recorder goes back to heartbeats and flush accounting.
AHEAD_ROUNDS = 4
# How long flush() waits for the API before giving up on what is left.
FLUSH_TIMEOUT = 30.0
# How long to stop sending after the API could not be reached at all.
OFFLINE_SECONDS = 30.0
# Inside a managed run, how long to hold events and keep trying when the API is
# unreachable (a server restart) before giving up on them.
DURABLE_SECONDS = 600.0
# How often a flow run recorded from a script says it is alive (the server
# marks an active run whose heartbeats stop CRASHED; a managed run's
# dispatcher beats for it instead).
HEARTBEAT_SECONDS = 10.0
TERMINAL = frozenset(
    {StateType.COMPLETED, StateType.FAILED, StateType.CANCELLED, StateType.CRASHED}
)


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


def _state(state: rep.StateSnapshot) -> dict[str, Any]:
    return {
        "type": state.type.value,
        "name": state.name[:50] or None,
        "message": (state.message or "")[:20_000],
        "timestamp": state.timestamp.isoformat(),
    }


class _TaskInfo:
    """What every report of a task run repeats: its id, flow run, names and tags, as sent."""

    __slots__ = ("fields", "flow_run_id")

    def __init__(self, event: rep.TaskRunCreated) -> None:
        self.flow_run_id = event.flow_run_id
        fields: dict[str, Any] = {"id": str(event.task_run_id)}
        if event.flow_run_id is not None:
            fields["flow_run_id"] = str(event.flow_run_id)
        fields["name"] = event.task_run_name[:200] or "task"
        if event.task_key:
            fields["task_key"] = event.task_key[:200]
        if event.dynamic_key:
            fields["dynamic_key"] = event.dynamic_key[:200]
        if event.tags:
            fields["tags"] = [t[:100] for t in sorted(event.tags)[:50]]
        self.fields = fields


_BATCH_PATH = "/task-runs/batch"


def _log_line(event: rep.LogEmitted, flow_run_id: str, task_run_id: str | None) -> dict[str, Any]:
    line: dict[str, Any] = {"flow_run_id": flow_run_id}
    if task_run_id is not None:
        line["task_run_id"] = task_run_id
    line["level"] = max(0, min(100, event.level))
    if event.logger_name:
        line["name"] = event.logger_name[:200]
    line["message"] = event.message[:1_000_000]
    line["timestamp"] = event.timestamp.isoformat()
    return line


def _predates_batches(exc: ApiError) -> bool:
    """Whether the API refused a combined batch for fields it does not know (an older server)."""
    return exc.status == 422 and any(
        e.message == "is not a known field"
        and (e.field == "logs" or e.field.endswith(".previous_states"))
        for e in exc.errors
    )


class ServerReporter:
    """Sends the engine's events to the API from one background thread, in order."""

    def __init__(
        self, client: WireClient, *, interval: float = FLUSH_INTERVAL, durable: bool = False
    ) -> None:
        self._client = client
        self._durable = durable
        self._interval = interval
        self._queue: deque[rep.Event] = deque()
        self._cond = threading.Condition()
        self._emitted = 0
        self._sent = 0
        # Events taken from the queue while a batch was on its way (see _take_ahead).
        self._taken_ahead = 0
        self._thread: threading.Thread | None = None
        self._tasks: dict[uuid.UUID, _TaskInfo] = {}
        # Flow runs known to exist on the server, with their last known state type.
        self._flow_states: dict[uuid.UUID, StateType] = {}
        self._pending_create: dict[uuid.UUID, rep.FlowRunStarted] = {}
        self._warned: set[str] = set()
        self._closed = False
        # The API answered that it predates combined batches: send the older way.
        self._separate = False
        # The text of the ids a log line most likely carries (see _log_line).
        self._flow_text: tuple[uuid.UUID | None, str] = (None, "")
        self._task_text: tuple[uuid.UUID | None, str] = (None, "")
        # After the API proved unreachable, events are dropped until this time
        # (monotonic), so that a flow never waits on a server that is down.
        self._offline_until = 0.0
        # Flow runs this process created and has not seen end: they get heartbeats.
        self._alive: set[uuid.UUID] = set()
        self._next_beat = time.monotonic() + HEARTBEAT_SECONDS

    # The engine's side: cheap and non-blocking.

    def emit(self, event: rep.Event) -> None:
        with self._cond:
            self._queue.append(event)
            self._emitted += 1
            if self._thread is None:
                self._start()
            # Flow-run states go out at once (the UI and CLI show them); the
            # rest waits for a batch or the interval.
            if len(self._queue) >= BATCH_SIZE or (
                event.__class__ is rep.StateChanged and event.run_kind == "flow"
            ):
                self._cond.notify_all()

    def flush(self, timeout: float | None = None) -> None:
        """Return once everything emitted so far is sent (or ``timeout`` passed)."""
        if timeout is None:
            timeout = DURABLE_SECONDS if self._durable else FLUSH_TIMEOUT
        deadline = time.monotonic() + timeout
        with self._cond:
            target = self._emitted
            self._cond.notify_all()
            while self._sent < target:
                left = deadline - time.monotonic()
                if left <= 0 or self._thread is None or not self._thread.is_alive():
                    self._warn_once(
                        "flush",
                        "gave up waiting for the API after %.0f s; %d events were not recorded",
                        timeout,
                        target - self._sent,
                    )
                    return
                self._cond.wait(min(left, 0.5))

    @property
    def client(self) -> WireClient:
        return self._client

    def close(self) -> None:
        if self._closed:
            return
        self.flush()
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="flowyard-reporter", daemon=True)
        self._thread.start()
        import atexit

        atexit.register(self.close)

    # The background thread.

    def _loop(self) -> None:
        while True:
            if self._alive and time.monotonic() >= self._next_beat:
                self._beat()
            with self._cond:
                if not self._queue and not self._closed:
                    self._cond.wait(self._interval)
                if not self._queue:
                    if self._closed:
                        return
                    continue
                events = list(self._queue)
                self._queue.clear()
            try:
                self._send(events)
            except Exception as exc:  # never let the thread die: later flushes would hang
                self._warn_once("send", "could not record %d events: %s", len(events), exc)
            with self._cond:
                self._sent += len(events) + self._taken_ahead
                self._taken_ahead = 0
                self._cond.notify_all()

    def _send(self, events: Sequence[rep.Event]) -> None:
        if time.monotonic() < self._offline_until:
            return
        batch = ReportBatch()
        sent_early = 0  # lines already sent with the batch before a flow-run state
        for position, event in enumerate(events):
            if isinstance(event, rep.StateChanged):
                if event.run_kind == "task":
                    self._task_state(batch, event)
                else:
                    sent_early = self._lines_after(events, position, batch)
                    self._post(batch)
                    self._flow_state(event.run_id, event.state)
            elif isinstance(event, rep.LogEmitted):
                if sent_early:
                    sent_early -= 1
                elif event.flow_run_id is not None:
                    batch.add_log(self._log_line(event))
            elif isinstance(event, rep.TaskRunCreated):
                self._tasks[event.task_run_id] = _TaskInfo(event)
            elif isinstance(event, rep.FlowRunStarted):
                self._post(batch)
                self._pending_create[event.flow_run_id] = event
            if batch.size >= BATCH_SIZE:
                self._post(batch)
        rounds = 0
        while batch.size:
            # While the server stores this batch, build the next from what was emitted
            # since; a few rounds, then back to the loop (heartbeats, flush accounting).
            ahead = ReportBatch()
            take = functools.partial(self._take_ahead, ahead) if rounds < AHEAD_ROUNDS else None
            self._post(batch, meanwhile=take)
            batch = ahead
            rounds += 1
        for run_id in list(self._pending_create):
            self._create(self._pending_create.pop(run_id), None)

    def _lines_after(self, events: Sequence[rep.Event], position: int, batch: ReportBatch) -> int:
        """Add the log lines that directly follow a flow-run state to the batch before it.

        A flow's last line ("Finished in state ...") follows its final state;
        sent with the batch that precedes the state, it costs no request of its
        own. Only lines of runs the server already has qualify. Returns how many.
        """
        count = 0
        for event in events[position + 1 :]:
            if not self._goes_early(event):
                break
            batch.add_log(self._log_line(event))
            count += 1
        return count

    def _goes_early(self, event: rep.Event) -> TypeGuard[rep.LogEmitted]:
        """A log line of a flow run the server has: it may be sent before a state before it."""
        return isinstance(event, rep.LogEmitted) and event.flow_run_id in self._flow_states

    def _take_ahead(self, batch: ReportBatch) -> None:
        """Move task-run events and log lines emitted since into ``batch``, in order.

        Taking stops at anything else (a flow run's start or state must be sent
        after the batches before it), and while a flow run awaits creation.
        """
        if self._pending_create or self._separate:
            return
        taken: list[rep.Event] = []
        with self._cond:
            queue = self._queue
            while queue and len(taken) < BATCH_SIZE - batch.size:
                event = queue[0]
                if isinstance(event, rep.FlowRunStarted):
                    break
                if isinstance(event, rep.StateChanged) and event.run_kind != "task":
                    # A flow's last lines follow its final state: they may go before it.
                    while len(queue) > 1 and self._goes_early(queue[1]):
                        taken.append(queue[1])
                        del queue[1]
                    break
                taken.append(queue.popleft())
            self._taken_ahead += len(taken)
        for event in taken:
            if isinstance(event, rep.StateChanged):
                self._task_state(batch, event)
            elif isinstance(event, rep.LogEmitted):
                if event.flow_run_id is not None:
                    batch.add_log(self._log_line(event))
            elif isinstance(event, rep.TaskRunCreated):
                self._tasks[event.task_run_id] = _TaskInfo(event)

    def _post(self, batch: ReportBatch, meanwhile: Callable[[], None] | None = None) -> None:
        """Send the batch's task-run states and log lines in one request, then empty it."""
        if not batch.size:
            return
        if self._separate:
            self._post_separately(batch)
        else:
            try:
                self._call(
                    "task runs and logs",
                    _BATCH_PATH,
                    batch.body(),
                    reraise=_predates_batches,
                    meanwhile=meanwhile,
                )
            except ApiError:
                logger.debug("the API predates combined batches; sending task runs and logs apart")
                self._separate = True
                self._post_separately(batch)
        batch.clear()

    def _post_separately(self, batch: ReportBatch) -> None:
        task_runs, logs = batch.separate_bodies()
        for start in range(0, len(task_runs), BATCH_SIZE):
            self._call(
                "task runs", _BATCH_PATH, {"task_runs": task_runs[start : start + BATCH_SIZE]}
            )
        if logs:
            self._call("logs", "/logs", {"logs": logs})

    def _beat(self) -> None:
        self._next_beat = time.monotonic() + HEARTBEAT_SECONDS
        with self._cond:  # a run whose final state is on its way needs no heartbeat
            ending = {
                e.run_id
                for e in self._queue
                if isinstance(e, rep.StateChanged)
                and e.run_kind == "flow"
                and e.state.type in TERMINAL
            }
        for run_id in list(self._alive):
            if run_id not in ending:
                self._call("a heartbeat", f"/flow-runs/{run_id}/execution", {"heartbeat": True})

    def _log_line(self, event: rep.LogEmitted) -> dict[str, Any]:
        # A line's ids are, nearly always, those of the last line and the last task
        # state seen: reuse their text (str() of a UUID is slow on this path).
        flow_run, flow_text = self._flow_text
        if event.flow_run_id is not flow_run:
            self._flow_text = flow_run, flow_text = event.flow_run_id, str(event.flow_run_id)
        task_run = event.task_run_id
        task_text = None
        if task_run is not None:
            task_text = self._task_text[1] if task_run is self._task_text[0] else str(task_run)
        return _log_line(event, flow_text, task_text)

    def _task_state(self, batch: ReportBatch, event: rep.StateChanged) -> None:
        info = self._tasks.get(event.run_id)
        if info is None:
            return  # a task called outside any flow run: nothing to attach it to
        fields = info.fields
        flow_run_id = event.flow_run_id
        if flow_run_id is not None and flow_run_id is not info.flow_run_id:
            if flow_run_id != info.flow_run_id:
                fields = {**fields, "flow_run_id": str(flow_run_id)}
        elif info.flow_run_id is None:
            return
        state = event.state
        if state.type in TERMINAL:
            self._tasks.pop(event.run_id, None)
        self._task_text = event.run_id, info.fields["id"]
        batch.add_state(
            event.run_id,
            fields,
            state_fields(state.type, state.name, state.message, state.timestamp),
            event.run_count,
            event.cache_key,
        )

    def _flow_state(self, run_id: uuid.UUID, state: rep.StateSnapshot) -> None:
        if state.type in TERMINAL:
            self._alive.discard(run_id)
        started = self._pending_create.pop(run_id, None)
        if started is not None:
            self._create(started, state)
            return
        if self._flow_states.get(run_id) is state.type and state.type is StateType.PENDING:
            return  # the server moved the run to PENDING itself (a managed run)
        result = self._call("a flow run state", f"/flow-runs/{run_id}/state", _state(state))
        if not isinstance(result, dict):
            return
        if result.get("status") == "ACCEPT":
            self._flow_states[run_id] = state.type
            return
        current = result.get("state") or {}
        if current.get("type") in StateType.__members__:
            self._flow_states[run_id] = StateType(current["type"])
        logger.warning(
            "The server did not accept flow run %s's %s state: %s",
            run_id,
            state.type.value,
            result.get("reason") or result.get("status"),
        )

    def _create(self, event: rep.FlowRunStarted, state: rep.StateSnapshot | None) -> None:
        first = state or rep.StateSnapshot(StateType.PENDING, "Pending", None, event.timestamp)
        parent = event.parent_task_run_id
        run = self._call(
            "a flow run",
            "/flow-runs",
            {
                "id": str(event.flow_run_id),
                "flow_name": event.flow_name[:200],
                "name": event.flow_run_name[:200],
                "parameters": jsonable(event.parameters),
                "tags": [t[:100] for t in sorted(event.tags)],
                "parent_task_run_id": str(parent) if parent else None,
                "state": _state(first),
            },
        )
        if isinstance(run, dict) and run.get("state_type") in StateType.__members__:
            self._flow_states[event.flow_run_id] = StateType(run["state_type"])
            if not self._durable and not run.get("deployment_id"):
                self._alive.add(event.flow_run_id)
                self._next_beat = 0.0  # the first heartbeat now: the run is watched from here

    def _call(
        self,
        what: str,
        path: str,
        body: Any,
        *,
        reraise: Callable[[ApiError], bool] | None = None,
        meanwhile: Callable[[], None] | None = None,
    ) -> Any:
        if time.monotonic() < self._offline_until:
            return None
        give_up = time.monotonic() + DURABLE_SECONDS
        while True:
            try:
                return self._client.post(path, body, meanwhile=meanwhile)
            except ApiError as exc:
                if reraise is not None and reraise(exc):
                    raise
                self._warn_once(f"api:{what}:{exc.status}", "could not record %s: %s", what, exc)
                return None
            except ClientError as exc:
                if self._durable and time.monotonic() < give_up:
                    self._warn_once(
                        "holding",
                        "the API is unreachable (%s); holding events until it answers",
                        exc,
                    )
                    time.sleep(1.0)
                    continue
                self._offline_until = time.monotonic() + OFFLINE_SECONDS
                self._warn_once(
                    "unreachable",
                    "could not record %s: %s; not recording for the next %.0f s",
                    what,
                    exc,
                    OFFLINE_SECONDS,
                )
                return None

    def _warn_once(self, key: str, message: str, *args: object) -> None:
        if key in self._warned:
            return
        self._warned.add(key)
        logger.warning("Flowyard server: " + message, *args)


# -- variables, secrets, results --------------------------------------------------------
