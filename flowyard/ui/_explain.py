"""Why a run ended badly, in plain words, with what to do about it.

The execution plane records precise crash reasons ("out of memory: limit
2 GiB reached (peak 2 GiB)"); a person reading a run page wants to know
what happened and what to change. Each rule matches the start of a reason
and adds that. Unknown reasons are still shown, unchanged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from flowyard.schemas.states import StateType


@dataclass(frozen=True)
class Explanation:
    headline: str
    advice: str
    detail: str


_RULES: tuple[tuple[re.Pattern[str], str, str], ...] = (
    (
        re.compile(r"out of memory", re.I),
        "The run used all the memory it was allowed, so it was stopped.",
        "Give it more with the memory_gib job variable (up to the pool's policy), "
        "or make the flow hold less in memory at once.",
    ),
    (
        re.compile(r"exceeded the maximum run time", re.I),
        "The run took longer than its maximum run time, so it was stopped.",
        "Raise max_run_seconds in the job variables (up to the pool's policy), "
        "or split the work into shorter runs.",
    ),
    (
        re.compile(r"out of disk space|storage limit", re.I),
        "The run filled the disk space of its work directory.",
        "Ask for more with the storage_gib job variable, or write less to disk.",
    ),
    (
        re.compile(r"process limit", re.I),
        "The run started more processes than it is allowed.",
        "Use fewer worker processes or threads in the flow.",
    ),
    (
        re.compile(r"heartbeat", re.I),
        "The server stopped hearing from the run.",
        "The machine or the process running it went away. Retry the run; if it keeps "
        "happening, check the server's log.",
    ),
    (
        re.compile(r"sandbox (failed to start|could not start)|isolation", re.I),
        "The platform could not start the run's sandbox. This is a server problem, "
        "not a problem in your code.",
        "Run `flowyard doctor` on the server to see which isolation feature is missing.",
    ),
    (
        re.compile(r"killed by signal", re.I),
        "The run's process was killed from outside the flow.",
        "Something on the server stopped it (an operator, or the system under pressure). "
        "Retry the run.",
    ),
    (
        re.compile(r"exited with code", re.I),
        "The run's process ended without reporting how the flow finished.",
        "The Python process probably crashed or exited early (sys.exit, os._exit, a "
        "segfault in a native library). The last lines of its output are in the logs.",
    ),
    (
        re.compile(r"stopped on request|cancel", re.I),
        "The run was stopped on request.",
        "Retry it to run it again.",
    ),
    (
        re.compile(r"execution pipeline error", re.I),
        "The platform hit an unexpected error while running this flow.",
        "Retry the run; the server's log has the details.",
    ),
)


def explain(state: StateType, message: str, crash_reason: str | None) -> Explanation | None:
    """Words for a FAILED or CRASHED run (or any run with a crash reason); None otherwise."""
    reason = (crash_reason or "").strip()
    if state is StateType.FAILED and not reason:
        return Explanation(
            "The flow's code raised an error.",
            "The traceback is in the logs below (filter by ERROR). Fix the code or its "
            "inputs, then retry.",
            message,
        )
    if state is not StateType.CRASHED and not reason:
        return None
    reason = reason or message
    for pattern, headline, advice in _RULES:
        if pattern.search(reason):
            return Explanation(headline, advice, reason)
    return Explanation(
        "The platform ended the run before the flow finished.",
        "Retry the run; if it happens again, the logs and the server's log say more.",
        reason or "no reason was recorded",
    )
