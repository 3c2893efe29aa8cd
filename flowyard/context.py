"""The current run's context (``from flowyard.context import get_run_context``), where
Prefect keeps it."""

from __future__ import annotations

from flowyard.sdk import FlowRunContext, TaskRunContext, get_run_context, tags

__all__ = ["FlowRunContext", "TaskRunContext", "get_run_context", "tags"]
