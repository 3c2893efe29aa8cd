"""System blocks (``from flowyard.blocks.system import Secret``)."""

from __future__ import annotations

from flowyard.sdk import Secret

__all__ = ["Secret"]
