"""Fetching a deployment's code: git repositories and object storage.

Both kinds cache what they download under a cache directory the caller owns
and lay a run's copy out in a fresh directory. See
``docs/sources-and-environments.md``.
"""

from __future__ import annotations

from flowyard.execution.sources._base import FetchedSource, Source
from flowyard.execution.sources._errors import (
    PathEscapeError,
    RefNotFoundError,
    RefusedSourceError,
    SourceError,
    SourceUnreachableError,
)
from flowyard.execution.sources._git import GitSource
from flowyard.execution.sources._git_urls import GitRemote, parse_git_remote
from flowyard.execution.sources._paths import resolve_entrypoint, resolve_within
from flowyard.execution.sources._redaction import redact
from flowyard.execution.sources._storage import StorageSource

__all__ = [
    "FetchedSource",
    "GitRemote",
    "GitSource",
    "PathEscapeError",
    "RefNotFoundError",
    "RefusedSourceError",
    "Source",
    "SourceError",
    "SourceUnreachableError",
    "StorageSource",
    "parse_git_remote",
    "redact",
    "resolve_entrypoint",
    "resolve_within",
]
