"""Run loggers, console output and ``log_prints``.

Set up lazily on first use, so that ``import flowyard`` touches no logging
configuration. Records of run loggers carry the run's ids and names as
attributes (as in Prefect: ``flow_run_id``, ``task_run_name``...) and the
run's reporter, which receives every record that reaches the run loggers.

The console handler sits on the ``flowyard`` logger, which then stops
propagating to the root logger; a user who wants Flowyard's records in their
own logging setup sets ``FLOWYARD_LOGGING_TO_CONSOLE=false`` and they
propagate as usual. (Prefect instead installs its handler on the root logger;
changing the root logger of a user's process was the choice rejected here.)
"""

from __future__ import annotations

import builtins
import collections
import io
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from flowyard.sdk._context import flow_run_context, task_run_context
from flowyard.sdk._errors import MissingContextError
from flowyard.sdk._reporting import LogEmitted
from flowyard.sdk._tracebacks import format_exception

if TYPE_CHECKING:
    from flowyard.sdk._context import FlowRunContext, TaskRunContext
    from flowyard.sdk._reporting import Reporter

__all__ = ["disable_run_logger", "get_logger", "get_run_logger", "patch_print"]

ROOT_LOGGER = "flowyard"
FLOW_RUN_LOGGER = "flowyard.flow_runs"
TASK_RUN_LOGGER = "flowyard.task_runs"
ENGINE_LOGGER = "flowyard.engine"

RunLogger = logging.LoggerAdapter[logging.Logger]

_setup_lock = threading.Lock()
_configured = False


class _ConsoleFormatter(logging.Formatter):
    """``12:00:00.123 | INFO    | Task run 'add-1a2' - message`` (Prefect's layout)."""

    _second = -1
    _second_text = ""

    def format(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        if second != self._second:
            self._second_text = time.strftime("%H:%M:%S", time.localtime(second))
            self._second = second
        attrs = record.__dict__
        if task_run_name := attrs.get("task_run_name"):
            origin = f"Task run {task_run_name!r}"
        elif flow_run_name := attrs.get("flow_run_name"):
            origin = f"Flow run {flow_run_name!r}"
        else:
            origin = record.name
        text = (
            f"{self._second_text}.{int(record.msecs):03d} | {record.levelname:<7} | "
            f"{origin} - {record.getMessage()}"
        )
        if record.exc_info:
            text = f"{text}\n{self.formatException(record.exc_info)}"
        return text

    def formatException(self, ei: Any) -> str:
        return format_exception(ei)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time of the record."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)
        self._pending: collections.deque[str] = collections.deque()

    @property  # type: ignore[override]
    def stream(self) -> object:
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:
        del value  # always follow sys.stderr

    def handle(self, record: logging.LogRecord) -> bool:
        # Format outside the handler's lock, and never wait for it: a thread that
        # finds another writing leaves its line to that one, which writes every
        # line queued before it lets go (and looks again after). With many task
        # threads logging at once they no longer queue on the lock, each waking
        # the next through the GIL; lines still come out in the order queued.
        if not self.filter(record):
            return False
        try:
            line = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return True
        pending = self._pending
        lock: threading.RLock = self.lock  # type: ignore[assignment]
        if lock.acquire(blocking=False):
            if pending:  # lines queued before this one go first
                pending.append(line)
                line = self._drain()
            self._write(record, line)
        else:
            pending.append(line)
        # A line queued just as the writer let go would wait for the next record.
        while pending and lock.acquire(blocking=False):
            self._write(record, self._drain())
        return True

    def _drain(self) -> str:
        pending = self._pending
        return "".join([pending.popleft() for _ in range(len(pending))])

    def _write(self, record: logging.LogRecord, text: str) -> None:
        """Write and flush ``text``, then let go of the lock (taken by the caller)."""
        try:
            stream = sys.stderr
            stream.write(text)
            stream.flush()
        except Exception:
            self.handleError(record)
        finally:
            self.lock.release()  # type: ignore[union-attr]


class _ReporterHandler(logging.Handler):
    """Forwards run-logger records to the reporter attached to the record."""

    def emit(self, record: logging.LogRecord) -> None:
        reporter: Reporter | None = record.__dict__.get("reporter")
        if reporter is None:
            return
        message = record.getMessage()
        if record.exc_info:
            message = f"{message}\n{format_exception(record.exc_info)}"
        attrs = record.__dict__
        try:
            reporter.emit(
                LogEmitted(  # positional: faster for a frozen dataclass, once per line
                    attrs.get("flow_run_id"),
                    attrs.get("task_run_id"),
                    record.levelno,
                    record.name,
                    message,
                    datetime.fromtimestamp(record.created, UTC),
                )
            )
        except Exception:
            self.handleError(record)


def _env_flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() not in ("0", "false", "no", "off", "")


def ensure_configured() -> None:
    """Configure Flowyard's loggers once (console handler, level, reporter forwarding)."""
    global _configured
    if _configured:
        return
    with _setup_lock:
        if _configured:
            return
        root = logging.getLogger(ROOT_LOGGER)
        level = os.environ.get("FLOWYARD_LOGGING_LEVEL", "INFO").strip().upper()
        root.setLevel(logging.getLevelName(level) if level.isalpha() else int(level))
        if _env_flag("FLOWYARD_LOGGING_TO_CONSOLE", True):
            console = _StderrHandler()
            console.setFormatter(_ConsoleFormatter())
            root.addHandler(console)
            root.propagate = False
        forwarder = _ReporterHandler()
        logging.getLogger(FLOW_RUN_LOGGER).addHandler(forwarder)
        logging.getLogger(TASK_RUN_LOGGER).addHandler(forwarder)
        _configured = True


class _RunLoggerAdapter(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Adds the run's attributes to every record, keeping any ``extra`` given per call."""

    def process(
        self, msg: object, kwargs: MutableMapping[str, object]
    ) -> tuple[object, MutableMapping[str, object]]:
        extra = kwargs.get("extra")
        if isinstance(extra, Mapping):
            kwargs["extra"] = {**(self.extra or {}), **extra}
        else:
            kwargs["extra"] = self.extra
        return msg, kwargs


def flow_run_attributes(context: FlowRunContext) -> dict[str, object]:
    """The attributes every record of a flow run carries."""
    run = context.flow_run
    return {
        "flow_run_id": run.id,
        "flow_run_name": run.name,
        "flow_name": run.flow_name,
        "task_run_id": None,
        "reporter": context.reporter,
    }


def task_run_attributes(context: TaskRunContext) -> dict[str, object]:
    """The attributes every record of a task run carries."""
    run = context.task_run
    parent = context.flow_run_context
    return {
        "task_run_id": run.id,
        "task_run_name": run.name,
        "task_name": run.task_name,
        "flow_run_id": run.flow_run_id,
        "flow_run_name": parent.flow_run.name if parent else None,
        "flow_name": parent.flow_run.flow_name if parent else None,
        "reporter": context.reporter,
    }


def flow_run_logger(context: FlowRunContext) -> RunLogger:
    """The logger of a flow run (created once per run)."""
    if context.logger is None:
        ensure_configured()
        context.logger = _RunLoggerAdapter(
            logging.getLogger(FLOW_RUN_LOGGER), flow_run_attributes(context)
        )
    return context.logger


def task_run_logger(context: TaskRunContext) -> RunLogger:
    """The logger of a task run (created on first use)."""
    if context.logger is None:
        ensure_configured()
        context.logger = _RunLoggerAdapter(
            logging.getLogger(TASK_RUN_LOGGER), task_run_attributes(context)
        )
    return context.logger


def emit(
    logger: logging.Logger,
    level: int,
    message: str,
    attributes: Mapping[str, object],
    exc_info: BaseException | None = None,
) -> None:
    """Log an engine message with run attributes.

    Bypasses ``Logger.log``'s search of the call stack for the caller's file
    and line, which the console format does not show and which would be the
    most expensive part of a trivial task run. The caller checks the level.
    """
    error = (type(exc_info), exc_info, exc_info.__traceback__) if exc_info is not None else None
    record = logger.makeRecord(
        logger.name, level, "flowyard", 0, message, (), error, extra=attributes
    )
    logger.handle(record)


_disabled_depth = 0


def get_run_logger(
    context: FlowRunContext | TaskRunContext | None = None, **extra: object
) -> RunLogger | logging.Logger:
    """The logger of the current task run, else of the current flow run.

    Its records go to the console and, with a server, to the run's logs.
    Extra keyword arguments are added to every record.

    Raises:
        MissingContextError: outside a flow or task run (unless inside
            ``disable_run_logger()``, where a disabled logger is returned).
    """
    from flowyard.sdk._context import FlowRunContext

    ctx = context or task_run_context.get() or flow_run_context.get()
    if ctx is None:
        if _disabled_depth:
            null = logging.getLogger("flowyard.null")
            null.disabled = True
            return null
        raise MissingContextError("There is no active flow or task run context.")
    logger = flow_run_logger(ctx) if isinstance(ctx, FlowRunContext) else task_run_logger(ctx)
    if extra:
        return _RunLoggerAdapter(logger.logger, {**(logger.extra or {}), **extra})
    return logger


def get_logger(name: str | None = None) -> logging.Logger:
    """A Flowyard logger (``flowyard`` or ``flowyard.<name>``), configured on first use."""
    ensure_configured()
    return logging.getLogger(f"{ROOT_LOGGER}.{name}" if name else ROOT_LOGGER)


@contextmanager
def disable_run_logger() -> Iterator[None]:
    """Silence run loggers, and let ``get_run_logger()`` work outside a run (for tests)."""
    global _disabled_depth
    flow_logger = logging.getLogger(FLOW_RUN_LOGGER)
    task_logger = logging.getLogger(TASK_RUN_LOGGER)
    before = (flow_logger.disabled, task_logger.disabled)
    flow_logger.disabled = task_logger.disabled = True
    _disabled_depth += 1
    try:
        yield
    finally:
        _disabled_depth -= 1
        flow_logger.disabled, task_logger.disabled = before


_original_print = builtins.print
_print_lock = threading.Lock()
_print_users = 0


def _print_as_log(*args: object, **kwargs: object) -> None:
    ctx = task_run_context.get() or flow_run_context.get()
    target = kwargs.get("file")
    if ctx is None or not ctx.log_prints or (target is not None and target is not sys.stdout):
        _original_print(*args, **kwargs)  # type: ignore[call-overload]
        return
    buffer = io.StringIO()
    kwargs["file"] = buffer
    _original_print(*args, **kwargs)  # type: ignore[call-overload]
    get_run_logger(ctx).info(buffer.getvalue().rstrip())


@contextmanager
def patch_print() -> Iterator[None]:
    """While any run with ``log_prints`` is active, ``print`` in such runs becomes a log line.

    The replacement checks the current run on every call, so prints of other
    code (and of runs without ``log_prints``) still go to stdout.
    """
    global _print_users
    with _print_lock:
        _print_users += 1
        if _print_users == 1:
            builtins.print = _print_as_log
    try:
        yield
    finally:
        with _print_lock:
            _print_users -= 1
            if _print_users == 0 and builtins.print is _print_as_log:
                builtins.print = _original_print
