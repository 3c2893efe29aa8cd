"""Orchestration: which state may follow which, and why not."""

from __future__ import annotations

from flowyard.server.orchestration.rules import (
    FLOW_RUN_POLICY,
    Decision,
    LimitUsage,
    Policy,
    Rule,
    TransitionContext,
)

__all__ = ["FLOW_RUN_POLICY", "Decision", "LimitUsage", "Policy", "Rule", "TransitionContext"]
