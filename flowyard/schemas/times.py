"""Times as they cross the wire: what UTC can hold, and in UTC where stored.

The database keeps instants in UTC. An aware time whose UTC equivalent falls
outside years 1-9999 (``0001-01-01T00:00:00+05:00``) is refused naming the
field, rather than failing when it is stored or compared.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime


def in_utc(value: datetime) -> datetime:
    """The same instant in UTC, refused when UTC cannot hold it (year 1 at +05:00)."""
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of the supported time range") from None


def utc_representable(value: datetime) -> datetime:
    """Unchanged, but refused like ``in_utc`` when it is aware and UTC cannot hold it."""
    if value.tzinfo is not None:
        in_utc(value)
    return value


# Aware timestamps only, in UTC: a naive time is ambiguous by the sender's offset.
UtcTime = Annotated[AwareDatetime, AfterValidator(in_utc)]
