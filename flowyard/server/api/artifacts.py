"""Artifacts: created and updated by runs (or anyone with a key), read by run or by key."""

from __future__ import annotations

import uuid
from typing import Literal

from fastapi import APIRouter, Query, Response

from flowyard.schemas import artifacts as s
from flowyard.server.api.deps import Caller, Session
from flowyard.server.db import models as m
from flowyard.server.ops import artifacts

router = APIRouter(prefix="/artifacts", tags=["artifacts"])


def out(row: m.Artifact) -> s.Artifact:
    return s.Artifact(
        id=row.id,
        key=row.key,
        type=row.type,  # type: ignore[arg-type]
        description=row.description,
        data=row.data.get("value"),
        flow_run_id=row.flow_run_id,
        task_run_id=row.task_run_id,
        created=row.created,
        updated=row.updated,
    )


@router.post("", status_code=201)
async def create_artifact(data: s.ArtifactCreate, session: Session, caller: Caller) -> s.Artifact:
    """Publish an artifact; a run token's belongs to its run unless it names another of its tree."""
    return out(await artifacts.create_artifact(session, caller, data))


@router.get("")
async def list_artifacts(
    session: Session,
    caller: Caller,
    key: str | None = Query(default=None, pattern=s.KEY),
    flow_run_id: uuid.UUID | None = None,
    type: Literal["markdown", "table", "link", "image", "progress"] | None = None,
    limit: int = Query(default=100, ge=1, le=artifacts.MAX_PAGE),
    offset: int = Query(default=0, ge=0, le=1_000_000),
) -> list[s.Artifact]:
    """Newest first: a key's history, a run's artifacts, or all of a type."""
    rows = await artifacts.list_artifacts(
        session, caller, key=key, flow_run_id=flow_run_id, kind=type, limit=limit, offset=offset
    )
    return [out(row) for row in rows]


@router.get("/{artifact_id}")
async def read_artifact(artifact_id: uuid.UUID, session: Session, caller: Caller) -> s.Artifact:
    return out(await artifacts.read_artifact(session, caller, artifact_id))


@router.patch("/{artifact_id}")
async def update_artifact(
    artifact_id: uuid.UUID, data: s.ArtifactUpdate, session: Session, caller: Caller
) -> s.Artifact:
    """New data for the artifact (a progress artifact's progress, say)."""
    return out(await artifacts.update_artifact(session, caller, artifact_id, data))


@router.delete("/{artifact_id}", status_code=204)
async def delete_artifact(artifact_id: uuid.UUID, session: Session, caller: Caller) -> Response:
    await artifacts.delete_artifact(session, caller, artifact_id)
    return Response(status_code=204)
