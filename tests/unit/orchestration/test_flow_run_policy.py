"""Every (from, to) pair of flow-run states against the policy."""

from __future__ import annotations

import pytest

from flowyard.schemas.states import DEFAULT_NAMES, StateType, Verdict
from flowyard.server.orchestration import FLOW_RUN_POLICY, LimitUsage, TransitionContext
from flowyard.server.orchestration.rules import RETRY_NAME

T = StateType
A, R = "A", "R"
C = "C"  # accepted, rewritten to CANCELLED

# Rows: from; columns in this order:
COLUMNS = [T.SCHEDULED, T.PENDING, T.RUNNING, T.COMPLETED, T.FAILED, T.CRASHED,
           T.CANCELLING, T.CANCELLED, T.PAUSED]  # fmt: skip
EXPECTED: dict[StateType | None, str] = {
    None:          "A A A R A A C A R",
    T.SCHEDULED:   "A A A R A A C A R",
    T.PENDING:     "R R A R A A A A R",
    T.RUNNING:     "R R R A A A A A A",
    T.CANCELLING:  "R R R A A A R A R",
    T.PAUSED:      "A R A R A A C A R",
    T.COMPLETED:   "R R R R R R R R R",
    T.FAILED:      "R R R R R R R R R",
    T.CRASHED:     "R R R R R R R R R",
    T.CANCELLED:   "R R R R R R R R R",
}  # fmt: skip

PAIRS = [
    (src, dst, code)
    for src, row in EXPECTED.items()
    for dst, code in zip(COLUMNS, row.split(), strict=True)
]


def test_the_table_covers_every_pair() -> None:
    assert {(s, d) for s, d, _ in PAIRS} == {(s, d) for s in [None, *T] for d in T}


@pytest.mark.parametrize(("src", "dst", "code"), PAIRS, ids=lambda v: str(v))
def test_transition_verdict(src: StateType | None, dst: StateType, code: str) -> None:
    decision = FLOW_RUN_POLICY.decide(
        TransitionContext(from_type=src, to_type=dst, to_name=DEFAULT_NAMES[dst])
    )
    if code == R:
        assert decision.verdict is Verdict.REJECT
        assert decision.reason, "a rejection must say why"
    elif code == C:
        assert decision.verdict is Verdict.ACCEPT
        assert decision.to_type is T.CANCELLED
    else:
        assert decision.verdict is Verdict.ACCEPT
        assert decision.to_type in (None, dst)


@pytest.mark.parametrize("terminal", [T.COMPLETED, T.FAILED, T.CRASHED, T.CANCELLED])
def test_an_explicit_retry_is_the_one_way_out_of_a_terminal_state(terminal: StateType) -> None:
    decision = FLOW_RUN_POLICY.decide(
        TransitionContext(from_type=terminal, to_type=T.SCHEDULED, to_name=RETRY_NAME)
    )
    assert decision.verdict is Verdict.ACCEPT


def test_a_running_run_may_rerun_only_as_a_named_retry() -> None:
    ok = FLOW_RUN_POLICY.decide(
        TransitionContext(from_type=T.RUNNING, to_type=T.RUNNING, to_name="Retrying")
    )
    assert ok.verdict is Verdict.ACCEPT


@pytest.mark.parametrize(
    ("src", "dst"),
    [(None, T.PENDING), (T.SCHEDULED, T.PENDING), (T.SCHEDULED, T.RUNNING), (T.PAUSED, T.RUNNING)],
)
def test_a_run_waits_while_any_concurrency_limit_is_reached(
    src: StateType | None, dst: StateType
) -> None:
    ctx = TransitionContext(
        from_type=src,
        to_type=dst,
        to_name=DEFAULT_NAMES[dst],
        limits=(LimitUsage("work pool 'p'", 3, 1), LimitUsage("deployment 'f/d'", 1, 1)),
    )
    decision = FLOW_RUN_POLICY.decide(ctx)
    assert decision.verdict is Verdict.WAIT
    assert decision.reason == "deployment 'f/d' concurrency limit of 1 reached (1 active)"
    assert decision.to_name == "AwaitingConcurrency"


def test_a_run_already_holding_a_slot_is_not_held_back_by_the_limit() -> None:
    ctx = TransitionContext(
        from_type=T.PENDING,
        to_type=T.RUNNING,
        to_name="Running",
        limits=(LimitUsage("deployment 'f/d'", 1, 1),),
    )
    assert FLOW_RUN_POLICY.decide(ctx).verdict is Verdict.ACCEPT


def test_a_paused_pool_holds_runs_with_the_reason() -> None:
    ctx = TransitionContext(
        from_type=T.SCHEDULED,
        to_type=T.PENDING,
        to_name="Pending",
        paused=("work pool 'p' is paused",),
    )
    decision = FLOW_RUN_POLICY.decide(ctx)
    assert (decision.verdict, decision.reason) == (Verdict.WAIT, "work pool 'p' is paused")
    assert decision.to_name == "AwaitingResume"


def test_over_quota_runs_wait_named_awaiting_quota() -> None:
    ctx = TransitionContext(
        from_type=T.SCHEDULED,
        to_type=T.PENDING,
        to_name="Pending",
        quota_reason="monthly compute limit reached: 10 of 10 minutes used; resets on 2026-12-01",
    )
    decision = FLOW_RUN_POLICY.decide(ctx)
    assert decision.verdict is Verdict.WAIT
    assert decision.to_name == "AwaitingQuota"
    assert "10 of 10 minutes" in decision.reason


def test_quota_does_not_stop_a_run_that_already_started() -> None:
    ctx = TransitionContext(
        from_type=T.PENDING, to_type=T.RUNNING, to_name="Running", quota_reason="over"
    )
    assert FLOW_RUN_POLICY.decide(ctx).verdict is Verdict.ACCEPT
