"""Facts about the current run (``from flowyard.runtime import flow_run, deployment``)."""

from __future__ import annotations

from flowyard.sdk._runtime import deployment, flow_run, task_run

__all__ = ["deployment", "flow_run", "task_run"]
