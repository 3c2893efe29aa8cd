"""Artifacts: checked by type, kept with their run, and read by run or by key.

Data is checked and normalised once, here, so that every reader (API, CLI,
UI) gets one shape per type: markdown is text; a table is ``{"columns":
[...], "rows": [[...], ...]}`` whichever of Prefect's three forms it came
in; a link or an image is ``{"url": ..., "text": ...}`` with an http(s) URL;
progress is a number from 0 to 100. Every field error names ``data`` and
what was expected, and nothing is written.

A run token creates and updates artifacts of its own run tree only (an
artifact without a run is its own run's); reading and deleting need an API
key. Several artifacts under one key are that key's history, newest first.
"""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from flowyard.schemas import artifacts as s
from flowyard.server.db import models as m
from flowyard.server.ops import flow_runs
from flowyard.server.ops.auth import Principal
from flowyard.server.ops.errors import InvalidInput, NotFound
from flowyard.server.ops.variables import check_value

MAX_PAGE = 500
MAX_TABLE_COLUMNS = 500
MAX_TABLE_CELLS = 250_000


def _url(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(field, f"expected a URL, got {type(value).__name__} {value!r:.80}")
    parts = urlsplit(value.strip())
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise InvalidInput(field, f"expected an http:// or https:// URL, got {value!r:.200}")
    return value.strip()


def _check_shape(columns: int, rows: int) -> None:
    """Refuse a table before building it: padding short rows or columns could otherwise
    turn a small body into millions of cells."""
    if columns > MAX_TABLE_COLUMNS:
        raise InvalidInput("data", f"has {columns} columns; the limit is {MAX_TABLE_COLUMNS}")
    if columns * rows > MAX_TABLE_CELLS:
        raise InvalidInput(
            "data",
            f"has {rows} rows of {columns} columns ({columns * rows} cells); "
            f"the limit is {MAX_TABLE_CELLS} cells",
        )


def _table(value: Any) -> dict[str, Any]:
    """Rows as objects, rows as lists, or an object of columns → columns and rows."""
    if isinstance(value, dict) and all(isinstance(v, list) for v in value.values()):
        _check_shape(len(value), max((len(v) for v in value.values()), default=0))
        columns = [str(c) for c in value]
        rows = [list(row) for row in itertools.zip_longest(*value.values())]
    elif isinstance(value, list) and all(isinstance(r, dict) for r in value):
        names: dict[str, None] = {}
        for row in value:
            names.update(dict.fromkeys(str(c) for c in row))
            if len(names) > MAX_TABLE_COLUMNS:
                break
        _check_shape(len(names), len(value))
        columns = list(names)
        rows = [[row.get(c) for c in columns] for row in value]
    elif isinstance(value, list) and all(isinstance(r, list) for r in value):
        _check_shape(max((len(r) for r in value), default=0), len(value))
        columns, rows = [], [list(r) for r in value]
    else:
        raise InvalidInput(
            "data",
            "expected a table: a list of rows (all objects or all lists), "
            "or an object whose values are columns (lists)",
        )
    table = {"columns": columns, "rows": rows}
    check_value(table, "data", s.MAX_DATA_BYTES)  # as stored, padding included
    return table


def normalise(kind: str, data: Any) -> Any:
    """The stored form of ``data`` for an artifact of type ``kind``; refuses what does not fit."""
    check_value(data, "data", s.MAX_DATA_BYTES)
    if kind == "markdown":
        if not isinstance(data, str):
            raise InvalidInput("data", f"expected markdown text, got {type(data).__name__}")
        return data
    if kind == "table":
        return _table(data)
    if kind in {"link", "image"}:
        if isinstance(data, dict):
            text = data.get("text")
            if text is not None and not isinstance(text, str):
                raise InvalidInput("data.text", f"expected text, got {type(text).__name__}")
            return {"url": _url(data.get("url"), "data.url"), "text": text}
        return {"url": _url(data, "data"), "text": None}
    # progress
    if isinstance(data, bool) or not isinstance(data, int | float) or not 0 <= data <= 100:
        raise InvalidInput("data", f"expected progress, a number from 0 to 100, got {data!r:.80}")
    return data


async def _run_of(
    session: AsyncSession, principal: Principal, data: s.ArtifactCreate
) -> uuid.UUID | None:
    run_id = data.flow_run_id
    if run_id is None and principal.is_run_token:
        run_id = principal.flow_run_id
    if run_id is None:
        if data.task_run_id is not None:
            raise InvalidInput("flow_run_id", "is required with task_run_id")
        return None
    try:
        await flow_runs.read_flow_run(session, principal, run_id)
    except NotFound:
        raise InvalidInput("flow_run_id", f"no flow run {run_id} in this workspace") from None
    return run_id


async def create_artifact(
    session: AsyncSession, principal: Principal, data: s.ArtifactCreate
) -> m.Artifact:
    stored = normalise(data.type, data.data)
    run_id = await _run_of(session, principal, data)
    now = datetime.now(UTC)
    row = m.Artifact(
        workspace_id=principal.workspace_id,
        key=data.key,
        type=data.type,
        description=data.description,
        data={"value": stored},
        flow_run_id=run_id,
        task_run_id=data.task_run_id,
        created=now,
        updated=now,
    )
    session.add(row)
    await session.flush()
    return row


async def _row(session: AsyncSession, principal: Principal, artifact_id: uuid.UUID) -> m.Artifact:
    row = await session.get(m.Artifact, artifact_id)
    if row is None or row.workspace_id != principal.workspace_id:
        raise NotFound("artifact", artifact_id)
    if principal.is_run_token:
        if row.flow_run_id is None:
            raise NotFound("artifact", artifact_id)
        try:
            await flow_runs.read_flow_run(session, principal, row.flow_run_id)
        except NotFound:
            raise NotFound("artifact", artifact_id) from None
    return row


async def read_artifact(
    session: AsyncSession, principal: Principal, artifact_id: uuid.UUID
) -> m.Artifact:
    principal.require_api_key()
    return await _row(session, principal, artifact_id)


async def update_artifact(
    session: AsyncSession, principal: Principal, artifact_id: uuid.UUID, data: s.ArtifactUpdate
) -> m.Artifact:
    """New data (checked against the artifact's type) and, if given, a new description."""
    row = await _row(session, principal, artifact_id)
    row.data = {"value": normalise(row.type, data.data)}
    if data.description is not None:
        row.description = data.description
    row.updated = datetime.now(UTC)
    await session.flush()
    return row


async def list_artifacts(
    session: AsyncSession,
    principal: Principal,
    *,
    key: str | None = None,
    flow_run_id: uuid.UUID | None = None,
    kind: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[m.Artifact]:
    """The workspace's artifacts, newest first: of a key (its history), of a run, of a type."""
    principal.require_api_key()
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput("limit", f"expected 1..{MAX_PAGE}")
    a = m.Artifact
    query = select(a).where(a.workspace_id == principal.workspace_id)
    if key is not None:
        query = query.where(a.key == key)
    if flow_run_id is not None:
        query = query.where(a.flow_run_id == flow_run_id)
    if kind is not None:
        query = query.where(a.type == kind)
    query = query.order_by(a.created.desc(), a.id.desc()).limit(limit).offset(offset)
    return list((await session.execute(query)).scalars())


async def delete_artifact(
    session: AsyncSession, principal: Principal, artifact_id: uuid.UUID
) -> None:
    row = await read_artifact(session, principal, artifact_id)
    await session.execute(delete(m.Artifact).where(m.Artifact.id == row.id))
