"""Staff operate running pathways (FU-8, CM-4): reschedule or skip an occurrence, add an ad-hoc
step, pause, resume, end, migrate to a newer version (with a dry run), and record a staff task's
outcome. Every change goes through a workflow update whose validator explains a refusal (409),
and leaves an audit entry naming who, when and why."""

from __future__ import annotations

from typing import Annotated, Literal, TypeVar

from fastapi import APIRouter, Depends, HTTPException, status
from pydantic import BaseModel, Field
from temporalio.client import WorkflowQueryFailedError

from api.deps import ContainerDep, SessionDep
from api.permissions import Permission, ensure_visible, require
from contracts.pathway import (
    QUERY_MIGRATION_PLAN,
    UPDATE_ADD_STEP,
    UPDATE_COMPLETE_TASK,
    UPDATE_END,
    UPDATE_MIGRATE,
    UPDATE_PAUSE,
    UPDATE_RESCHEDULE,
    UPDATE_RESUME,
    UPDATE_SKIP,
    AdHocStep,
    End,
    Migration,
    MigrationPlan,
    Occurrence,
    Pause,
    Reschedule,
    Resume,
    Skip,
    TaskCompletion,
)
from contracts.runs import RunProgress
from core.models import CareTask, PathwayRun
from core.validation import Count, Key, Line, SaneDateTime, Text, Version
from pathways.definition import Action, Offset
from services.pathway_definitions import DefinitionConflict, published_snapshot
from services.staff import StaffPrincipal
from services.updates import UpdateConflict, run_update

router = APIRouter(tags=["pathway runs"])
R = TypeVar("R")
ClinicalDep = Annotated[StaffPrincipal, Depends(require(Permission.RUNS_OPERATE))]


async def update_run(
    container: ContainerDep, workflow_id: str, name: str, argument: BaseModel, result: type[R]
) -> R:
    """Runs a workflow update; a refusal by its validator, or a run that is gone, is a 409.
    Temporal being unreachable is left to the outage handler (503)."""
    try:
        return await run_update(
            None, container.temporal, workflow_id, name, argument, result,
            ended="the run is not running",
        )  # fmt: skip
    except UpdateConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc


async def visible_run(session: SessionDep, staff: StaffPrincipal, workflow_id: str) -> PathwayRun:
    """The run, if it exists and is in the caller's data scope (else 404)."""
    run = await session.get(PathwayRun, workflow_id)
    if run is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no run with id '{workflow_id}'")
    await ensure_visible(
        session, staff, patient_id=run.patient_id, department_code=run.department_code
    )
    return run


class Reason(BaseModel):
    reason: Annotated[Text, Field(min_length=1, max_length=300)]


class RescheduleIn(Reason):
    due_at: SaneDateTime


@router.post(
    "/api/runs/{workflow_id}/occurrences/{step_id}/{index}/reschedule", response_model=Occurrence
)
async def reschedule(
    workflow_id: Key,
    step_id: Key,
    index: Count,
    body: RescheduleIn,
    container: ContainerDep,
    session: SessionDep,
    staff: ClinicalDep,
) -> Occurrence:
    await visible_run(session, staff, workflow_id)
    change = Reschedule(
        key=f"{step_id}#{index}", due_at=body.due_at, reason=body.reason, actor=staff.id
    )
    return await update_run(container, workflow_id, UPDATE_RESCHEDULE, change, Occurrence)


@router.post(
    "/api/runs/{workflow_id}/occurrences/{step_id}/{index}/skip", response_model=Occurrence
)
async def skip(
    workflow_id: Key,
    step_id: Key,
    index: Count,
    body: Reason,
    container: ContainerDep,
    session: SessionDep,
    staff: ClinicalDep,
) -> Occurrence:
    await visible_run(session, staff, workflow_id)
    change = Skip(key=f"{step_id}#{index}", reason=body.reason, actor=staff.id)
    return await update_run(container, workflow_id, UPDATE_SKIP, change, Occurrence)


class AdHocIn(Reason):
    title: Annotated[Line, Field(min_length=1, max_length=100)]
    action: Action
    due_at: SaneDateTime
    validity: Offset | None = None
    lost_after: Offset | None = None


@router.post("/api/runs/{workflow_id}/steps", response_model=Occurrence)
async def add_step(
    workflow_id: Key,
    body: AdHocIn,
    container: ContainerDep,
    session: SessionDep,
    staff: ClinicalDep,
) -> Occurrence:
    await visible_run(session, staff, workflow_id)
    change = AdHocStep(actor=staff.id, **body.model_dump())
    return await update_run(container, workflow_id, UPDATE_ADD_STEP, change, Occurrence)


async def _lifecycle(
    container: ContainerDep,
    session: SessionDep,
    staff: StaffPrincipal,
    workflow_id: str,
    name: str,
    change: BaseModel,
) -> RunProgress:
    await visible_run(session, staff, workflow_id)
    return await update_run(container, workflow_id, name, change, RunProgress)


@router.post("/api/runs/{workflow_id}/pause", response_model=RunProgress)
async def pause(
    workflow_id: Key,
    body: Reason,
    container: ContainerDep,
    session: SessionDep,
    staff: ClinicalDep,
) -> RunProgress:
    change = Pause(reason=body.reason, actor=staff.id)
    return await _lifecycle(container, session, staff, workflow_id, UPDATE_PAUSE, change)


@router.post("/api/runs/{workflow_id}/resume", response_model=RunProgress)
async def resume(
    workflow_id: Key,
    body: Reason,
    container: ContainerDep,
    session: SessionDep,
    staff: ClinicalDep,
) -> RunProgress:
    change = Resume(reason=body.reason, actor=staff.id)
    return await _lifecycle(container, session, staff, workflow_id, UPDATE_RESUME, change)


@router.post("/api/runs/{workflow_id}/end", response_model=RunProgress)
async def end(
    workflow_id: Key,
    body: Reason,
    container: ContainerDep,
    session: SessionDep,
    staff: ClinicalDep,
) -> RunProgress:
    change = End(reason=body.reason, actor=staff.id)
    return await _lifecycle(container, session, staff, workflow_id, UPDATE_END, change)


class MigrateIn(Reason):
    to_version: Version
    mapping: dict[Line, Line | None] = Field(max_length=200)
    dry_run: bool = False


@router.post("/api/runs/{workflow_id}/migration", response_model=MigrationPlan)
async def migrate(
    workflow_id: Key,
    body: MigrateIn,
    container: ContainerDep,
    session: SessionDep,
    staff: ClinicalDep,
) -> MigrationPlan:
    """Moves the run to a newer published version. With ``dry_run`` it only answers what would
    change: kept in progress, rescheduled, removed, added."""
    run = await visible_run(session, staff, workflow_id)
    try:
        target = await published_snapshot(session, run.plan_id, body.to_version)
    except (LookupError, DefinitionConflict) as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    migration = Migration(target=target, mapping=body.mapping, reason=body.reason, actor=staff.id)
    if body.dry_run:
        try:
            plan: MigrationPlan = await container.temporal.get_workflow_handle(workflow_id).query(
                QUERY_MIGRATION_PLAN, migration, result_type=MigrationPlan
            )
        except WorkflowQueryFailedError as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc.message)) from exc
        return plan
    return await update_run(container, workflow_id, UPDATE_MIGRATE, migration, MigrationPlan)


class CompleteIn(Reason):
    outcome: Literal["completed", "abnormal"]
    next_followup_at: SaneDateTime | None = None


@router.post("/api/tasks/{task_id}/complete", response_model=Occurrence)
async def complete_task(
    task_id: Key,
    body: CompleteIn,
    container: ContainerDep,
    session: SessionDep,
    staff: ClinicalDep,
) -> Occurrence:
    """FU-8: the outcome of a phone follow-up or visit, and optionally the next one's date."""
    task = await session.get(CareTask, task_id)
    if task is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no task '{task_id}'")
    await ensure_visible(
        session, staff, patient_id=task.patient_id, department_code=task.department_code
    )
    change = TaskCompletion(
        key=f"{task.step_id}#{task.occurrence}",
        outcome=body.outcome,
        reason=body.reason,
        next_followup_at=body.next_followup_at,
        actor=staff.id,
    )
    return await update_run(container, task.workflow_id, UPDATE_COMPLETE_TASK, change, Occurrence)
