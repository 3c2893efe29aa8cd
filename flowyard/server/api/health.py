"""Liveness and version: no authentication, no database round trip for health."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel

from flowyard._version import __version__

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str


class Version(BaseModel):
    version: str
    api_version: str
    database: str


@router.get("/health")
async def get_health() -> Health:
    return Health(status="ok")


@router.get("/version")
async def get_version(request: Request) -> Version:
    return Version(version=__version__, api_version="1", database=request.app.state.ctx.db.dialect)
