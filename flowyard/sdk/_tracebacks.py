"""Tracebacks that show the user's code, not the engine's.

A task that raises inside a flow leaves some twenty frames of the engine
(the flow's call, the task's call, its state, its result) around the two
lines that matter. Frames from the Flowyard package are dropped when they
lie before the last frame of other code, the user's; frames after it are
kept, since there the error was raised by Flowyard itself (a parameter
check, a result that could not be read), and a traceback of Flowyard's own
frames only is kept whole. ``FLOWYARD_FULL_TRACEBACKS=true`` keeps every
frame, for debugging Flowyard itself.
"""

from __future__ import annotations

import os
import traceback  # already imported by logging
import types

_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_FULL = os.environ.get("FLOWYARD_FULL_TRACEBACKS", "").lower() in {"1", "true", "yes", "on"}

ExcInfo = (
    tuple[type[BaseException], BaseException, types.TracebackType | None] | tuple[None, None, None]
)


def _ours(frame: traceback.FrameSummary) -> bool:
    return frame.filename.startswith(_PACKAGE)


def _trim(stack: traceback.StackSummary) -> traceback.StackSummary:
    last_user = max((i for i, frame in enumerate(stack) if not _ours(frame)), default=-1)
    if last_user < 0:
        return stack
    kept = [frame for frame in stack[:last_user] if not _ours(frame)]
    return type(stack).from_list([*kept, *stack[last_user:]])


def format_exception(exc_info: ExcInfo) -> str:
    """The exception and its causes as Python prints them, less the engine's frames."""
    if exc_info[1] is None:  # logged with exc_info=True outside an exception
        return "NoneType: None"
    error = traceback.TracebackException(type(exc_info[1]), exc_info[1], exc_info[2], compact=True)
    if not _FULL:
        seen: set[int] = set()
        pending = [error]
        while pending:  # the exception, its causes and contexts, and groups' members
            current = pending.pop()
            if id(current) in seen:
                continue
            seen.add(id(current))
            current.stack = _trim(current.stack)
            pending += [e for e in (current.__cause__, current.__context__) if e is not None]
            pending += getattr(current, "exceptions", None) or []
    return "".join(error.format()).rstrip("\n")
