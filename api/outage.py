"""Answers for the time a dependency is down: 503 with Retry-After, never a 500 that reads as
our bug. Callers (the HIS's integration engine, the workbench) retry a 503. Input the database
refuses to store (a NUL character) is a 422, the caller's to correct.

Routes that call Temporal still catch its errors themselves where the answer depends on the
call (a workflow that has ended is a 409); what reaches these handlers is an outage."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from temporalio.client import WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.service import RPCError, RPCStatusCode

from core.db import database_unreachable, unstorable_text
from core.logs import get_logger
from services.updates import workflow_not_ready

log = get_logger(__name__)

RETRY_AFTER_SECONDS = 5


def _unavailable(request: Request, exc: Exception, service: str) -> JSONResponse:
    log.warning(f"{service} unavailable", path=request.url.path, error=type(exc).__name__)
    return JSONResponse(
        {"detail": f"{service} unavailable, retry later"},
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


async def database_down(request: Request, exc: Exception) -> JSONResponse:
    if unstorable_text(exc):
        # A field the models do not check character by character (a free-form JSON key): the
        # input's fault. The transaction is rolled back with the request's session.
        log.warning("input refused by the database", path=request.url.path)
        return JSONResponse(
            {
                "detail": [
                    {
                        "type": "value_error",
                        "loc": ["body"],
                        "msg": "the request holds a character that cannot be stored "
                        "(e.g. NUL, \\u0000)",
                    }
                ]
            },
            status_code=422,
        )
    if not database_unreachable(exc):
        raise exc  # a bad statement is a bug: the server error it is
    return _unavailable(request, exc, "database")


# Temporal answers so while it restarts or is overloaded.
_TEMPORAL_DOWN = {
    RPCStatusCode.UNAVAILABLE,
    RPCStatusCode.DEADLINE_EXCEEDED,
    RPCStatusCode.RESOURCE_EXHAUSTED,
}


async def temporal_down(request: Request, exc: Exception) -> JSONResponse:
    # An update not accepted in time (no worker polling: a deploy, a crash) is the caller's to
    # retry: updates are validated against the workflow's state, so one that did get through
    # refuses its repeat rather than applying twice.
    # So is a workflow still not ready after the update was asked again: it passes like one.
    if isinstance(exc, RPCError) and not (exc.status in _TEMPORAL_DOWN or workflow_not_ready(exc)):
        raise exc
    return _unavailable(request, exc, "workflow service")


def install(app: FastAPI) -> None:
    for database_error in (DBAPIError, PoolTimeout, ConnectionError):
        app.add_exception_handler(database_error, database_down)
    for temporal_error in (RPCError, WorkflowUpdateRPCTimeoutOrCancelledError):
        app.add_exception_handler(temporal_error, temporal_down)
