"""Artifacts: published by runs, read by run or by key."""

from __future__ import annotations

import uuid

from flowyard.client._base import ResourceMethods
from flowyard.client._http import query
from flowyard.schemas import artifacts as art


class ArtifactMethods(ResourceMethods):
    async def create_artifact(self, data: art.ArtifactCreate) -> art.Artifact:
        """Publish an artifact (``data`` is checked against its type)."""
        return await self._one(art.Artifact, "POST", "/artifacts", data)

    async def read_artifact(self, artifact_id: uuid.UUID | str) -> art.Artifact:
        return await self._one(art.Artifact, "GET", f"/artifacts/{uuid.UUID(str(artifact_id))}")

    async def update_artifact(
        self, artifact_id: uuid.UUID | str, data: art.ArtifactUpdate
    ) -> art.Artifact:
        """New data for an artifact (a progress artifact's progress, say)."""
        path = f"/artifacts/{uuid.UUID(str(artifact_id))}"
        return await self._one(art.Artifact, "PATCH", path, data)

    async def delete_artifact(self, artifact_id: uuid.UUID | str) -> None:
        await self._send("DELETE", f"/artifacts/{uuid.UUID(str(artifact_id))}")

    async def list_artifacts(
        self,
        *,
        key: str | None = None,
        flow_run_id: uuid.UUID | str | None = None,
        type: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[art.Artifact]:
        """Newest first: a key's history, a run's artifacts, or all of a type."""
        params = query(
            key=key,
            flow_run_id=str(flow_run_id) if flow_run_id is not None else None,
            type=type,
            limit=limit,
            offset=offset,
        )
        return await self._many(art.Artifact, "/artifacts", params=params)
