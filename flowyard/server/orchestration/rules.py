"""Flow-run state transitions as data: small rules returning verdicts.

A rule declares the state types it applies from and to, and returns a
:class:`Decision` (accept, reject, wait or abort, with a reason) rather than
raising. A policy is an ordered list of rules: the first non-accepting
decision wins, and accepting rules may rewrite the proposed state (for
example cancelling a SCHEDULED run goes straight to CANCELLED).

Rules are pure: everything they need (current state, occupancy of the
concurrency limits, pauses, quota) arrives in :class:`TransitionContext`,
computed by ``ops.flow_runs`` inside the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import ClassVar

from flowyard.schemas.states import (
    ACTIVE_STATES,
    DEFAULT_NAMES,
    TERMINAL_STATES,
    StateType,
    Verdict,
)

ALL = frozenset(StateType)
NON_TERMINAL = ALL - TERMINAL_STATES
RETRY_NAME = "AwaitingRetry"


@dataclass(frozen=True)
class LimitUsage:
    """One concurrency limit and how many runs occupy it now (this run excluded)."""

    scope: str  # e.g. "deployment 'etl/daily'"
    limit: int
    active: int

    @property
    def reached(self) -> bool:
        return self.active >= self.limit


@dataclass(frozen=True)
class TransitionContext:
    from_type: StateType | None
    to_type: StateType
    to_name: str
    to_message: str = ""
    limits: tuple[LimitUsage, ...] = ()
    paused: tuple[str, ...] = ()
    quota_reason: str | None = None

    @property
    def activates(self) -> bool:
        """Takes a concurrency slot the run did not hold before."""
        was_active = self.from_type is not None and self.from_type in ACTIVE_STATES
        return self.to_type in ACTIVE_STATES and not was_active


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reason: str = ""
    to_type: StateType | None = None  # a rewrite of the proposed state, on accept
    to_name: str | None = None  # on accept: the rewrite's name; on wait: the name to wait under
    retry_after_seconds: float | None = None


ACCEPT = Decision(Verdict.ACCEPT)


class Rule:
    """Applies when the run moves from one of ``from_types`` to one of ``to_types``.

    ``None`` in ``from_types`` means "the run has no state yet" (creation).
    """

    from_types: ClassVar[frozenset[StateType | None]] = frozenset({None, *ALL})
    to_types: ClassVar[frozenset[StateType]] = ALL

    def applies(self, ctx: TransitionContext) -> bool:
        return ctx.from_type in self.from_types and ctx.to_type in self.to_types

    def decide(self, ctx: TransitionContext) -> Decision:
        raise NotImplementedError


class RejectLeavingTerminalExceptRetry(Rule):
    """A finished run stays finished; the one way out is an explicit retry."""

    from_types = frozenset(TERMINAL_STATES)

    def decide(self, ctx: TransitionContext) -> Decision:
        if ctx.to_type is StateType.SCHEDULED and ctx.to_name == RETRY_NAME:
            return ACCEPT
        return Decision(
            Verdict.REJECT,
            f"run is already {ctx.from_type}; only a retry (SCHEDULED '{RETRY_NAME}') may follow",
        )


class RejectRepeatedActiveState(Rule):
    """PENDING and CANCELLING happen once; RUNNING repeats only as a named retry."""

    from_types = frozenset({StateType.PENDING, StateType.RUNNING, StateType.CANCELLING})
    to_types = frozenset({StateType.PENDING, StateType.RUNNING, StateType.CANCELLING})

    ALLOWED: ClassVar[frozenset[tuple[StateType, StateType]]] = frozenset(
        {
            (StateType.PENDING, StateType.RUNNING),
            (StateType.PENDING, StateType.CANCELLING),
            (StateType.RUNNING, StateType.CANCELLING),
        }
    )

    def decide(self, ctx: TransitionContext) -> Decision:
        pair = (ctx.from_type, ctx.to_type)
        if pair in self.ALLOWED:
            return ACCEPT
        if pair == (StateType.RUNNING, StateType.RUNNING) and ctx.to_name == "Retrying":
            return ACCEPT
        return Decision(Verdict.REJECT, f"cannot move from {ctx.from_type} to {ctx.to_type}")


class RejectPendingAfterStart(Rule):
    """PENDING comes before RUNNING, never after it."""

    from_types = frozenset({StateType.RUNNING, StateType.PAUSED, StateType.CANCELLING})
    to_types = frozenset({StateType.PENDING})

    def decide(self, ctx: TransitionContext) -> Decision:
        return Decision(Verdict.REJECT, f"a run that is {ctx.from_type} cannot become PENDING")


class RejectCompletionBeforeRunning(Rule):
    """Only a run that ran can complete."""

    from_types = frozenset({None, StateType.SCHEDULED, StateType.PENDING, StateType.PAUSED})
    to_types = frozenset({StateType.COMPLETED})

    def decide(self, ctx: TransitionContext) -> Decision:
        return Decision(Verdict.REJECT, f"a run that is {ctx.from_type} cannot complete")


class RejectRunningFromCancelling(Rule):
    """Once cancellation is asked for, the run does not resume."""

    from_types = frozenset({StateType.CANCELLING})
    to_types = frozenset({StateType.SCHEDULED, StateType.PAUSED})

    def decide(self, ctx: TransitionContext) -> Decision:
        return Decision(
            Verdict.REJECT, f"cancellation is in progress; cannot move to {ctx.to_type}"
        )


class RejectPauseUnlessRunning(Rule):
    """Only a running run can pause."""

    from_types = frozenset({None, StateType.SCHEDULED, StateType.PENDING, StateType.PAUSED})
    to_types = frozenset({StateType.PAUSED})

    def decide(self, ctx: TransitionContext) -> Decision:
        return Decision(Verdict.REJECT, f"a run that is {ctx.from_type} cannot pause")


class RejectRescheduleWhileActive(Rule):
    """An active run has infrastructure; it goes back to SCHEDULED only by failing or a retry."""

    from_types = frozenset({StateType.PENDING, StateType.RUNNING})
    to_types = frozenset({StateType.SCHEDULED})

    def decide(self, ctx: TransitionContext) -> Decision:
        return Decision(
            Verdict.REJECT,
            f"a run that is {ctx.from_type} cannot be rescheduled; cancel it first",
        )


class CancelNotStartedRunsDirectly(Rule):
    """Nothing runs yet, so there is nothing to wait for: CANCELLING becomes CANCELLED."""

    from_types = frozenset({None, StateType.SCHEDULED, StateType.PAUSED})
    to_types = frozenset({StateType.CANCELLING})

    def decide(self, ctx: TransitionContext) -> Decision:
        return Decision(
            Verdict.ACCEPT,
            to_type=StateType.CANCELLED,
            to_name=DEFAULT_NAMES[StateType.CANCELLED],
        )


class WaitWhilePaused(Rule):
    """A paused pool or deployment starts nothing."""

    to_types = frozenset({StateType.PENDING, StateType.RUNNING})

    def decide(self, ctx: TransitionContext) -> Decision:
        if ctx.activates and ctx.paused:
            return Decision(
                Verdict.WAIT,
                "; ".join(ctx.paused),
                to_name="AwaitingResume",
                retry_after_seconds=10,
            )
        return ACCEPT


class WaitForConcurrencySlot(Rule):
    """A run cannot start while its deployment, pool or workspace is at its limit."""

    to_types = frozenset({StateType.PENDING, StateType.RUNNING})

    def decide(self, ctx: TransitionContext) -> Decision:
        if not ctx.activates:
            return ACCEPT
        for usage in ctx.limits:
            if usage.reached:
                return Decision(
                    Verdict.WAIT,
                    f"{usage.scope} concurrency limit of {usage.limit} reached "
                    f"({usage.active} active)",
                    to_name="AwaitingConcurrency",
                    retry_after_seconds=5,
                )
        return ACCEPT


class WaitForComputeQuota(Rule):
    """Over the monthly compute limit, new runs wait in SCHEDULED."""

    to_types = frozenset({StateType.PENDING})

    def decide(self, ctx: TransitionContext) -> Decision:
        if ctx.activates and ctx.quota_reason:
            return Decision(
                Verdict.WAIT, ctx.quota_reason, to_name="AwaitingQuota", retry_after_seconds=60
            )
        return ACCEPT


@dataclass(frozen=True)
class Policy:
    rules: Sequence[Rule] = field(default_factory=tuple)

    def decide(self, ctx: TransitionContext) -> Decision:
        """Run the rules in order; the first non-accept wins, rewrites accumulate."""
        result = ACCEPT
        for rule in self.rules:
            if not rule.applies(ctx):
                continue
            decision = rule.decide(ctx)
            if decision.verdict is not Verdict.ACCEPT:
                return decision
            if decision.to_type is not None:
                result = decision
                ctx = replace(
                    ctx, to_type=decision.to_type, to_name=decision.to_name or ctx.to_name
                )
        return result


FLOW_RUN_POLICY = Policy(
    rules=(
        RejectLeavingTerminalExceptRetry(),
        RejectRepeatedActiveState(),
        RejectPendingAfterStart(),
        RejectCompletionBeforeRunning(),
        RejectRunningFromCancelling(),
        RejectPauseUnlessRunning(),
        RejectRescheduleWhileActive(),
        CancelNotStartedRunsDirectly(),
        WaitWhilePaused(),
        WaitForConcurrencySlot(),
        WaitForComputeQuota(),
    )
)
