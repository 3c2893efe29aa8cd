"""``concurrency`` and ``rate_limit`` in flow code: at most N holders at once, slots freed
however the block ends, leases renewed while held, clear errors when slots cannot be had."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from flowyard import flow, task
from flowyard.concurrency import (
    AcquireConcurrencySlotTimeoutError,
    ConcurrencySlotAcquisitionError,
)
from flowyard.concurrency import asyncio as aconcurrency
from flowyard.concurrency.sync import concurrency, rate_limit
from flowyard.sdk import _concurrency, set_concurrency_backend
from flowyard.sdk._concurrency import Grant, Mode


class Limits:
    """Limits in a dict, with leases that run out, as the server keeps them."""

    def __init__(self, **limits: int) -> None:
        self.limits = dict(limits)
        self.leases: dict[uuid.UUID, tuple[list[str], int, float]] = {}
        self.renewals = 0
        self.name_reads = 0
        self.most_held: dict[str, int] = {}
        self._lock = threading.Lock()

    def held(self, name: str) -> int:
        now = time.monotonic()
        return sum(n for names, n, end in self.leases.values() if name in names and end > now)

    def acquire(self, names: list[str], slots: int, mode: Mode, lease_seconds: float) -> Grant:
        with self._lock:
            missing = tuple(n for n in names if n not in self.limits)
            known = [n for n in names if n in self.limits]
            for name in known:
                if self.held(name) + slots > self.limits[name]:
                    return Grant(False, retry_after=0.01, missing=missing, blocked_by=name)
            lease_id = uuid.uuid4()
            seconds = 0.2 if mode == "rate_limit" else lease_seconds
            self.leases[lease_id] = (known, slots, time.monotonic() + seconds)
            for name in known:
                self.most_held[name] = max(self.most_held.get(name, 0), self.held(name))
            return Grant(True, lease_id=lease_id, missing=missing)

    def renew(self, lease_id: uuid.UUID, lease_seconds: float) -> bool:
        with self._lock:
            self.renewals += 1
            lease = self.leases.get(lease_id)
            if lease is None or lease[2] <= time.monotonic():
                return False
            self.leases[lease_id] = (lease[0], lease[1], time.monotonic() + lease_seconds)
            return True

    def release(self, lease_id: uuid.UUID) -> None:
        with self._lock:
            self.leases.pop(lease_id, None)

    def limit_names(self) -> frozenset[str]:
        self.name_reads += 1
        return frozenset(self.limits)


@pytest.fixture
def limits() -> Iterator[Limits]:
    backend = Limits(db=2, api=1)
    set_concurrency_backend(backend)
    yield backend
    set_concurrency_backend(None)


def test_no_more_than_the_limit_hold_slots_at_once(limits: Limits) -> None:
    @task
    def query(i: int) -> int:
        with concurrency("db"):
            time.sleep(0.02)
        return i

    @flow
    def many() -> list[int]:
        return [f.result() for f in query.map(range(8))]

    assert many() == list(range(8))
    assert 1 <= limits.most_held["db"] <= 2  # two at once at most (how many met: the OS's choice)
    assert limits.held("db") == 0  # every slot came back


def test_slots_come_back_when_the_block_raises(limits: Limits) -> None:
    with pytest.raises(RuntimeError, match="boom"), concurrency("db", occupy=2):
        raise RuntimeError("boom")
    assert limits.held("db") == 0


def test_a_held_lease_is_renewed_while_the_block_runs(limits: Limits) -> None:
    with concurrency("api", lease_duration=1.0):
        time.sleep(1.5)  # past its first term: only renewal keeps it (due every 0.33 s)
        assert limits.held("api") == 1
    assert limits.renewals >= 1
    assert limits.held("api") == 0


def test_waiting_past_the_timeout_raises_a_timeout_naming_the_full_limit(
    limits: Limits, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        concurrency("api"),
        caplog.at_level(logging.INFO, logger="flowyard.concurrency"),
        pytest.raises(AcquireConcurrencySlotTimeoutError, match="'api' stayed full"),
        concurrency("api", timeout_seconds=0.1),
    ):
        pass
    assert "Waiting for 1 slot(s) of concurrency limit 'api': it is full" in caplog.text
    assert isinstance(AcquireConcurrencySlotTimeoutError("x"), TimeoutError)


def test_a_waiter_gets_the_slot_once_it_is_released(limits: Limits) -> None:
    order: list[str] = []

    def wait_for_the_slot() -> None:
        with concurrency("api"):
            order.append("waiter in")

    with ThreadPoolExecutor(1) as pool:
        with concurrency("api"):
            waiting = pool.submit(wait_for_the_slot)
            time.sleep(0.05)
            assert not waiting.done()
            order.append("holder out")
        waiting.result(timeout=5)
    assert order == ["holder out", "waiter in"]
    assert limits.held("api") == 0


def test_a_missing_limit_limits_nothing_unless_strict(
    limits: Limits, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_concurrency, "_warned", set())
    with caplog.at_level(logging.WARNING, logger="flowyard.concurrency"):
        with concurrency(["db", "nightly-batch"]):
            assert limits.held("db") == 1
        with concurrency("nightly-batch"):
            pass
    assert caplog.text.count("'nightly-batch' does not exist") == 1
    strict = concurrency(["db", "nightly-batch"], strict=True)
    with pytest.raises(ConcurrencySlotAcquisitionError, match="no concurrency limit named"):
        strict.__enter__()
    assert limits.held("db") == 0  # the strict refusal gave back what it took


def test_rate_limit_spaces_callers_out(limits: Limits) -> None:
    started = time.monotonic()
    for _ in range(3):
        rate_limit("api")
    # One slot, freed 0.2 s after each take: the third waited for two decays.
    assert time.monotonic() - started >= 0.35


def test_bad_arguments_are_refused(limits: Limits) -> None:
    with pytest.raises(ValueError, match="occupy must be a whole number"), concurrency("db", 0):
        pass
    with pytest.raises(ValueError, match="names must be"), concurrency([]):
        pass


def test_the_async_forms_wait_without_blocking_the_loop(limits: Limits) -> None:
    async def main() -> list[str]:
        seen: list[str] = []

        async def hold(label: str) -> None:
            async with aconcurrency.concurrency("api"):
                seen.append(f"{label} in")
                await asyncio.sleep(0.05)
                seen.append(f"{label} out")

        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            for _ in range(5):
                ticks += 1
                await asyncio.sleep(0.01)

        await asyncio.gather(hold("a"), hold("b"), ticker())
        await aconcurrency.rate_limit("db")
        assert ticks == 5
        return seen

    seen = asyncio.run(main())
    assert seen in (["a in", "a out", "b in", "b out"], ["b in", "b out", "a in", "a out"])


def test_with_no_server_limits_are_not_enforced_and_strict_says_why(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_concurrency, "_warned", set())
    with caplog.at_level(logging.WARNING, logger="flowyard.concurrency"), concurrency("db"):
        pass
    rate_limit("db")
    assert caplog.text.count("Concurrency limits are not enforced") == 1
    with pytest.raises(ConcurrencySlotAcquisitionError, match="no Flowyard server"):
        rate_limit("db", strict=True)


def test_a_tagged_task_holds_a_slot_of_its_tags_limit_while_it_runs(
    limits: Limits, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_concurrency, "_known", (float("-inf"), None, frozenset()))
    limits.limits["tag:warehouse"] = 1
    running, most = [0], [0]
    lock = threading.Lock()

    @task(tags=["warehouse", "nightly"])  # "nightly" has no limit: it throttles nothing
    def load(i: int) -> int:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.02)
        with lock:
            running[0] -= 1
        return i

    @task(tags=["nightly"])
    def untouched() -> int:
        return 1

    @flow
    def loads() -> list[int]:
        untouched()
        return [f.result() for f in load.map(range(5))]

    assert loads() == list(range(5))
    assert most[0] == 1
    assert limits.most_held["tag:warehouse"] == 1
    assert "tag:nightly" not in limits.most_held
    assert limits.held("tag:warehouse") == 0
    assert limits.name_reads == 1  # the limits' names are read once, not per task


def test_a_tagged_task_whose_limit_has_no_slots_fails_saying_why(
    limits: Limits, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_concurrency, "_known", (float("-inf"), None, frozenset()))

    class Refusing(Limits):
        def acquire(self, names: list[str], slots: int, mode: Mode, seconds: float) -> Grant:
            raise ValueError("1 slots can never be taken of 'tag:frozen' (limit 0)")

    set_concurrency_backend(Refusing(**{"tag:frozen": 0}))
    ran: list[int] = []

    @task(tags=["frozen"])
    def frozen() -> None:
        ran.append(1)

    @task(tags=["frozen"])
    async def frozen_async() -> None:
        ran.append(1)

    @flow
    def tries() -> tuple[object, object]:
        return frozen(return_state=True), asyncio.run(frozen_async(return_state=True))  # type: ignore[call-overload]

    sync_state, async_state = tries()
    for state in (sync_state, async_state):
        assert state.is_failed()
        assert "can never be taken of 'tag:frozen'" in state.message
    assert ran == []


def test_many_async_waiters_never_starve_the_holders_release(limits: Limits) -> None:
    async def main() -> int:
        # Fewer threads than waiters: a waiter that held a thread while it waited would
        # leave the holder's release no thread to run on.
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(2))
        done = 0

        async def hold() -> None:
            nonlocal done
            async with aconcurrency.concurrency("api"):
                await asyncio.sleep(0.01)
            done += 1

        await asyncio.wait_for(asyncio.gather(*(hold() for _ in range(6))), 30)
        return done

    assert asyncio.run(main()) == 6
    assert limits.held("api") == 0


def test_a_tagged_task_runs_unthrottled_when_the_limits_cannot_be_reached(
    limits: Limits, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(_concurrency, "_known", (float("-inf"), None, frozenset()))

    class Away(Limits):
        def acquire(self, names: list[str], slots: int, mode: Mode, seconds: float) -> Grant:
            raise ConnectionError("the server is away")

    set_concurrency_backend(Away(**{"tag:db": 1}))

    @task(tags=["db"])
    def write() -> int:
        return 1

    @flow
    def writes() -> int:
        return write()

    with caplog.at_level(logging.WARNING):
        assert writes() == 1
    assert "Running without its tag concurrency limits: the server is away" in caplog.text
