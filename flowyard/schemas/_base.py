from __future__ import annotations

from pydantic import BaseModel, ConfigDict

# The largest values the database's integer columns hold. Wire fields stored
# in them say so, so a larger number is refused naming the field instead of
# failing in the database.
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1


class Wire(BaseModel):
    """Base of request/response models: unknown fields are refused, not ignored."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Out(BaseModel):
    """Base of response models: built from ORM rows, and lenient to fields a newer
    server adds, so an older client keeps working."""

    model_config = ConfigDict(from_attributes=True)
