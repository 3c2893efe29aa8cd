"""Server liveness, the caller's identity, workspaces, API keys and usage."""

from __future__ import annotations

import uuid
from typing import Literal

from flowyard.client._base import ResourceMethods
from flowyard.client._http import query, segment
from flowyard.schemas import workspaces as ws


class WorkspaceMethods(ResourceMethods):
    async def check_health(self) -> bool:
        """Whether the server answers its health check (no key needed)."""
        response = await self._send("GET", "/health")
        body = response.json()
        return isinstance(body, dict) and body.get("status") == "ok"

    async def read_version(self) -> dict[str, str]:
        """The server's version, API version and database dialect."""
        response = await self._send("GET", "/version")
        return {str(k): str(v) for k, v in response.json().items()}

    async def read_me(self) -> ws.Me:
        """Who the key belongs to: workspace, key kind, admin flag, run (for run tokens)."""
        return await self._one(ws.Me, "GET", "/me")

    async def list_workspaces(self) -> list[ws.Workspace]:
        """Every workspace (admin keys), or the caller's own."""
        return await self._many(ws.Workspace, "/workspaces")

    async def create_workspace(self, data: ws.WorkspaceCreate) -> ws.ApiKeyCreated:
        """Create a workspace (admin keys only); returns its first key, shown once."""
        return await self._one(ws.ApiKeyCreated, "POST", "/workspaces", data)

    async def update_workspace(self, name: str, data: ws.WorkspaceUpdate) -> ws.Workspace:
        """Change a workspace's limits (admin keys only)."""
        return await self._one(ws.Workspace, "PATCH", f"/workspaces/{segment(name)}", data)

    async def create_api_key(self, data: ws.ApiKeyCreate) -> ws.ApiKeyCreated:
        """A new API key; its secret is in the answer and nowhere else, ever."""
        return await self._one(ws.ApiKeyCreated, "POST", "/api-keys", data)

    async def list_api_keys(self) -> list[ws.ApiKey]:
        """The workspace's keys: prefix, name, last use (never the secret)."""
        return await self._many(ws.ApiKey, "/api-keys")

    async def revoke_api_key(self, key: uuid.UUID | str) -> ws.ApiKey:
        """Revoke a key by id or by its public prefix."""
        return await self._one(ws.ApiKey, "DELETE", f"/api-keys/{segment(key)}")

    async def read_usage(
        self, month: str | None = None, by: Literal["day", "deployment"] | None = None
    ) -> ws.UsageSummary:
        """Compute minutes used in ``month`` (``YYYY-MM``, default this month), optionally split."""
        return await self._one(ws.UsageSummary, "GET", "/usage", params=query(month=month, by=by))

    async def list_usage_records(self, month: str | None = None) -> list[ws.UsageRecord]:
        """One record per flow run that used compute in ``month``."""
        return await self._many(ws.UsageRecord, "/usage/records", params=query(month=month))
