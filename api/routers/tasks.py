"""Staff work queue: follow-up tasks from the database projection (FU-4, FU-7, FU-8)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi.responses import JSONResponse

from api.deps import ContainerDep, SessionDep
from api.permissions import Permission, ensure_visible, require
from api.routers.patient_files import file_url
from api.schemas import FormResponseOut, Page, PatientBrief, TaskDetail, TaskOut, response_of
from core.models import CareTask, PathwayRun, Patient, StaffRole, TaskStatus, utcnow
from core.validation import Count, Key
from integrations.fhir.extensions import questionnaire_url
from integrations.fhir.questionnaire_response import to_questionnaire_response
from pathways.definition import PathwaySnapshot
from services.staff import StaffPrincipal
from services.staff_lists import Due, PatientFields, list_tasks, patient_brief, task_response

router = APIRouter(prefix="/api/tasks", tags=["tasks"])
ReaderDep = Annotated[StaffPrincipal, Depends(require(Permission.RUNS_READ))]


def task_out(task: CareTask, patient: PatientFields, role: StaffRole) -> TaskOut:
    return response_of(
        TaskOut, task, patient=PatientBrief.model_validate(patient_brief(patient, role))
    )


@router.get("", response_model=Page[TaskOut])
async def get_tasks(
    container: ContainerDep,
    session: SessionDep,
    staff: ReaderDep,
    task_status: Annotated[list[TaskStatus] | None, Query(alias="status")] = None,
    due: Due = "all",
    plan_id: Key | None = None,
    patient_id: Key | None = None,
    mine: Annotated[bool, Query(description="only tasks for the caller's role")] = False,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[Count, Query()] = 0,
) -> Page[TaskOut]:
    """Work queues (FU-8, CM-5): today, this week or all; ``mine`` for the caller's role."""
    rows, total = await list_tasks(
        session,
        staff,
        statuses=[s.value for s in task_status or []],
        due=due,
        now=utcnow(),
        tz=container.settings.tz,
        plan_id=plan_id,
        patient_id=patient_id,
        role=staff.role.value if mine else None,
        limit=limit,
        offset=offset,
    )
    return Page(
        items=[task_out(task, patient, staff.role) for task, patient in rows],
        total=total,
        limit=limit,
        offset=offset,
    )


@router.get("/{task_id}", response_model=TaskDetail)
async def get_task(task_id: Key, session: SessionDep, staff: ReaderDep) -> TaskDetail:
    task = await session.get(CareTask, task_id)
    if task is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no task with id '{task_id}'")
    await ensure_visible(
        session, staff, patient_id=task.patient_id, department_code=task.department_code
    )
    patient = await session.get(Patient, task.patient_id)
    assert patient is not None
    response = await task_response(session, task.id)
    return response_of(
        TaskDetail,
        task,
        patient=PatientBrief.model_validate(patient_brief(patient, staff.role)),
        response=FormResponseOut.model_validate(response, from_attributes=True)
        if response
        else None,
    )


@router.get(
    "/{task_id}/questionnaire-response",
    response_class=JSONResponse,
    responses={
        200: {
            "content": {"application/fhir+json": {}},
            "description": "a FHIR R4 QuestionnaireResponse",
        }
    },
)
async def get_questionnaire_response(
    task_id: Key, container: ContainerDep, session: SessionDep, staff: ReaderDep
) -> JSONResponse:
    """The patient's answers to a form task as a FHIR R4 QuestionnaireResponse, for the form
    version the run was pinned to. The subject is a reference, never a name; photos and
    signatures are signed links that expire."""
    task = await session.get(CareTask, task_id)
    if task is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no task with id '{task_id}'")
    await ensure_visible(
        session, staff, patient_id=task.patient_id, department_code=task.department_code
    )
    response = await task_response(session, task.id)
    run = await session.get(PathwayRun, task.workflow_id)
    form = (
        PathwaySnapshot.model_validate(run.plan_snapshot).forms.get(task.form_id or "")
        if run is not None
        else None
    )
    if response is None or form is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "this task has no submitted form")
    base = container.settings.public_base_url.rstrip("/")
    resource = to_questionnaire_response(
        form,
        response.answers,
        questionnaire_url=questionnaire_url(base, form),
        response_id=response.id,
        subject=f"Patient/{task.patient_id}",
        authored=response.submitted_at,
        file_url=lambda reference: f"{base}{file_url(container, reference)}",
    )
    return JSONResponse(resource, media_type="application/fhir+json")
