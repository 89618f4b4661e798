"""Answers for the time a dependency is down: 503 with Retry-After, never a 500 that reads as
our bug. Callers (the HIS's integration engine, the workbench) retry a 503."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from core.db import database_unreachable
from core.logs import get_logger

log = get_logger(__name__)

RETRY_AFTER_SECONDS = 5


async def database_down(request: Request, exc: Exception) -> JSONResponse:
    if not database_unreachable(exc):
        raise exc  # a bad statement is a bug: the server error it is
    log.warning("database unreachable", path=request.url.path, error=type(exc).__name__)
    return JSONResponse(
        {"detail": "database unavailable, retry later"},
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def install(app: FastAPI) -> None:
    for kind in (DBAPIError, PoolTimeout, ConnectionError):
        app.add_exception_handler(kind, database_down)
