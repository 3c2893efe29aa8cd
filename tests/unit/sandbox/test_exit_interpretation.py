"""Telling bubblewrap's own failures from the run's exit status."""

from __future__ import annotations

from pathlib import Path

from flowyard.execution.sandbox._local_handle import _interpret, read_status
from flowyard.execution.sandbox._supervise import ExitStatus, exit_code_and_signal

KILLED = 9  # raw wait status of a process killed by SIGKILL
EXITED_1 = 1 << 8


def test_a_run_that_exited_keeps_its_code() -> None:
    assert _interpret(ExitStatus(3 << 8), {"child-pid": 7, "exit-code": 3}, "") == (3, None, None)


def test_a_run_killed_inside_the_sandbox_reads_as_that_signal() -> None:
    assert _interpret(ExitStatus(137 << 8), {"child-pid": 7, "exit-code": 137}, "") == (
        None,
        9,
        None,
    )


def test_bubblewrap_killed_from_outside_reads_as_the_signal() -> None:
    assert _interpret(ExitStatus(KILLED), {"child-pid": 7}, "") == (None, 9, None)


def test_bubblewrap_failing_before_the_command_is_a_setup_error_with_its_message() -> None:
    tail = "bwrap: Can't find source path /nonexistent: No such file or directory\n"
    code, sig, error = _interpret(ExitStatus(EXITED_1), {"child-pid": 7}, tail)
    assert (code, sig) == (1, None)
    assert error == "bwrap: Can't find source path /nonexistent: No such file or directory"


def test_a_failed_prelude_is_a_setup_error() -> None:
    tail = "Traceback...\nOSError: address in use\nflowyard: sandbox prelude failed\n"
    _, _, error = _interpret(ExitStatus(125 << 8), {"exit-code": 125}, tail)
    assert error == "flowyard: sandbox prelude failed"


def test_a_lost_exit_status_is_said_to_be_lost() -> None:
    assert _interpret(ExitStatus(None), {}, "")[2] == "the sandbox's exit status was lost"


def test_raw_wait_statuses_split_into_code_and_signal() -> None:
    assert exit_code_and_signal(EXITED_1) == (1, None)
    assert exit_code_and_signal(KILLED) == (None, 9)
    assert exit_code_and_signal(None) == (None, None)


def test_bubblewraps_status_documents_are_merged(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    path.write_text(
        '{ "child-pid": 12, "mnt-namespace": 4026532177 }\n{ "exit-code": 0 }\nnot json\n'
    )
    assert read_status(path) == {"child-pid": 12, "mnt-namespace": 4026532177, "exit-code": 0}
    assert read_status(path.with_name("missing.json")) == {}
