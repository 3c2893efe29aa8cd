"""Fetches of one ref at one moment ask the remote once, and never learn an older answer."""

from __future__ import annotations

import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from flowyard.execution.sources._git import SharedResolutions

KEY = ("/cache/mirror.git", "main", "token-digest")


class SlowRemote:
    """An ls-remote that takes a while and counts how often it was asked."""

    def __init__(self, answer: str = "a" * 40) -> None:
        self.asked = 0
        self.answer = answer
        self.release = threading.Event()

    def __call__(self) -> tuple[str, bool]:
        self.asked += 1
        assert self.release.wait(10)
        return self.answer, False


def _joined(count: int) -> None:
    """Wait until ``count`` threads wait on a shared resolution's answer."""
    deadline = time.monotonic() + 10
    while True:
        waiting = 0
        for frame in sys._current_frames().values():
            stack = frame
            while stack is not None and stack.f_code.co_name != "resolve":
                stack = stack.f_back  # type: ignore[assignment]
            if stack is not None and frame.f_code.co_name == "wait":
                waiting += 1
        if waiting >= count:
            return
        assert time.monotonic() < deadline, f"{waiting} joined, expected {count}"
        time.sleep(0.005)


def test_fetches_claimed_before_a_resolution_began_share_it() -> None:
    shared, remote = SharedResolutions(), SlowRemote()
    claimed = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        first = pool.submit(shared.resolve, KEY, claimed, remote)
        while remote.asked == 0:
            time.sleep(0.001)
        others = [pool.submit(shared.resolve, KEY, claimed, remote) for _ in range(7)]
        _joined(8)  # the asker waits on its remote, the seven on its answer
        remote.release.set()
        answers = [first.result(), *(f.result() for f in others)]

    assert remote.asked == 1
    assert answers[0] == ("a" * 40, False)
    assert answers[1:] == [("a" * 40, True)] * 7  # in the mirror by the time they hear it


def test_a_fetch_claimed_after_a_resolution_began_asks_the_remote_itself() -> None:
    shared, remote = SharedResolutions(), SlowRemote()
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(shared.resolve, KEY, time.monotonic(), remote)
        while remote.asked == 0:
            time.sleep(0.001)
        # Claimed (so perhaps created after a push) once the first was already asking.
        later = pool.submit(shared.resolve, KEY, time.monotonic() + 1e-6, remote)
        time.sleep(0.05)
        remote.release.set()
        first.result(), later.result()

    assert remote.asked == 2


def test_a_fetch_created_before_an_ended_resolution_began_takes_its_answer() -> None:
    shared, remote = SharedResolutions(), SlowRemote()
    remote.release.set()
    created = time.monotonic()
    assert shared.resolve(KEY, created, remote) == ("a" * 40, False)
    # Another run of the burst, created before that resolution began, claimed after it ended.
    assert shared.resolve(KEY, created, remote) == ("a" * 40, True)
    assert remote.asked == 1
    # A run created after it began (perhaps after a push) asks again, and is told the news.
    remote.answer = "b" * 40
    assert shared.resolve(KEY, time.monotonic(), remote) == ("b" * 40, False)
    assert shared.resolve(KEY, created, remote) == ("b" * 40, True)  # the newest answer
    assert remote.asked == 2


def test_only_the_last_answers_of_so_many_keys_are_remembered() -> None:
    shared, remote = SharedResolutions(remembered=2), SlowRemote()
    remote.release.set()
    created = time.monotonic()
    for ref in ("a", "b", "c"):
        shared.resolve((KEY[0], ref, KEY[2]), created, remote)
    shared.resolve((KEY[0], "c", KEY[2]), created, remote)
    shared.resolve((KEY[0], "a", KEY[2]), created, remote)  # forgotten: asked again
    assert remote.asked == 4


def test_other_credentials_or_refs_do_not_share() -> None:
    shared, remote = SharedResolutions(), SlowRemote()
    remote.release.set()
    claimed = time.monotonic()
    for key in (KEY, (KEY[0], "main", "another-token"), (KEY[0], "dev", KEY[2])):
        shared.resolve(key, claimed, remote)
    assert remote.asked == 3


def test_a_failed_resolution_fails_everyone_who_joined_it() -> None:
    shared = SharedResolutions()
    started = threading.Event()
    release = threading.Event()

    def unreachable() -> tuple[str, bool]:
        started.set()
        release.wait(10)
        raise OSError("could not reach the remote")

    claimed = time.monotonic()
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(shared.resolve, KEY, claimed, unreachable)
        started.wait(10)
        joined = pool.submit(shared.resolve, KEY, claimed, unreachable)
        _joined(2)
        release.set()
        for future in (first, joined):
            with pytest.raises(OSError, match="could not reach"):
                future.result()
    # Nothing is remembered: the next fetch asks again.
    ok = SlowRemote()
    ok.release.set()
    assert shared.resolve(KEY, time.monotonic(), ok) == ("a" * 40, False)


def test_a_run_takes_what_the_remote_said_since_it_was_created() -> None:
    from flowyard.execution.jobs import RunJob
    from flowyard.execution.pipeline import _fresh_since

    def job(**times: float | None) -> RunJob:
        return RunJob(uuid.uuid4(), uuid.uuid4(), "f", "d", "f.py:f", {}, {}, **times)  # type: ignore[arg-type]

    assert _fresh_since(job(created_at=10.0, claimed_at=12.0), started=13.0) == 10.0
    assert _fresh_since(job(claimed_at=12.0), started=13.0) == 12.0
    # A creation time from a clock ahead of this one: never later than the claim.
    assert _fresh_since(job(created_at=14.0, claimed_at=12.0), started=13.0) == 12.0
    assert _fresh_since(job(), started=13.0) == 13.0
