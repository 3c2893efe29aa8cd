"""Deployment sources (``from flowyard.runner.storage import GitRepository``), where
Prefect keeps them; also ``from flowyard import GitRepository, RemoteStorage``."""

from __future__ import annotations

from flowyard.sdk._sources import GitRepository, RemoteStorage

__all__ = ["GitRepository", "RemoteStorage"]
