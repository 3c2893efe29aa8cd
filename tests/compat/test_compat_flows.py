"""Prefect 3 style flow files, with only the import line changed, give Prefect's results."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from flowyard.sdk import Flow, ParameterTypeError, RecordingReporter, load_flow_from_entrypoint

from .conftest import FLOWS


def load(entrypoint: str) -> tuple[Flow[..., Any], ModuleType]:
    loaded = load_flow_from_entrypoint(FLOWS, entrypoint)
    return loaded, sys.modules[loaded.fn.__module__]


def test_hello_world_greets_and_logs_prints(reporter: RecordingReporter) -> None:
    hello_world, _ = load("hello_world.py:hello_world")
    assert hello_world() == ["Hello, Marvin!", "Hello, Arthur!"]
    logs = reporter.log_messages()
    assert "Greeting 2 people" in logs
    assert "Hello, Marvin!" in logs


def test_etl_pipeline_writes_the_transformed_rows(tmp_path: Path) -> None:
    etl, _ = load("etl_pipeline.py:etl")
    assert etl.name == "etl-pipeline"
    target = tmp_path / "out" / "weather.json"
    assert etl(str(target)) == 3
    assert json.loads(target.read_text()) == [
        {"id": 1, "city": "Oslo", "temp_f": 40.1},
        {"id": 2, "city": "Lima", "temp_f": 66.2},
        {"id": 4, "city": "Perth", "temp_f": 73.85},
    ]


def test_parallel_map_totals_the_mapped_prices() -> None:
    portfolio_value, _ = load("parallel_map.py:portfolio_value")
    assert portfolio_value(["AAPL", "MSFT", "NVDA"], "EUR") == 740.0
    assert portfolio_value(["AAPL"]) == 190.0


def test_submitted_dependencies_run_in_order() -> None:
    build_warehouse, _ = load("submit_dependencies.py:build_warehouse")
    assert build_warehouse(["users", "orders"]) == {
        "rows": 20,
        "indexes": ["orders_idx", "users_idx"],
        "message": "ready",
        "announce_last": True,
    }


def test_flaky_api_is_retried_then_fails_when_retries_run_out() -> None:
    sync_accounts, module = load("retries_flaky_api.py:sync_accounts")
    assert sync_accounts(2) == [
        {"endpoint": "/accounts", "attempts": 3},
        {"endpoint": "/invoices", "attempts": 1},
    ]
    state = sync_accounts(10, return_state=True)
    assert state.is_failed()
    assert isinstance(state.result(raise_on_failure=False), module.RateLimited)
    assert module.ATTEMPTS["/accounts"] == 5


def test_async_crawl_gathers_pages() -> None:
    crawl, _ = load("async_fetch.py:crawl")
    assert asyncio.run(crawl(4)) == [0, 1, 2, 10, 11, 12, 20, 21, 22, 30, 31, 32]


def test_subflows_return_their_values_to_the_parent() -> None:
    report, _ = load("subflows.py:report")
    assert report("weekly", [[1, 2], [3, 4]]) == {
        "label": "weekly",
        "totals": [5, 25],
        "grand_total": 30,
        "parent": "report-weekly",
    }


def test_cached_tasks_run_once_across_two_flow_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated_sdk: Path
) -> None:
    counter = tmp_path / "calls.txt"
    monkeypatch.setenv("COMPAT_CALL_COUNTER", str(counter))
    training_pipeline, _ = load("caching_expensive.py:training_pipeline")
    assert training_pipeline() == "iris: 0.6"
    assert training_pipeline() == "iris: 0.6"
    assert training_pipeline("wine", 20) == "wine: 0.7"
    assert counter.read_text().splitlines() == [
        "train iris 10",
        "summarize",
        "train wine 20",
        "summarize",
    ]
    assert any((isolated_sdk / "results").iterdir())


def test_typed_parameters_are_coerced_like_prefect() -> None:
    sales_report, _ = load("typed_parameters.py:sales_report")
    window = {"start": "2024-01-01", "end": "2024-01-31", "granularity": "weekly"}
    assert sales_report(window, {"regions": ["eu"]}, "5") == {
        "periods": 5,
        "granularity": "weekly",
        "regions": ["eu"],
        "min_amount": 0.0,
        "top_n": 5,
    }
    with pytest.raises(ParameterTypeError, match=r"window\.start"):
        sales_report({"start": "2024-13-01", "end": "2024-01-31"})


def test_hooks_fire_for_completion_and_failure() -> None:
    _, module = load("hooks_notifications.py:nightly_audit")
    assert module.run_both() == [
        "nightly-audit Completed",
        "task check_balance Failed",
        "nightly-audit Failed: Flow run encountered an exception: ValueError: c is overdrawn",
    ]


def test_a_timed_out_step_is_reported_through_allow_failure() -> None:
    daily_exports, _ = load("timeouts_guard.py:daily_exports")
    assert daily_exports(0.6) == {"vendor": "TaskRunTimeoutError", "internal": "internal.csv"}
    assert daily_exports(0.0) == {"vendor": "export.csv", "internal": "internal.csv"}


def test_hand_made_states_decide_the_flow_outcome() -> None:
    _, module = load("states_control.py:validate_batch")
    assert module.outcomes() == {
        "good": ("Completed", "1 invalid record(s) skipped", 2),
        "bad": ("Failed", "2/3 records invalid"),
    }


def test_runtime_and_tags_describe_the_runs() -> None:
    _, module = load("runtime_context.py:inventory")
    assert module.tagged() == {
        "flow_run": "inventory-north",
        "flow_name": "inventory",
        "parameters": {"warehouse": "north", "items": ["bolts"]},
        "deployment": None,
        "described": [
            {
                "task_run": "describe-bolts",
                "task_params": {"item": "bolts"},
                "tags": ["inventory", "nightly"],
            }
        ],
    }


def test_as_completed_yields_the_fastest_first() -> None:
    fastest_replicas, _ = load("as_completed_race.py:fastest_replicas")
    assert fastest_replicas({"eu": 0.3, "us": 0.0, "ap": 0.15}) == ["us", "ap", "eu"]


def test_the_thread_pool_size_caps_concurrency() -> None:
    resize_all, module = load("task_runner_config.py:resize_all")
    result = resize_all([f"img{i}.png" for i in range(6)])
    assert result["resized"] == [f"img{i}_small.png" for i in range(6)]
    assert 1 <= result["peak_concurrency"] <= 2
    assert module.resize_one("x.png") == "x_small.png"


def test_with_options_makes_variants() -> None:
    health_check, module = load("with_options_reuse.py:health_check")
    assert health_check(["db", "flaky-cache"]) == ["pong from db", "pong from flaky-cache"]
    assert module.CALLS == ["db", "flaky-cache", "flaky-cache"]
    assert module.patient_ping.name == "patient-ping"
    assert module.ping.retries == 0
    assert module.strict_check.name == "strict-health-check"
    assert module.strict_check(["db"]) == ["pong from db"]


def test_a_failed_check_blocks_publishing_but_not_the_report() -> None:
    quality_gate, _ = load("data_quality.py:quality_gate")
    assert quality_gate() == {
        "report": "report: 1 row(s) without email",
        "publish_state": "NotReady",
        "publish_type": True,
        "check_state": "Failed",
    }


def test_run_loggers_log_at_their_levels(reporter: RecordingReporter) -> None:
    chatty, _ = load("logging_levels.py:chatty")
    assert chatty(3) == 3
    logs = reporter.log_messages()
    assert "starting 3 steps" in logs
    assert "printed 1" in logs
    assert "odd number 1" in logs
    assert "total is 3 (not an error, just loud)" in logs
    assert "debug 1" not in logs


def test_flows_inside_tasks_and_tasks_inside_tasks() -> None:
    corpus, _ = load("nested_tasks_and_subflow_in_task.py:corpus")
    assert corpus(["the cat and the hat", "a b a"]) == [
        {"words": 5, "top": "the", "tokens": 5},
        {"words": 3, "top": "a", "tokens": 3},
    ]
