"""The result store: raw bytes by key, shared by every run of a workspace."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response

from flowyard.schemas import variables as s
from flowyard.server.api.deps import Caller, Ctx, Session
from flowyard.server.ops import results
from flowyard.server.ops.results import TooLarge

router = APIRouter(prefix="/results", tags=["results"])

Key = Annotated[
    str,
    Path(
        pattern=s.RESULT_KEY,
        max_length=s.MAX_RESULT_KEY,
        description="Letters, digits and _.:=+-, in segments separated by /.",
    ),
]
OCTETS = "application/octet-stream"
_BINARY_BODY = {
    "requestBody": {
        "required": True,
        "content": {OCTETS: {"schema": {"type": "string", "format": "binary"}}},
    }
}
_BINARY_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {OCTETS: {"schema": {"type": "string", "format": "binary"}}}}
}
_CREATED: dict[int | str, dict[str, Any]] = {
    201: {"model": s.ResultInfo, "description": "Created."}
}


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused as soon as it passes ``limit`` (without reading the rest)."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise TooLarge("body", f"a result may be at most {limit} bytes; got {declared}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge("body", f"a result may be at most {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@router.put("/{key:path}", openapi_extra=_BINARY_BODY, responses=_CREATED)
async def put_result(
    key: Key,
    request: Request,
    session: Session,
    caller: Caller,
    ctx: Ctx,
    response: Response,
    expires_in: int | None = Query(
        default=None, ge=1, le=10 * 365 * 86400, description="Seconds until it expires."
    ),
) -> s.ResultInfo:
    """Store the body's bytes under ``key``: created (201) or replaced (200)."""
    data = await _read_body(request, ctx.settings.result_max_bytes)
    row, created = await results.put_result(
        session,
        caller,
        key,
        data,
        max_bytes=ctx.settings.result_max_bytes,
        quota_bytes=ctx.settings.results_quota_bytes,
        expires_in=expires_in,
    )
    response.status_code = 201 if created else 200
    return s.ResultInfo.model_validate(row)


@router.get("/{key:path}", response_class=Response, responses=_BINARY_RESPONSE)
async def read_result(key: Key, session: Session, caller: Caller) -> Response:
    row = await results.read_result(session, caller, key)
    headers = {"X-Flowyard-Expires": row.expires.isoformat()} if row.expires else None
    return Response(content=row.data, media_type=OCTETS, headers=headers)


@router.delete("/{key:path}", status_code=204)
async def delete_result(key: Key, session: Session, caller: Caller) -> Response:
    await results.delete_result(session, caller, key)
    return Response(status_code=204)
