"""Domain errors and bad input become HTTP here, and only here.

Every error body is ``{"detail": "<one clear sentence>", ...}``. Anything
unexpected is logged with its traceback and answered 500 with no internals.
``RESPONSES`` documents these answers in the OpenAPI document, so that it
describes what the API really returns (FastAPI's default 422 body is not ours).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException

from flowyard.schemas.errors import ErrorBody
from flowyard.server.db import StorageError
from flowyard.server.ops.errors import DomainError, InvalidInput

logger = logging.getLogger("flowyard.server.api")

# What any authenticated operation may answer besides its success.
_ERRORS = {
    401: "No valid API key or run token.",
    403: "Not allowed for this key: an admin key is needed, or a run token acts outside its run.",
    404: "No such object in the caller's workspace.",
    409: "Conflicts with an existing object or with the run's current state.",
    413: "The request body is larger than the server accepts.",
    422: "Bad input: `detail` names the first bad field and what was expected; `errors` lists each.",
    503: "The database is unavailable.",
}
RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in _ERRORS.items()
}


def _loc(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def _validation_message(exc: RequestValidationError) -> tuple[str, list[dict[str, Any]]]:
    errors = []
    for err in exc.errors():
        field = _loc(tuple(err.get("loc", ())))
        msg = str(err.get("msg", "invalid"))
        if err.get("type") == "json_invalid":
            field, msg = "body", "malformed JSON: " + str(err.get("ctx", {}).get("error", ""))
        elif err.get("type") == "extra_forbidden":
            msg = "is not a known field"
        errors.append({"field": field, "message": msg})
    first = errors[0] if errors else {"field": "body", "message": "invalid"}
    return f"{first['field']}: {first['message']}", errors


def install(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> JSONResponse:
        body: dict[str, Any] = {"detail": str(exc)}
        if isinstance(exc, InvalidInput):
            body["errors"] = [{"field": exc.field, "message": exc.detail}]
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        return JSONResponse(body, status_code=exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        detail, errors = _validation_message(exc)
        return JSONResponse({"detail": detail, "errors": errors}, status_code=422)

    @app.exception_handler(IntegrityError)
    async def _integrity(request: Request, exc: IntegrityError) -> JSONResponse:
        logger.info("integrity error on %s: %s", request.url.path, exc.orig)
        return JSONResponse(
            {"detail": "conflicts with an existing object (a name or key already used)"},
            status_code=409,
        )

    @app.exception_handler(DBAPIError)
    async def _data(request: Request, exc: DBAPIError) -> JSONResponse:
        # A value the database refuses (e.g. a NUL character, which PostgreSQL text
        # and JSON cannot hold) is the caller's input; anything else is ours.
        # SQLSTATE class 22 is PostgreSQL's "data exception".
        sqlstate = str(getattr(exc.orig, "sqlstate", None) or "")
        if (
            isinstance(exc, DataError)
            or sqlstate.startswith("22")
            or "invalid byte sequence" in str(exc.orig)
        ):
            logger.info("unstorable value on %s: %s", request.url.path, exc.orig)
            return JSONResponse(
                {
                    "detail": "a value cannot be stored (NUL characters and invalid text are refused)"
                },
                status_code=422,
            )
        logger.error("database error on %s", request.url.path, exc_info=exc)
        return JSONResponse({"detail": "database error; see the server log"}, status_code=503)

    @app.exception_handler(StorageError)
    async def _storage(request: Request, exc: StorageError) -> JSONResponse:
        logger.error("storage error on %s: %s", request.url.path, exc)
        return JSONResponse({"detail": "the database is unavailable"}, status_code=503)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        cause = exc.__cause__
        if exc.status_code == 400 and isinstance(cause, (ValueError, RecursionError)):
            # FastAPI's answer to a JSON body it cannot decode (bytes that are not
            # UTF-8, arrays in arrays thousands deep): malformed JSON like any
            # other, said the same way.
            reason = "nested too deeply" if isinstance(cause, RecursionError) else str(cause)
            message = f"malformed JSON: {reason}"
            return JSONResponse(
                {"detail": f"body: {message}", "errors": [{"field": "body", "message": message}]},
                status_code=422,
            )
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal error; see the server log"}, status_code=500)
