"""Work pools and their base job templates."""

from __future__ import annotations

from flowyard.client._base import ResourceMethods
from flowyard.client._http import segment
from flowyard.schemas import work_pools as wp


class WorkPoolMethods(ResourceMethods):
    async def create_work_pool(self, data: wp.WorkPoolCreate) -> wp.WorkPool:
        """Create a pool; a name already used is a ``ConflictError``."""
        return await self._one(wp.WorkPool, "POST", "/work-pools", data)

    async def list_work_pools(self) -> list[wp.WorkPool]:
        """The workspace's pools."""
        return await self._many(wp.WorkPool, "/work-pools")

    async def read_work_pool(self, name: str) -> wp.WorkPool:
        """A pool by name."""
        return await self._one(wp.WorkPool, "GET", f"/work-pools/{segment(name)}")

    async def update_work_pool(self, name: str, data: wp.WorkPoolUpdate) -> wp.WorkPool:
        """Change the fields set in ``data`` (pause with ``WorkPoolUpdate(paused=True)``)."""
        return await self._one(wp.WorkPool, "PATCH", f"/work-pools/{segment(name)}", data)

    async def delete_work_pool(self, name: str) -> None:
        """Delete a pool."""
        await self._send("DELETE", f"/work-pools/{segment(name)}")

    async def read_default_base_job_template(
        self, pool_type: wp.WorkPoolType | str
    ) -> dict[str, object]:
        """The JSON-schema job template a new pool of ``pool_type`` gets."""
        path = f"/work-pools/default-base-job-template/{segment(pool_type)}"
        response = await self._send("GET", path)
        template: dict[str, object] = response.json()
        return template
