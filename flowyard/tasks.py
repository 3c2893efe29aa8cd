"""Tasks and their helpers (``from flowyard.tasks import task_input_hash``), where
Prefect keeps them."""

from __future__ import annotations

from flowyard.sdk import Task, TaskOptions, exponential_backoff, task, task_input_hash

__all__ = ["Task", "TaskOptions", "exponential_backoff", "task", "task_input_hash"]
