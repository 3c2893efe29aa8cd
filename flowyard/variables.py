"""Variables stored on the server (``from flowyard.variables import Variable``)."""

from __future__ import annotations

from flowyard.sdk import Variable

__all__ = ["Variable"]
