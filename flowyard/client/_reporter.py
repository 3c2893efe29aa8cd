"""The recorder: the engine's events sent to the API in batches, from one thread.

:class:`ServerReporter` batches task-run states and log lines together (see
``_batches``); a flow-run state ends the batch before it, in the same request
(one of its own when nothing precedes it). Events are sent in the order they
were emitted, so a flow run exists before its task runs and its final state
lands after them. A failure never fails a flow: the
first error of each kind is logged with its reason, and ``flush`` returns once
everything emitted is sent or given up on. :mod:`.sdk_integration` installs it.

The thread shares the GIL with the flow's threads, and a local server shares
their CPUs, so both sides are kept to little work per task run. Emitting is an
append to a deque, with no lock. The thread waits for a batch worth sending
(or the interval) unless a flow-run state or a flush is queued: a request costs
the server a few milliseconds whatever its size. While one batch is stored it
builds the next. ``flush`` queues a mark and waits until the thread has sent
everything before it.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, TypeGuard

from flowyard.client._batches import (
    ReportBatch,
    json_array,
    state_text,
)
from flowyard.client._errors import ApiError, ClientError
from flowyard.client._report_wire import (
    TaskInfo,
    always,
    jsonable,
    log_line,
    predates_batch_states,
    predates_batches,
    state_body,
)
from flowyard.client._wire import WireClient
from flowyard.sdk import _reporting as rep
from flowyard.sdk._states import StateType

logger = logging.getLogger("flowyard.sdk.server")

# How long events may wait before they are sent, how many make a batch worth
# sending at once, and the most one request carries. Each request costs the
# server a few milliseconds whatever its size (a local server shares the
# flow's CPUs): a flow whose server keeps up sends fewer, larger batches
# rather than one per handful of task runs.
FLUSH_INTERVAL = 0.1
BATCH_TARGET = 1_000
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


_BATCH_PATH = "/task-runs/batch"


class _Flushed:
    """A mark in the queue: set once every event before it is sent (or given up on)."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


class ServerReporter:
    """Sends the engine's events to the API from one background thread, in order."""

    def __init__(
        self,
        client: WireClient,
        *,
        interval: float = FLUSH_INTERVAL,
        durable: bool = False,
        existing: uuid.UUID | None = None,
    ) -> None:
        self._client = client
        self._durable = durable
        # The flow run of a managed run: the server made it and moved it to PENDING,
        # so its start is not a create (one request fewer for every managed run).
        self._existing = existing
        self._interval = interval
        # Events, and flush marks, in emission order. Emitting appends without a
        # lock (a deque's append is atomic): the lock is for waking the thread.
        self._queue: deque[rep.Event | _Flushed] = deque()
        self._cond = threading.Condition()
        # Something queued must go out now (a flow-run state, a flush): no waiting
        # for a fuller batch. Set and cleared under the condition's lock.
        self._urgent = False
        self._nudged = False
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        # Task runs by the integer of their id (it hashes in C; a UUID does not).
        self._tasks: dict[int, TaskInfo] = {}
        # Flow runs known to exist on the server, with their last known state type.
        self._flow_states: dict[uuid.UUID, StateType] = {}
        self._pending_create: dict[uuid.UUID, rep.FlowRunStarted] = {}
        self._warned: set[str] = set()
        self._closed = False
        # The API answered that it predates combined batches: send the older way.
        self._separate = False
        # The API answered that it predates flow-run states in batches: one request each.
        self._states_apart = False
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
        queue = self._queue
        queue.append(event)
        if self._thread is None:
            self._start()
        # Flow-run states go out at once (the UI and CLI show them); the rest
        # waits for a batch or the interval.
        if event.__class__ is rep.StateChanged and event.run_kind == "flow":
            with self._cond:
                self._urgent = True
                self._cond.notify_all()
        elif len(queue) >= BATCH_TARGET and not self._nudged:
            with self._cond:
                self._nudged = True  # once until the thread takes them, not per event
                self._cond.notify_all()

    def flush(self, timeout: float | None = None) -> None:
        """Return once everything emitted so far is sent (or ``timeout`` passed)."""
        if timeout is None:
            timeout = DURABLE_SECONDS if self._durable else FLUSH_TIMEOUT
        if self._thread is None and not self._queue:
            return  # nothing was ever emitted
        deadline = time.monotonic() + timeout
        mark = _Flushed()
        self._queue.append(mark)
        if self._thread is None:
            self._start()
        with self._cond:
            self._urgent = True
            self._cond.notify_all()
        while not mark.done.wait(min(max(0.0, deadline - time.monotonic()), 0.5)):
            thread = self._thread
            if time.monotonic() >= deadline or thread is None or not thread.is_alive():
                left = sum(1 for e in list(self._queue) if not isinstance(e, _Flushed))
                self._warn_once(
                    "flush",
                    "gave up waiting for the API after %.0f s; %d events were not recorded",
                    timeout,
                    left,
                )
                return

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
        with self._start_lock:
            if self._thread is not None:
                return
            thread = threading.Thread(target=self._loop, name="flowyard-reporter", daemon=True)
            thread.start()
            self._thread = thread
        import atexit

        atexit.register(self.close)

    # The background thread.

    def _loop(self) -> None:
        while True:
            if self._alive and time.monotonic() >= self._next_beat:
                self._beat()
            with self._cond:
                if not self._closed and not self._urgent and len(self._queue) < BATCH_TARGET:
                    self._cond.wait(self._interval)
                if not self._queue:
                    if self._closed:
                        return
                    continue
                self._urgent = self._nudged = False
            # Take everything queued so far (emitters keep appending meanwhile).
            queue = self._queue
            events = [queue.popleft() for _ in range(len(queue))]
            try:
                self._send(events)
            except Exception as exc:  # never let the thread die: later flushes would hang
                self._warn_once("send", "could not record %d events: %s", len(events), exc)
            for event in events:
                if isinstance(event, _Flushed):
                    event.done.set()

    def _send(self, events: Sequence[rep.Event | _Flushed]) -> None:
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
                    self._flow_state(batch, event.run_id, event.state)
            elif isinstance(event, rep.LogEmitted):
                if sent_early:
                    sent_early -= 1
                elif event.flow_run_id is not None:
                    batch.add_log(self._log_line(event))
            elif isinstance(event, rep.TaskRunCreated):
                self._task_created(event)
            elif isinstance(event, rep.FlowRunStarted):
                if event.flow_run_id == self._existing:
                    self._flow_states.setdefault(event.flow_run_id, StateType.PENDING)
                else:
                    self._post(batch)
                    self._pending_create[event.flow_run_id] = event
            if batch.size >= BATCH_SIZE:
                self._post(batch)
        rounds = 0
        while batch.size:
            # While the server stores this batch, build the next from what was emitted
            # since; a few rounds, then back to the loop (heartbeats, flush marks).
            ahead = ReportBatch()
            take = functools.partial(self._take_ahead, ahead) if rounds < AHEAD_ROUNDS else None
            self._post(batch, meanwhile=take)
            batch = ahead
            rounds += 1
            if take is not None and batch.size and self._wait_for_more(batch.size):
                self._take_ahead(batch)
        for run_id in list(self._pending_create):
            self._create(self._pending_create.pop(run_id), None)

    def _wait_for_more(self, held: int) -> bool:
        """Wait (up to the interval) for a fuller batch than ``held`` events; whether any came.

        Not when something must go out now, or the batch is full enough already.
        """
        with self._cond:
            if self._urgent or self._closed or held + len(self._queue) >= BATCH_TARGET:
                return bool(self._queue)
            self._cond.wait(self._interval)
            return bool(self._queue)

    def _lines_after(
        self, events: Sequence[rep.Event | _Flushed], position: int, batch: ReportBatch
    ) -> int:
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

    def _goes_early(self, event: rep.Event | _Flushed) -> TypeGuard[rep.LogEmitted]:
        """A log line of a flow run the server has: it may be sent before a state before it."""
        return isinstance(event, rep.LogEmitted) and event.flow_run_id in self._flow_states

    def _take_ahead(self, batch: ReportBatch) -> None:
        """Move task-run events and log lines emitted since into ``batch``, in order.

        Taking stops at anything else (a flow run's start or state must be sent
        after the batches before it; a flush mark is set once what precedes it
        is sent), and while a flow run awaits creation.
        """
        if self._pending_create or self._separate:
            return
        taken: list[rep.Event] = []
        queue = self._queue
        with self._cond:
            self._nudged = False
            while queue and len(taken) < BATCH_SIZE - batch.size:
                event = queue[0]
                if isinstance(event, (_Flushed, rep.FlowRunStarted)):
                    break
                if isinstance(event, rep.StateChanged) and event.run_kind != "task":
                    # A flow's last lines follow its final state: they may go before it.
                    while len(queue) > 1 and self._goes_early(line := queue[1]):
                        taken.append(line)
                        del queue[1]
                    break
                taken.append(event)
                queue.popleft()
        for event in taken:
            if isinstance(event, rep.StateChanged):
                self._task_state(batch, event)
            elif isinstance(event, rep.LogEmitted):
                if event.flow_run_id is not None:
                    batch.add_log(self._log_line(event))
            elif isinstance(event, rep.TaskRunCreated):
                self._task_created(event)

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
                    reraise=predates_batches,
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
            chunk = json_array(task_runs[start : start + BATCH_SIZE])
            self._call("task runs", _BATCH_PATH, f'{{"task_runs":{chunk}}}'.encode())
        if logs:
            self._call("logs", "/logs", f'{{"logs":{json_array(logs)}}}'.encode())

    def _beat(self) -> None:
        self._next_beat = time.monotonic() + HEARTBEAT_SECONDS
        # A run whose final state is on its way needs no heartbeat.
        ending = {
            e.run_id
            for e in list(self._queue)
            if isinstance(e, rep.StateChanged) and e.run_kind == "flow" and e.state.type in TERMINAL
        }
        for run_id in list(self._alive):
            if run_id not in ending:
                self._call("a heartbeat", f"/flow-runs/{run_id}/execution", {"heartbeat": True})

    def _run_text(self, flow_run_id: uuid.UUID) -> str:
        # Nearly every event names the same flow run as the one before: reuse its
        # text (str() of a UUID is slow on this path).
        flow_run, text = self._flow_text
        if flow_run_id is not flow_run:
            text = str(flow_run_id)
            self._flow_text = flow_run_id, text
        return text

    def _log_line(self, event: rep.LogEmitted) -> str:
        # A line's task run is, nearly always, the one of the last task state seen.
        flow_text = self._run_text(event.flow_run_id)  # type: ignore[arg-type]
        task_run = event.task_run_id
        task_text = None
        if task_run is not None:
            task_text = self._task_text[1] if task_run is self._task_text[0] else str(task_run)
        return log_line(event, flow_text, task_text)

    def _task_created(self, event: rep.TaskRunCreated) -> None:
        flow_run_id = event.flow_run_id
        flow_text = self._run_text(flow_run_id) if flow_run_id is not None else ""
        self._tasks[event.task_run_id.int] = TaskInfo(event, str(event.task_run_id), flow_text)

    def _task_state(self, batch: ReportBatch, event: rep.StateChanged) -> None:
        key = event.run_id.int
        info = self._tasks.get(key)
        if info is None:
            return  # a task called outside any flow run: nothing to attach it to
        head = info.head
        flow_run_id = event.flow_run_id
        if flow_run_id is not None and flow_run_id is not info.flow_run_id:
            if flow_run_id != info.flow_run_id:
                head = info.head_for(self._run_text(flow_run_id))
        elif info.flow_run_id is None:
            return
        state = event.state
        if state.type in TERMINAL:
            del self._tasks[key]
        self._task_text = event.run_id, info.text
        batch.add_state(
            key,
            head,
            state_text(state.type, state.name, state.message, state.timestamp),
            event.run_count,
            event.cache_key,
        )

    def _flow_state(self, batch: ReportBatch, run_id: uuid.UUID, state: rep.StateSnapshot) -> None:
        """Send the batch, then the flow run's state: in one request when the API takes it."""
        if state.type in TERMINAL:
            self._alive.discard(run_id)
        started = self._pending_create.pop(run_id, None)
        if started is not None:
            self._post(batch)
            self._create(started, state)
            return
        if self._flow_states.get(run_id) is state.type and state.type is StateType.PENDING:
            self._post(batch)
            return  # the server moved the run to PENDING itself (a managed run)
        if batch.size and not (self._states_apart or self._separate):
            result = self._post_with_state(batch, run_id, state)
        else:
            self._post(batch)
            result = self._post_state(run_id, state)
        self._state_verdict(run_id, state, result)

    def _post_state(self, run_id: uuid.UUID, state: rep.StateSnapshot) -> Any:
        return self._call("a flow run state", f"/flow-runs/{run_id}/state", state_body(state))

    def _post_with_state(
        self, batch: ReportBatch, run_id: uuid.UUID, state: rep.StateSnapshot
    ) -> Any:
        """The batch ending with the run's state; returns the verdict on the state."""
        text = json.dumps({"flow_run_id": str(run_id), **state_body(state)}, separators=(",", ":"))
        try:
            answer = self._call(
                "task runs, logs and a flow run state",
                _BATCH_PATH,
                batch.body(flow_run_state=text),
                reraise=always,
            )
        except ApiError as exc:
            # Refused as a whole, nothing of it stored: the batch alone, then the state alone
            # (what the API refuses of either, it refuses again, as it did before).
            if predates_batch_states(exc):
                logger.debug("the API predates flow-run states in batches; sending them apart")
                self._states_apart = True
                self._separate = self._separate or predates_batches(exc)
            self._post(batch)
            return self._post_state(run_id, state)
        batch.clear()
        return answer.get("flow_run_state") if isinstance(answer, dict) else None

    def _state_verdict(self, run_id: uuid.UUID, state: rep.StateSnapshot, result: Any) -> None:
        """Remember the run's state the API now holds; warn when it did not take ``state``."""
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
                "state": state_body(first),
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
