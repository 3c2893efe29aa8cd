"""Watching a run: its logs and state changes live, then an exit code from its end.

The follow endpoint (server-sent events) delivers both; it runs on a thread
that feeds a queue, so the main thread can honour `--timeout` and ask on
Ctrl-C whether to cancel the run.
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
import time
import uuid
from typing import Any

import typer

from flowyard.cli._common import client, local_time, state_style
from flowyard.sdk._logging import FLOW_RUN_LOGGER

TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
WAITING_NAMES = {"AwaitingConcurrency", "AwaitingQuota", "AwaitingResume", "AwaitingCapacity"}
_DONE = object()


def exit_code(state: str) -> int:
    return 0 if state == "COMPLETED" else 1


def _level(level: int) -> str:
    return logging.getLevelName(level) if isinstance(logging.getLevelName(level), str) else "LOG"


def _say_state(name: str, state_type: str, message: str) -> None:
    text = f"{state_type}" + (f" ({name})" if name and name.upper() != state_type else "")
    line = f"State: {text}" + (f": {message}" if message else "")
    if name in WAITING_NAMES:
        line = f"Waiting: {name}" + (f": {message}" if message else "")
    typer.secho(line, fg=state_style(state_type), bold=True)


def line_source(log: Any, run_name: str) -> str:
    """Who wrote a line, as the SDK's console says it: "Task run 'double-0'", "Flow run
    'calm-owl'", or the logger's name ("execution" for the platform's stage lines)."""
    if getattr(log, "task_run_name", None):
        return f"Task run {log.task_run_name!r}"
    if log.name == FLOW_RUN_LOGGER and log.task_run_id is None:
        return f"Flow run {run_name!r}"
    return log.name.rsplit(".", 1)[-1] if log.name.startswith("flowyard.") else str(log.name)


def watch_run(
    run_id: uuid.UUID, *, timeout: float | None, level: int | None = None, run_name: str = ""
) -> int:
    """Stream a run until it ends; returns the exit code (0 COMPLETED, 1 otherwise)."""
    api = client()
    run_name = run_name or api.read_flow_run(run_id).name
    events: queue.Queue[Any] = queue.Queue()
    failure: list[BaseException] = []

    def follow() -> None:
        try:
            for event in api.follow_logs(run_id, level=level):
                events.put(event)
        except BaseException as exc:
            failure.append(exc)
        finally:
            events.put(_DONE)

    threading.Thread(target=follow, name="follow-logs", daemon=True).start()
    deadline = None if timeout is None else time.monotonic() + timeout
    last_state = ""
    spinner = _Spinner()
    try:
        while True:
            wait = 0.2 if deadline is None else min(0.2, max(0.0, deadline - time.monotonic()))
            try:
                event = events.get(timeout=wait)
            except queue.Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    spinner.stop()
                    run = api.read_flow_run(run_id)
                    typer.secho(
                        f"Stopped watching after {timeout:g} s: the run is still "
                        f"{run.state_type.value}. Follow it with `flowyard flow-run logs "
                        f"{run_id} --follow`.",
                        err=True,
                    )
                    return 1
                spinner.tick(last_state)
                continue
            if event is _DONE:
                break
            spinner.stop()
            log = getattr(event, "log", None)
            if log is not None:
                typer.echo(
                    f"{local_time(log.timestamp)[11:]} | {_level(log.level):7} | "
                    f"{line_source(log, run_name)} - {log.message}"
                )
            else:
                last_state = event.type.value
                _say_state(event.name, last_state, event.message)
    except KeyboardInterrupt:
        spinner.stop()
        if sys.stdin.isatty() and typer.confirm("\nCancel the run?", default=False):
            api.cancel_flow_run(run_id)
            typer.echo(f"Cancelling flow run {run_id}.")
        else:
            typer.echo(f"\nStopped watching; the run goes on: flowyard flow-run inspect {run_id}")
        return 130
    spinner.stop()
    if failure:
        raise failure[0]
    run = api.read_flow_run(run_id)
    final = run.state_type.value
    if final != last_state:
        _say_state(run.state_name, final, run.state_message)
    typer.secho(
        f"Flow run {run.name!r} finished in state {final}.",
        fg=state_style(final),
        bold=True,
    )
    return exit_code(final) if final in TERMINAL else 1


class _Spinner:
    """A spinner on a terminal while nothing arrives; nothing when piped."""

    FRAMES = "|/-\\"

    def __init__(self) -> None:
        self._shown = False
        self._frame = 0
        self._tty = sys.stdout.isatty()

    def tick(self, state: str) -> None:
        if not self._tty:
            return
        self._frame = (self._frame + 1) % len(self.FRAMES)
        sys.stdout.write(f"\r{self.FRAMES[self._frame]} {state.lower() or 'waiting'}...")
        sys.stdout.flush()
        self._shown = True

    def stop(self) -> None:
        if self._shown:
            sys.stdout.write("\r\033[K")
            sys.stdout.flush()
            self._shown = False
