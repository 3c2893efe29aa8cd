"""The root of Flowyard's exception hierarchy.

Each package keeps a small hierarchy under :class:`FlowyardError`; errors are
translated at boundaries (driver errors to storage errors in ``server.db``,
domain errors to HTTP in ``server.api``).
"""

from __future__ import annotations


class FlowyardError(Exception):
    """Base class of every error Flowyard raises on purpose."""


class ConfigurationError(FlowyardError):
    """A setting is missing or has a value Flowyard cannot use."""
