from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Wire(BaseModel):
    """Base of request/response models: unknown fields are refused, not ignored."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Out(BaseModel):
    """Base of response models: built from ORM rows, and lenient to fields a newer
    server adds, so an older client keeps working."""

    model_config = ConfigDict(from_attributes=True)
