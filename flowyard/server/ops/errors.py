"""Domain errors raised by ops; the API maps each to one HTTP status."""

from __future__ import annotations

from flowyard.errors import FlowyardError


class DomainError(FlowyardError):
    status_code = 400


class NotFound(DomainError):
    """Missing, or owned by another workspace: the two are indistinguishable."""

    status_code = 404

    def __init__(self, kind: str, ident: object) -> None:
        super().__init__(f"{kind} {ident} not found")
        self.kind = kind


class Conflict(DomainError):
    status_code = 409


class StaleState(Conflict):
    """The writer's view of the run's state is out of date."""


class InvalidInput(DomainError):
    """Bad input that passed the schema but not the domain rules; names the field."""

    status_code = 422

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.detail = message


class Unauthorized(DomainError):
    status_code = 401


class Forbidden(DomainError):
    status_code = 403
