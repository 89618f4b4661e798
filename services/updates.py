"""Asking a workflow to take a step (an update) on behalf of a caller: the answer, or the
workflow's reason when the step does not apply, or a plain "it has ended". What the API's
routes and pages share, whatever the workflow (a complaint, a nursing order, an exam, a run)."""

from __future__ import annotations

import asyncio
import uuid
from typing import TypeVar

from pydantic import BaseModel
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.api.errordetails.v1 import WorkflowNotReadyFailure
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from core.db import release_connection

R = TypeVar("R")

# Pauses before asking again while the workflow is not ready (about 1.5 s in all).
NOT_READY_BACKOFF = (0.05, 0.1, 0.2, 0.4, 0.8)


def workflow_not_ready(exc: BaseException) -> bool:
    """The server dropped the update before the workflow saw it because the workflow task it
    rode on failed. That happens in normal operation: an update that ends the run arrives
    while an activity or child result is landing, the server refuses the task's completion
    ("UnhandledCommand") and redoes it at once. Nothing was applied, so asking again is safe."""
    if not isinstance(exc, RPCError) or exc.status != RPCStatusCode.FAILED_PRECONDITION:
        return False
    return any(d.Is(WorkflowNotReadyFailure.DESCRIPTOR) for d in exc.grpc_status.details)


async def execute_update(
    handle: WorkflowHandle[object, object], update: str, argument: BaseModel, result_type: type[R]
) -> R:
    """``execute_update``, asked again while the workflow is not ready. Every attempt carries
    the same update id, so one the server did take is answered, not applied a second time."""
    update_id = str(uuid.uuid4())

    async def attempt() -> R:
        result: R = await handle.execute_update(
            update, argument, id=update_id, result_type=result_type
        )
        return result

    for pause in NOT_READY_BACKOFF:
        try:
            return await attempt()
        except RPCError as exc:
            if not workflow_not_ready(exc):
                raise
        await asyncio.sleep(pause)
    return await attempt()


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
    ``ended`` when the workflow is gone. Temporal being unreachable, or the workflow staying not
    ready, is left to the caller (the API answers 503). The session's connection is given back
    first: an update may wait."""
    if session is not None:
        await release_connection(session)
    handle = temporal.get_workflow_handle(workflow_id)
    try:
        return await execute_update(handle, update, argument, result_type)
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        reason = cause.message if isinstance(cause, ApplicationError) else str(cause or exc)
        raise UpdateConflict(reason) from exc
    except RPCError as exc:
        gone = exc.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION)
        if gone and not workflow_not_ready(exc):
            raise UpdateConflict(ended) from exc
        raise
