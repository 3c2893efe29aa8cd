"""Artifacts: what a run publishes for people to read — a report, a table, a link, an image,
its progress — kept with the run and, under a key, as a history of versions."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field

from flowyard.schemas._base import Out, Wire
from flowyard.schemas.variables import plain_text

# As in Prefect: lowercase letters, digits and dashes.
KEY = r"^[a-z0-9-]{1,200}$"
MAX_DATA_BYTES = 1024 * 1024
MAX_DESCRIPTION = 5000

ArtifactType = Literal["markdown", "table", "link", "image", "progress"]
Description = Annotated[str, Field(max_length=MAX_DESCRIPTION), AfterValidator(plain_text)]


class ArtifactCreate(Wire):
    """``data`` by type: markdown text; a table (a list of rows as objects or lists, or an
    object of columns); a link (a URL, or ``{"url", "text"}``); an image URL; progress,
    a number from 0 to 100."""

    type: ArtifactType
    data: Any
    key: str | None = Field(default=None, pattern=KEY)
    description: Description | None = None
    flow_run_id: uuid.UUID | None = None
    task_run_id: uuid.UUID | None = None


class ArtifactUpdate(Wire):
    """New data for an artifact (progress, mostly), checked against its type."""

    data: Any
    description: Description | None = None


class Artifact(Out):
    id: uuid.UUID
    key: str | None
    type: ArtifactType
    description: str | None
    # Stored as given, except tables ({"columns": [...], "rows": [[...], ...]}) and links
    # and images ({"url": ..., "text": ...}).
    data: Any
    flow_run_id: uuid.UUID | None
    task_run_id: uuid.UUID | None
    created: datetime
    updated: datetime
