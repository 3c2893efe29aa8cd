"""What the UI itself refuses; domain errors from ``ops`` are shown as they are."""

from __future__ import annotations

from flowyard.errors import FlowyardError


class UiError(FlowyardError):
    """Base of the UI's own errors."""


class InvalidSession(UiError):
    """The request carries no usable session: missing, forged, expired or revoked."""


class CsrfRefused(UiError):
    """A form arrived without this session's CSRF token (or from another origin)."""


class BadForm(UiError):
    """A form body the UI cannot read (wrong content type, too large, not UTF-8)."""
