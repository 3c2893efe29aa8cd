"""What the client raises: API answers by status, and an unreachable server.

Every error body of the API is ``{"detail": "...", "errors": [{"field",
"message"}]}`` (``errors`` only for bad input). The status picks the class,
so callers catch ``NotFoundError`` rather than compare numbers; ``str(error)``
is the server's one-line ``detail``, ready to print.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flowyard.errors import ConfigurationError, FlowyardError

if TYPE_CHECKING:
    import httpx


class ClientError(FlowyardError):
    """Base of everything :mod:`flowyard.client` raises on purpose."""


@dataclass(frozen=True)
class FieldError:
    """One invalid field of a request, as the API names it (``parameters.n``)."""

    field: str
    message: str


class ApiError(ClientError):
    """The API answered with an error status."""

    def __init__(
        self,
        status: int,
        detail: str,
        errors: tuple[FieldError, ...] = (),
        *,
        method: str = "",
        url: str = "",
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors
        self.method = method
        self.url = url


class AuthError(ApiError):
    """401 (no or bad credentials) or 403 (not allowed with these credentials)."""


class NotFoundError(ApiError):
    """404: missing, or owned by another workspace (the API does not say which)."""


class ConflictError(ApiError):
    """409: a name already used, or a stale state write."""


class ValidationError(ApiError):
    """422: the request was understood but a field is wrong; nothing was written."""

    @property
    def field(self) -> str | None:
        """The first invalid field (``parameters.n``, ``job_variables.cpu``), if named."""
        return self.errors[0].field if self.errors else None


class ServerUnavailable(ClientError):
    """The API could not be reached: refused, timed out, or the connection broke."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(
            f"cannot reach the Flowyard API at {url} ({reason}); start a server with "
            "`flowyard server start`, or point FLOWYARD_API_URL at a running one"
        )
        self.url = url
        self.reason = reason


class NotConfigured(ClientError, ConfigurationError):
    """No server is configured and the caller needs one."""


class InvalidArgument(ClientError, ValueError):
    """A client method was called with a value it cannot send (checked before any I/O)."""


_BY_STATUS: dict[int, type[ApiError]] = {
    401: AuthError,
    403: AuthError,
    404: NotFoundError,
    409: ConflictError,
    422: ValidationError,
}


def error_from_response(response: httpx.Response, *, has_key: bool = True) -> ApiError:
    """The :class:`ApiError` subclass for an error response, with the body's detail."""
    return error_from_body(
        response.status_code,
        response.reason_phrase,
        response.content,
        method=response.request.method,
        url=str(response.request.url),
        has_key=has_key,
    )


def error_from_body(
    status: int, reason: str, content: bytes, *, method: str, url: str, has_key: bool = True
) -> ApiError:
    """The :class:`ApiError` subclass for an error status and its body."""
    detail, errors = _parse_body(status, reason, content)
    if status == 401 and not has_key:
        detail += " (no API key is configured: set FLOWYARD_API_KEY or run `flowyard login`)"
    cls = _BY_STATUS.get(status, ApiError)
    return cls(status, detail, errors, method=method, url=url)


def _parse_body(status: int, reason: str, content: bytes) -> tuple[str, tuple[FieldError, ...]]:
    fallback = f"{status} {reason}".strip()
    try:
        body = json.loads(content)
    except (json.JSONDecodeError, UnicodeDecodeError):
        # Not our error shape (a proxy's HTML page, say): keep a readable excerpt.
        text = content.decode(errors="replace").strip().splitlines()
        return (f"{fallback}: {text[0][:200]}" if text else fallback), ()
    if not isinstance(body, dict):
        return fallback, ()
    detail = body.get("detail")
    if not isinstance(detail, str):
        detail = fallback if detail is None else json.dumps(detail)
    errors = tuple(
        FieldError(str(item.get("field", "")), str(item.get("message", "")))
        for item in body.get("errors") or ()
        if isinstance(item, dict)
    )
    return detail, errors
