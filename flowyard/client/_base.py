"""What every resource's methods share: send a request, read the answer as a model."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import httpx
from pydantic import BaseModel

from flowyard.client._http import HttpCore, Query
from flowyard.schemas.pagination import Page

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


def body_of(data: BaseModel) -> object:
    """A request model as JSON: the top-level fields the caller set, each in full.

    Sending unset top-level fields would turn "leave as is" into "set to the
    default" on PATCH. Nested values go whole: leaving out their unset fields
    would drop defaults that matter, such as a union's ``kind`` discriminator.
    """
    return data.model_dump(mode="json", include=set(data.model_fields_set))


class ResourceMethods:
    """Base of the per-resource method groups that make up ``FlowyardClient``."""

    _http: HttpCore

    async def _one(
        self,
        model: type[M],
        method: str,
        path: str,
        body: BaseModel | None = None,
        *,
        params: Query | None = None,
        idempotent: bool | None = None,
    ) -> M:
        response = await self._send(method, path, body, params=params, idempotent=idempotent)
        return model.model_validate_json(response.content)

    async def _many(self, model: type[M], path: str, *, params: Query | None = None) -> list[M]:
        response = await self._send("GET", path, params=params)
        return [model.model_validate(item) for item in response.json()]

    async def _send(
        self,
        method: str,
        path: str,
        body: BaseModel | None = None,
        *,
        params: Query | None = None,
        idempotent: bool | None = None,
    ) -> httpx.Response:
        return await self._http.request(
            method,
            path,
            params=params,
            json=None if body is None else body_of(body),
            idempotent=idempotent,
        )


async def walk_pages(
    fetch: Callable[[str | None, int], Awaitable[Page[T]]],
    page_size: int,
    limit: int | None = None,
) -> AsyncIterator[T]:
    """Every item of a cursor-paged listing, one page per request as the caller goes.

    ``fetch(cursor, size)`` reads one page; at most ``limit`` items in all.
    """
    cursor: str | None = None
    seen = 0
    while True:
        size = page_size if limit is None else min(page_size, limit - seen)
        if size <= 0:
            return
        page = await fetch(cursor, size)
        for item in page.items:
            yield item
        seen += len(page.items)
        if page.next_cursor is None or not page.items:
            return
        cursor = page.next_cursor
