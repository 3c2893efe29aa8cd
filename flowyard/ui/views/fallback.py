"""Paths nothing else answers: a page for people, the API's JSON under ``/api``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from flowyard.ui import _pages as pages

router = APIRouter(route_class=pages.UiRoute, include_in_schema=False)


@router.get("/{path:path}")
async def not_found(request: Request, path: str) -> Response:
    if path == "api" or path.startswith("api/"):
        return pages.api_not_found()
    pages.viewer(request)  # signed-out visitors go to sign-in, as on every page
    return pages.error_page(404, "Not found", "There is no page at this address.")
