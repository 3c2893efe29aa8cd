"""Run loggers (``from flowyard.logging import get_run_logger``)."""

from __future__ import annotations

from flowyard.sdk._logging import disable_run_logger, get_logger, get_run_logger

__all__ = ["disable_run_logger", "get_logger", "get_run_logger"]
