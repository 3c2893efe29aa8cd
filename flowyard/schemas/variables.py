"""A workspace's named values: variables (JSON), secrets (encrypted) and results (bytes)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, Field

from flowyard.schemas._base import Out, Wire

NAME = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}$"
# Result keys may be namespaced with "/" (e.g. "<flow>/<task>/<hash>").
RESULT_KEY = r"^[A-Za-z0-9_][A-Za-z0-9_.:=+-]*(/[A-Za-z0-9_][A-Za-z0-9_.:=+-]*)*$"
MAX_RESULT_KEY = 255
MAX_VARIABLE_BYTES = 64 * 1024


def plain_text(value: str) -> str:
    """Refuse what storage cannot hold: NUL characters and unpaired surrogates."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            raise ValueError("is not valid Unicode text (unpaired surrogate)") from None
    return value


Tag = Annotated[str, Field(min_length=1, max_length=100), AfterValidator(plain_text)]


class VariableSet(Wire):
    """Any JSON value, at most 64 KiB encoded."""

    value: Any
    tags: list[Tag] = Field(default_factory=list, max_length=50)


class Variable(Out):
    id: uuid.UUID
    name: str
    value: Any
    tags: list[str]
    created: datetime
    updated: datetime


class SecretSet(Wire):
    value: Annotated[str, Field(max_length=65_536), AfterValidator(plain_text)]


class SecretInfo(Out):
    """A secret's listing entry: never its value."""

    id: uuid.UUID
    name: str
    created: datetime
    updated: datetime


class SecretValue(Wire):
    name: str
    value: str


class ResultInfo(Out):
    """A stored result's metadata (the bytes are the body of GET /results/{key})."""

    key: str
    size: int
    expires: datetime | None
    created: datetime
