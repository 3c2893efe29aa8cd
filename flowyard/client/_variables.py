"""A workspace's variables (JSON), secrets (write-only but for flows) and results (bytes)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable

from flowyard.client._base import ResourceMethods, walk_pages
from flowyard.client._http import query, segment
from flowyard.schemas import variables as var
from flowyard.schemas.pagination import Page

OCTET_STREAM = {"Content-Type": "application/octet-stream"}


def result_path(key: str) -> str:
    # Result keys are namespaced with "/" ("<flow>/<task>/<hash>"); the slashes
    # stay, and each part is escaped on its own so ".." cannot climb.
    return "/results/" + "/".join(segment(part) for part in key.split("/"))


class VariableMethods(ResourceMethods):
    async def set_variable(self, name: str, data: var.VariableSet) -> var.Variable:
        """Create or replace a variable."""
        return await self._one(var.Variable, "PUT", f"/variables/{segment(name)}", data)

    async def read_variable(self, name: str) -> var.Variable:
        """A variable by name (``NotFoundError`` if unset)."""
        return await self._one(var.Variable, "GET", f"/variables/{segment(name)}")

    async def delete_variable(self, name: str) -> None:
        """Delete a variable."""
        await self._send("DELETE", f"/variables/{segment(name)}")

    async def list_variables(
        self, *, prefix: str | None = None, limit: int = 100, cursor: str | None = None
    ) -> Page[var.Variable]:
        """One page of variables by name; ``prefix`` filters."""
        params = query(prefix=prefix, limit=limit, cursor=cursor)
        return await self._one(Page[var.Variable], "GET", "/variables", params=params)

    async def iter_variables(
        self, *, prefix: str | None = None, page_size: int = 100
    ) -> AsyncIterator[var.Variable]:
        """Every variable (whose name starts with ``prefix``), page by page."""

        def fetch(cursor: str | None, size: int) -> Awaitable[Page[var.Variable]]:
            return self.list_variables(prefix=prefix, limit=size, cursor=cursor)

        async for variable in walk_pages(fetch, page_size):
            yield variable

    async def set_secret(self, name: str, value: str) -> var.SecretInfo:
        """Create or replace a secret; the answer never contains the value."""
        body = var.SecretSet(value=value)
        return await self._one(var.SecretInfo, "PUT", f"/secrets/{segment(name)}", body)

    async def read_secret(self, name: str) -> var.SecretInfo:
        """A secret's name and times (never its value)."""
        return await self._one(var.SecretInfo, "GET", f"/secrets/{segment(name)}")

    async def read_secret_value(self, name: str) -> var.SecretValue:
        """A secret's value (for flows that need it; never print it)."""
        return await self._one(var.SecretValue, "GET", f"/secrets/{segment(name)}/value")

    async def delete_secret(self, name: str) -> None:
        """Delete a secret."""
        await self._send("DELETE", f"/secrets/{segment(name)}")

    async def list_secrets(
        self, *, prefix: str | None = None, limit: int = 100, cursor: str | None = None
    ) -> Page[var.SecretInfo]:
        """One page of secret names and times, never values; ``prefix`` filters."""
        params = query(prefix=prefix, limit=limit, cursor=cursor)
        return await self._one(Page[var.SecretInfo], "GET", "/secrets", params=params)

    async def iter_secrets(
        self, *, prefix: str | None = None, page_size: int = 100
    ) -> AsyncIterator[var.SecretInfo]:
        """Every secret's name and times, page by page."""

        def fetch(cursor: str | None, size: int) -> Awaitable[Page[var.SecretInfo]]:
            return self.list_secrets(prefix=prefix, limit=size, cursor=cursor)

        async for secret in walk_pages(fetch, page_size):
            yield secret

    async def write_result(
        self, key: str, data: bytes, *, expires_in: int | None = None
    ) -> var.ResultInfo:
        """Store a result's bytes under ``key`` (replacing earlier ones), optionally expiring."""
        response = await self._http.request(
            "PUT",
            result_path(key),
            content=data,
            headers=OCTET_STREAM,
            params=query(expires_in=expires_in),
        )
        return var.ResultInfo.model_validate_json(response.content)

    async def read_result(self, key: str) -> bytes:
        """A stored result's bytes (``NotFoundError`` if missing or expired)."""
        response = await self._http.request("GET", result_path(key))
        return response.content

    async def delete_result(self, key: str) -> None:
        """Delete a stored result."""
        await self._http.request("DELETE", result_path(key))
