"""Global concurrency limits: managed by name; slots taken, renewed and released by lease."""

from __future__ import annotations

import uuid

from flowyard.client._base import ResourceMethods
from flowyard.client._http import segment
from flowyard.schemas import concurrency as cl


class ConcurrencyMethods(ResourceMethods):
    async def create_concurrency_limit(
        self, data: cl.ConcurrencyLimitCreate
    ) -> cl.ConcurrencyLimit:
        return await self._one(cl.ConcurrencyLimit, "POST", "/concurrency-limits", data)

    async def read_concurrency_limit(self, name: str) -> cl.ConcurrencyLimit:
        path = f"/concurrency-limits/{segment(name)}"
        return await self._one(cl.ConcurrencyLimit, "GET", path)

    async def list_concurrency_limits(self) -> list[cl.ConcurrencyLimit]:
        """Every limit by name, with the slots held now."""
        return await self._many(cl.ConcurrencyLimit, "/concurrency-limits")

    async def update_concurrency_limit(
        self, name: str, data: cl.ConcurrencyLimitUpdate
    ) -> cl.ConcurrencyLimit:
        path = f"/concurrency-limits/{segment(name)}"
        return await self._one(cl.ConcurrencyLimit, "PATCH", path, data)

    async def delete_concurrency_limit(self, name: str) -> None:
        await self._send("DELETE", f"/concurrency-limits/{segment(name)}")

    async def acquire_concurrency_slots(self, data: cl.SlotRequest) -> cl.SlotGrant:
        """Take slots of every named limit, or none (``acquired`` false, with a retry hint)."""
        return await self._one(cl.SlotGrant, "POST", "/concurrency-limits/acquire", data)

    async def renew_concurrency_lease(
        self, lease_id: uuid.UUID, lease_seconds: float
    ) -> cl.LeaseRenewed:
        """Keep a lease longer (``NotFoundError`` once it has run out)."""
        path = f"/concurrency-limits/leases/{uuid.UUID(str(lease_id))}/renew"
        body = cl.LeaseRenewal(lease_seconds=lease_seconds)
        return await self._one(cl.LeaseRenewed, "POST", path, body)

    async def release_concurrency_lease(self, lease_id: uuid.UUID) -> None:
        await self._send("DELETE", f"/concurrency-limits/leases/{uuid.UUID(str(lease_id))}")
