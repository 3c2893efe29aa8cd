"""The body of every error answer of the API."""

from __future__ import annotations

from pydantic import BaseModel


class FieldError(BaseModel):
    """One invalid field of a request, named as in the request (``parameters.n``)."""

    field: str
    message: str


class ErrorBody(BaseModel):
    """``detail`` is one sentence saying what is wrong; ``errors`` lists bad fields."""

    detail: str
    errors: list[FieldError] | None = None
