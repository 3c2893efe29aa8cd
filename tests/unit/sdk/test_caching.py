from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

import pytest

from flowyard import flow, task
from flowyard.cache_policies import (
    DEFAULT,
    FLOW_PARAMETERS,
    INPUTS,
    NONE,
    RUN_ID,
    TASK_SOURCE,
    CompoundCachePolicy,
    Inputs,
)
from flowyard.sdk import InMemoryResultStore, RecordingReporter, StateChanged, task_input_hash
from flowyard.sdk._cache_policies import hash_objects


def _calls_counter() -> tuple[list[int], Any]:
    calls: list[int] = []

    def expensive(x: int) -> int:
        calls.append(x)
        return x * 100

    return calls, expensive


def test_a_cached_task_is_not_run_again_in_a_second_flow_run(store: InMemoryResultStore) -> None:
    calls, fn = _calls_counter()
    cached = task(cache_policy=INPUTS)(fn)

    @flow
    def pipeline(x: int) -> int:
        return cached(x)

    assert pipeline(1) == 100
    assert pipeline(1) == 100
    assert pipeline(2) == 200
    assert calls == [1, 2]
    assert len(store.records) == 2


def test_a_cache_hit_is_a_completed_state_named_cached(
    store: InMemoryResultStore, reporter: RecordingReporter
) -> None:
    _calls, fn = _calls_counter()
    cached = task(cache_policy=INPUTS + TASK_SOURCE)(fn)

    @flow
    def pipeline() -> int:
        cached(5)
        return cached(5)

    assert pipeline() == 500
    names = [e.state.name for e in reporter.of_type(StateChanged) if e.run_kind == "task"]
    assert names == ["Pending", "Running", "Completed", "Pending", "Cached"]
    cached_event = reporter.of_type(StateChanged)[-2]
    assert cached_event.state.name == "Cached"
    assert cached_event.cache_key is not None


def test_tasks_without_a_cache_policy_do_not_persist_or_cache(store: InMemoryResultStore) -> None:
    calls, fn = _calls_counter()
    plain = task(fn)

    @flow
    def pipeline() -> int:
        return plain(1) + plain(1)

    pipeline()
    assert calls == [1, 1]
    assert store.records == {}


def test_the_default_policy_caches_within_one_flow_run_when_persisting(
    store: InMemoryResultStore,
) -> None:
    calls, fn = _calls_counter()
    persisted = task(persist_result=True)(fn)

    @flow
    def pipeline() -> int:
        return persisted(1) + persisted(1)

    pipeline()
    pipeline()
    assert calls == [1, 1]


def test_cache_policy_none_never_caches(store: InMemoryResultStore) -> None:
    calls, fn = _calls_counter()
    uncached = task(cache_policy=NONE, persist_result=True)(fn)

    @flow
    def pipeline() -> None:
        uncached(1)
        uncached(1)

    pipeline()
    assert calls == [1, 1]


def test_persist_result_false_turns_caching_off(store: InMemoryResultStore) -> None:
    calls, fn = _calls_counter()
    off = task(cache_policy=INPUTS, persist_result=False)(fn)

    @flow
    def pipeline() -> None:
        off(1)
        off(1)

    pipeline()
    assert calls == [1, 1]
    assert store.records == {}


def test_inputs_minus_a_name_ignores_that_parameter(store: InMemoryResultStore) -> None:
    calls: list[str] = []

    @task(cache_policy=INPUTS - "verbose")
    def load(path: str, verbose: bool) -> str:
        calls.append(path)
        return path.upper()

    @flow
    def pipeline() -> None:
        load("a", True)
        load("a", False)
        load("b", False)

    pipeline()
    assert calls == ["a", "b"]


def test_cache_key_fn_decides_the_key(store: InMemoryResultStore) -> None:
    calls: list[str] = []

    def by_lowercase(context: Any, parameters: Mapping[str, Any]) -> str:
        return str(parameters["name"]).lower()

    @task(cache_key_fn=by_lowercase)
    def greet(name: str) -> str:
        calls.append(name)
        return f"hello {name}"

    @flow
    def pipeline() -> tuple[str, str]:
        return greet("Ada"), greet("ADA")

    assert pipeline() == ("hello Ada", "hello Ada")
    assert calls == ["Ada"]


def test_task_input_hash_is_a_usable_cache_key_fn(store: InMemoryResultStore) -> None:
    calls, fn = _calls_counter()
    cached = task(cache_key_fn=task_input_hash)(fn)

    @flow
    def pipeline() -> None:
        cached(3)
        cached(3)

    pipeline()
    assert calls == [3]


def test_expired_cache_entries_are_recomputed(store: InMemoryResultStore) -> None:
    calls, fn = _calls_counter()
    short = task(cache_policy=INPUTS, cache_expiration=datetime.timedelta(seconds=-1))(fn)

    @flow
    def pipeline() -> None:
        short(1)
        short(1)

    pipeline()
    assert calls == [1, 1]


def test_refresh_cache_recomputes_and_overwrites(store: InMemoryResultStore) -> None:
    calls, fn = _calls_counter()
    cached = task(cache_policy=INPUTS)(fn)
    refreshing = cached.with_options(refresh_cache=True)

    @flow
    def pipeline() -> None:
        cached(1)
        refreshing(1)
        cached(1)

    pipeline()
    assert calls == [1, 1]


def test_flow_parameters_policy_keys_on_the_flows_parameters(store: InMemoryResultStore) -> None:
    calls: list[int] = []

    @task(cache_policy=FLOW_PARAMETERS)
    def summary() -> int:
        calls.append(1)
        return len(calls)

    @flow
    def pipeline(region: str) -> int:
        return summary()

    assert pipeline("eu") == 1
    assert pipeline("eu") == 1
    assert pipeline("us") == 2


def test_compound_policies_flatten_and_none_is_neutral() -> None:
    combined = INPUTS + TASK_SOURCE + RUN_ID
    assert isinstance(combined, CompoundCachePolicy)
    assert len(combined.policies) == 3
    assert NONE + INPUTS is INPUTS
    assert INPUTS + NONE is INPUTS
    assert (DEFAULT - "x").policies[0] == Inputs(exclude=("x",))  # type: ignore[attr-defined]


def test_unhashable_inputs_skip_caching_with_a_logged_error(
    store: InMemoryResultStore, reporter: RecordingReporter
) -> None:
    import threading

    calls: list[int] = []

    @task(cache_policy=INPUTS)
    def with_lock(lock: object) -> int:
        calls.append(1)
        return 1

    @flow
    def pipeline() -> None:
        with_lock(threading.Lock())

    pipeline()
    assert calls == [1]
    assert any("Error encountered when computing cache key" in m for m in reporter.log_messages())


def test_hash_objects_is_stable_across_key_order_and_types() -> None:
    assert hash_objects({"a": 1, "b": [1, 2]}) == hash_objects({"b": [1, 2], "a": 1})
    assert hash_objects(datetime.date(2024, 1, 1)) != hash_objects("2024-01-01")
    with pytest.raises(ValueError, match="Unable to create hash"):
        hash_objects(__import__("threading").Lock())


def test_tasks_use_the_flows_result_storage_when_they_name_none() -> None:
    flow_store = InMemoryResultStore()
    calls, fn = _calls_counter()
    cached = task(cache_policy=INPUTS)(fn)

    @flow(result_storage=flow_store)
    def pipeline() -> int:
        return cached(1)

    pipeline()
    pipeline()
    assert calls == [1]
    assert len(flow_store.records) == 1
