"""Errors of the source stage. Every message is safe to show: tokens are redacted."""

from __future__ import annotations

from flowyard.errors import FlowyardError


class SourceError(FlowyardError):
    """A deployment's code could not be fetched."""


class RefusedSourceError(SourceError):
    """The source names a transport, scheme or location Flowyard does not allow."""


class PathEscapeError(SourceError):
    """An entrypoint, directory or file would resolve outside the fetched code."""


class SourceUnreachableError(SourceError):
    """The repository or bucket could not be reached or read."""


class RefNotFoundError(SourceError):
    """The branch, tag or commit does not exist in the repository."""
