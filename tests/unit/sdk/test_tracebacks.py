"""Logged tracebacks show the user's frames, not the engine's, unless the error is Flowyard's."""

from __future__ import annotations

import sys

import pytest

from flowyard import flow, task
from flowyard.sdk import RecordingReporter, _tracebacks
from flowyard.sdk._tracebacks import format_exception


@task
def parse(text: str) -> int:
    return int(text)


@flow
def load(text: str) -> int:
    return parse(text)


def _flow_traceback(reporter: RecordingReporter) -> str:
    """The traceback the last failed flow logged."""
    return [m for m in reporter.log_messages() if "Encountered exception" in m][-1]


def test_a_failed_flows_traceback_shows_its_own_frames_only(reporter: RecordingReporter) -> None:
    load("x", return_state=True)  # type: ignore[call-arg]
    logged = _flow_traceback(reporter)
    assert "Traceback (most recent call last):" in logged
    assert "in load\n    return parse(text)" in logged
    assert "in parse\n    return int(text)" in logged
    assert "ValueError: invalid literal for int() with base 10: 'x'" in logged
    assert "/flowyard/sdk/" not in logged  # the engine's twenty frames are gone


def test_frames_after_the_users_last_are_kept_an_error_raised_by_flowyard_shows_where() -> None:
    def user_code() -> None:
        raise_inside()

    def raise_inside() -> None:
        # Stands for Flowyard's code: the frame's file is made to look like the package's.
        code = compile("raise RuntimeError('from flowyard')", _tracebacks._PACKAGE + "x.py", "exec")
        exec(code)

    try:
        user_code()
    except RuntimeError:
        text = format_exception(sys.exc_info())  # type: ignore[arg-type]
    assert "in user_code" in text
    assert f'File "{_tracebacks._PACKAGE}x.py"' in text  # after the user's last frame: kept
    assert "RuntimeError: from flowyard" in text


def test_causes_are_trimmed_too_and_full_tracebacks_can_be_asked_for(
    reporter: RecordingReporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    @flow
    def wraps() -> int:
        try:
            return parse("y")
        except ValueError as exc:
            raise LookupError("no row") from exc

    wraps(return_state=True)  # type: ignore[call-arg]
    logged = _flow_traceback(reporter)
    assert "The above exception was the direct cause" in logged
    assert "LookupError: no row" in logged
    assert "/flowyard/sdk/" not in logged
    monkeypatch.setattr(_tracebacks, "_FULL", True)
    wraps(return_state=True)  # type: ignore[call-arg]
    assert "/flowyard/sdk/_flow_engine.py" in _flow_traceback(reporter)


def test_a_log_call_with_exc_info_outside_an_exception_says_so() -> None:
    assert format_exception((None, None, None)) == "NoneType: None"
