"""Crash reasons and telemetry wording, as a user reads them."""

from __future__ import annotations

import pytest

from flowyard.execution.sandbox import Ending, GiB, Limits, MiB, format_bytes, format_duration
from flowyard.execution.sandbox._result import Observation, decide, signal_name, split_status


def seen(**changes: object) -> Observation:
    fields: dict[str, object] = {
        "limits": Limits(memory_bytes=512 * MiB, pids=64),
        "exit_code": 1,
        "signal": None,
    }
    fields.update(changes)
    return Observation(**fields)  # type: ignore[arg-type]


def test_out_of_memory_names_the_limit_and_the_peak() -> None:
    ending, reason = decide(
        seen(exit_code=None, signal=9, oom_killed=True, peak_memory_bytes=511 * MiB + 900 * 1024)
    )
    assert ending is Ending.OUT_OF_MEMORY
    assert reason == "out of memory: limit 512 MiB reached (peak 511.8 MiB)"


def test_a_run_past_its_deadline_names_the_maximum_run_time_in_hours() -> None:
    ending, reason = decide(
        seen(limits=Limits(), exit_code=None, signal=9, timed_out=True, oom_killed=True)
    )
    assert ending is Ending.TIMED_OUT
    assert reason == "exceeded the maximum run time of 24h"


def test_a_signal_is_named() -> None:
    assert decide(seen(exit_code=None, signal=9)) == (
        Ending.SIGNALED,
        "killed by signal 9 (SIGKILL)",
    )


def test_the_process_limit_is_named_with_its_value() -> None:
    assert decide(seen(exit_code=3, process_limit_hit=True)) == (
        Ending.PROCESS_LIMIT,
        "process limit reached (64)",
    )


def test_a_full_disk_names_the_storage_limit() -> None:
    ending, reason = decide(seen(limits=Limits(storage_bytes=GiB), storage_full=True))
    assert ending is Ending.STORAGE_FULL
    assert reason == "out of disk space: storage limit 1 GiB reached"


def test_a_plain_failure_names_the_exit_code() -> None:
    assert decide(seen(exit_code=3)) == (Ending.EXITED, "exited with code 3")


def test_success_has_no_reason_even_if_a_limit_was_touched() -> None:
    assert decide(seen(exit_code=0, oom_killed=True, process_limit_hit=True)) == (
        Ending.EXITED,
        None,
    )


def test_a_stop_on_request_wins_over_the_signal_it_caused() -> None:
    assert decide(seen(exit_code=None, signal=15, stopped=True)) == (
        Ending.STOPPED,
        "stopped on request",
    )


def test_a_setup_failure_quotes_the_sandbox() -> None:
    ending, reason = decide(seen(setup_error="bwrap: Can't find source path /x"))
    assert ending is Ending.SETUP_FAILED
    assert reason == "the sandbox failed to start: bwrap: Can't find source path /x"


@pytest.mark.parametrize(
    ("count", "text"),
    [(0, "0 B"), (300, "300 B"), (1024, "1 KiB"), (512 * MiB, "512 MiB"), (16 * GiB, "16 GiB"),
     (3 * GiB // 2, "1.5 GiB"), (512 * MiB - 1, "511.9 MiB")],
)  # fmt: skip
def test_byte_counts_read_in_binary_units_rounded_down(count: int, text: str) -> None:
    assert format_bytes(count) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (86400, "24h"),
        (5400, "1h 30m"),
        (125, "2m 5s"),
        (1, "1s"),
        (1.5, "1.5s"),
        (0.25, "0.25s"),
        (0, "0s"),
    ],
)
def test_durations_read_in_hours_minutes_and_seconds(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_an_init_exit_code_above_128_means_a_signal() -> None:
    assert split_status(137) == (None, 9)
    assert split_status(3) == (3, None)
    assert split_status(128) == (128, None)


def test_unknown_signal_numbers_still_read() -> None:
    assert signal_name(15) == "SIGTERM"
    assert signal_name(99) == "signal 99"
