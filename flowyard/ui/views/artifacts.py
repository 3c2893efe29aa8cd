"""Artifacts: the workspace's latest (by type, key or run); one artifact with its key's versions."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Iterable

from fastapi import APIRouter
from fastapi.responses import Response

from flowyard.schemas import artifacts as s
from flowyard.server.ops import artifacts, flow_runs
from flowyard.ui import _pages as pages
from flowyard.ui._artifacts import TYPES, present

router = APIRouter(route_class=pages.UiRoute, include_in_schema=False)

PAGE = 100
HISTORY = 50
_KEY = re.compile(s.KEY)


async def _run_names(scope: pages.Scope, ids: Iterable[uuid.UUID | None]) -> dict[uuid.UUID, str]:
    """The names of the runs ``ids`` name (a page holds a handful: one read each)."""
    names = {}
    for run_id in {i for i in ids if i is not None}:
        run = await flow_runs.read_flow_run(scope.session, scope.principal, run_id)
        names[run_id] = run.name
    return names


def _uuid_or_none(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


@router.get("/artifacts")
async def artifacts_page(
    view: pages.View, type: str = "", key: str = "", run: str = "", page: str = ""
) -> Response:
    kind = type if type in TYPES else ""
    key = key.strip() if _KEY.fullmatch(key.strip()) else ""
    run_id = _uuid_or_none(run)
    number = int(page) if page.isdigit() and 0 < int(page) < 10_000 else 1
    async with view.scope() as scope:
        rows = await artifacts.list_artifacts(
            scope.session,
            scope.principal,
            key=key or None,
            flow_run_id=run_id,
            kind=kind or None,
            limit=PAGE + 1,
            offset=(number - 1) * PAGE,
        )
        runs = await _run_names(scope, [run_id, *(r.flow_run_id for r in rows[:PAGE])])
    return view.render(
        "artifacts.html",
        scope,
        active="artifacts",
        title="Artifacts",
        artifacts=rows[:PAGE],
        runs=runs,
        run_name=runs.get(run_id) if run_id else None,
        types=TYPES,
        q={"type": kind, "key": key, "run": str(run_id) if run_id else ""},
        filtered=bool(kind or key or run_id),
        page=number,
        has_next=len(rows) > PAGE,
    )


@router.get("/artifacts/{artifact_id}")
async def artifact_page(view: pages.View, artifact_id: uuid.UUID) -> Response:
    async with view.scope() as scope:
        row = await artifacts.read_artifact(scope.session, scope.principal, artifact_id)
        history = []
        if row.key is not None:
            history = await artifacts.list_artifacts(
                scope.session, scope.principal, key=row.key, limit=HISTORY + 1
            )
        runs = await _run_names(scope, [row.flow_run_id])
    artifact = await asyncio.to_thread(present, row)  # a long report renders off the loop
    response = view.render(
        "artifact.html",
        scope,
        active="artifacts",
        title=f"{artifact.title} · artifact",
        artifact=artifact,
        run_name=runs.get(row.flow_run_id) if row.flow_run_id else None,
        history=history[:HISTORY],
        more_history=len(history) > HISTORY,
    )
    return pages.allow_remote_images(response)
