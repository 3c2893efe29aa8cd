from __future__ import annotations

import base64
from pathlib import Path

import pytest

from flowyard.execution.environments import ReadyEnvironment
from flowyard.execution.sources import (
    FetchedSource,
    PathEscapeError,
    SourceError,
    redact,
    resolve_entrypoint,
    resolve_within,
)
from flowyard.execution.sources._git_command import GitCommand
from flowyard.execution.sources._git_urls import parse_git_remote

SHA = "abc1234def5678900000000000000000000000000"


def test_a_fetched_commit_reads_as_a_log_line() -> None:
    fetched = FetchedSource(Path("/w"), SHA, 0.0412, cached=False)
    assert fetched.summary() == "cloned abc1234 in 0.04 s"
    cached = FetchedSource(Path("/w"), SHA, 0.004, cached=True)
    assert cached.summary() == "cloned abc1234 (cached) in 0.00 s"


def test_a_storage_download_reads_as_a_log_line() -> None:
    fetched = FetchedSource(Path("/w"), "9f8e7d6c5b", 1.5, cached=False, kind="storage")
    assert fetched.summary() == "downloaded 9f8e7d6 in 1.50 s"


def test_a_ready_environment_reads_as_a_log_line() -> None:
    common = {
        "path": Path("/e"),
        "python": Path("/e/bin/python"),
        "key": "k",
        "sdk_path": Path("/s"),
    }
    cached = ReadyEnvironment(cached=True, duration_seconds=0.012, installed_count=12, **common)
    built = ReadyEnvironment(cached=False, duration_seconds=3.14, installed_count=12, **common)
    assert cached.summary() == "environment ready (cached) in 0.01 s"
    assert built.summary() == "installed 12 packages in 3.1 s"


def test_redaction_removes_tokens_and_url_credentials() -> None:
    text = "fatal: https://user:hunter2@host/x and token tok-123 leaked"
    assert redact(text, ["tok-123"]) == "fatal: https://***@host/x and token *** leaked"


def test_the_git_auth_header_travels_in_environment_config_not_argv() -> None:
    remote = parse_git_remote("https://git.example.com/org/repo.git")
    env = GitCommand(remote=remote, token="tok-123").environment()
    basic = base64.b64encode(b"x-access-token:tok-123").decode()
    assert env["GIT_CONFIG_KEY_0"] == "http.https://git.example.com/org/repo.git.extraHeader"
    assert env["GIT_CONFIG_VALUE_0"] == f"Authorization: Basic {basic}"
    assert env["GIT_ALLOW_PROTOCOL"] == "https"
    assert env["GIT_TERMINAL_PROMPT"] == "0"


def test_git_messages_lose_the_token_in_every_encoding() -> None:
    remote = parse_git_remote("https://gitlab.example.com/org/repo.git")
    command = GitCommand(remote=remote, token="tok-123")
    basic = base64.b64encode(b"oauth2:tok-123").decode()
    explained = command.explain(f"fatal: header Authorization: Basic {basic}\nfatal: tok-123")
    assert "tok-123" not in explained
    assert basic not in explained


@pytest.mark.parametrize("path", ["../outside.py", "/etc/passwd", "a/../../b"])
def test_paths_that_leave_the_checkout_are_refused(path: str) -> None:
    with pytest.raises(PathEscapeError):
        resolve_within(Path("/checkout"), path, what="entrypoint")


def test_an_entrypoint_splits_into_a_file_inside_the_checkout_and_a_function() -> None:
    file, function = resolve_entrypoint(Path("/checkout"), "flows/etl.py:etl")
    assert (file, function) == (Path("/checkout/flows/etl.py"), "etl")


def test_an_entrypoint_without_a_function_is_refused() -> None:
    with pytest.raises(SourceError, match=r"path/to/file\.py:function_name"):
        resolve_entrypoint(Path("/checkout"), "flows/etl.py")
