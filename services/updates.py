"""Asking a workflow to take a step (an update) on behalf of a caller: the answer, or the
workflow's reason when the step does not apply, or a plain "it has ended". What the API's
routes and pages share, whatever the workflow (a complaint, a nursing order, an exam, a run)."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from core.db import release_connection

R = TypeVar("R")


class UpdateConflict(Exception):
    """The step does not apply as things stand; the message is the workflow's reason."""


async def run_update(
    session: AsyncSession | None,
    temporal: Client,
    workflow_id: str,
    update: str,
    argument: BaseModel,
    result_type: type[R],
    *,
    ended: str,
) -> R:
    """The update's answer; UpdateConflict with the workflow's reason when it refuses, or with
    ``ended`` when the workflow is gone. Temporal being unreachable is left to the caller (the
    API answers 503). The session's connection is given back first: an update may wait."""
    if session is not None:
        await release_connection(session)
    handle = temporal.get_workflow_handle(workflow_id)
    try:
        result: R = await handle.execute_update(update, argument, result_type=result_type)
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        reason = cause.message if isinstance(cause, ApplicationError) else str(cause or exc)
        raise UpdateConflict(reason) from exc
    except RPCError as exc:
        if exc.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION):
            raise UpdateConflict(ended) from exc
        raise
    return result
