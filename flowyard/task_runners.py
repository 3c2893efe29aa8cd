"""Task runners (``from flowyard.task_runners import ThreadPoolTaskRunner``)."""

from __future__ import annotations

from flowyard.sdk import ConcurrentTaskRunner, TaskRunner, ThreadPoolTaskRunner

__all__ = ["ConcurrentTaskRunner", "TaskRunner", "ThreadPoolTaskRunner"]
