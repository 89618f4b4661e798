"""Complaints and praise (SAT-3) for staff: open a case (from a survey answer, a follow-up, or
what a patient said in person), the department's queue, a case with its history, the steps
(acknowledge, resolve, reassign) and the statistics. The patient rates the outcome on the page
their message links to (/c/..., complaint_pages.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Response, status
from pydantic import BaseModel, Field

from api.deps import ContainerDep, SessionDep
from api.permissions import Permission, ensure_patient_visible, ensure_visible, require
from api.schemas import Page, field_error
from complaints.lifecycle import CATEGORY_NAMES, Category, ComplaintStatus, Escalation, Kind
from contracts.complaint import (
    UPDATE_ACKNOWLEDGE,
    UPDATE_REASSIGN,
    UPDATE_RESOLVE,
    Acknowledgement,
    ComplaintState,
    Reassignment,
    Resolution,
    Step,
)
from core.models import CareTask, Complaint, Patient, utcnow
from core.validation import Count, Key, Line, SaneDateTime, Text
from services.complaints import (
    NewComplaint,
    complaint_statistics,
    list_complaints,
    open_complaint,
    take_step,
)
from services.staff import StaffPrincipal
from services.updates import UpdateConflict

router = APIRouter(prefix="/api/complaints", tags=["complaints"])
ReaderDep = Annotated[StaffPrincipal, Depends(require(Permission.COMPLAINTS_READ))]
HandlerDep = Annotated[StaffPrincipal, Depends(require(Permission.COMPLAINTS_HANDLE))]


class ComplaintIn(BaseModel):
    patient_id: Key = Field(description="the patient's id here (not the HIS number)")
    kind: Kind = "complaint"
    category: Category
    summary: Annotated[
        Text, Field(min_length=2, max_length=2000, description="what the patient said")
    ]
    # What it came from: a survey answer, a follow-up call, or the patient in person.
    source: Literal["survey", "followup", "staff"] = "staff"
    # The survey answer or follow-up it came from; its department is the case's by default.
    task_id: Key | None = None
    department_code: Line | None = Field(default=None, min_length=1, max_length=32)
    # The same key again (a retried request) answers the case it opened.
    idempotency_key: Annotated[Line, Field(min_length=8, max_length=100)]


class ComplaintOut(BaseModel):
    id: str
    case_no: str
    kind: str
    source: str
    category: str
    category_name: str
    patient_id: str
    task_id: str | None
    department_code: str
    summary: str
    status: str
    escalation: str
    opened_by: str
    opened_at: datetime
    acknowledge_by: datetime | None
    resolve_by: datetime | None
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    outcome: str | None
    rating_stars: int | None
    rating_comment: str | None
    steps: list[Step]


class AcknowledgeIn(BaseModel):
    note: Text | None = Field(default=None, max_length=1000)


class ResolveIn(BaseModel):
    outcome: Annotated[
        Text, Field(min_length=2, max_length=500, description="as the patient is told it")
    ]


class ReassignIn(BaseModel):
    department_code: Annotated[Line, Field(min_length=1, max_length=32)]
    reason: Annotated[Text, Field(min_length=2, max_length=500)]


def _out(row: Complaint) -> ComplaintOut:
    return ComplaintOut.model_validate(
        {**row.model_dump(), "category_name": CATEGORY_NAMES.get(row.category, row.category)}
    )


async def _visible(session: SessionDep, staff: StaffPrincipal, complaint_id: str) -> Complaint:
    row = await session.get(Complaint, complaint_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no complaint with id '{complaint_id}'")
    await ensure_visible(
        session, staff, patient_id=row.patient_id, department_code=row.department_code
    )
    return row


@router.post("", response_model=ComplaintOut, status_code=status.HTTP_201_CREATED)
async def open_case(
    body: ComplaintIn,
    response: Response,
    container: ContainerDep,
    session: SessionDep,
    staff: HandlerDep,
) -> ComplaintOut:
    """Opens a case and starts its timers (201; 200 with the case it opened for a key used
    before). Its department is the task's, or the one given, or the caller's."""
    patient = await session.get(Patient, body.patient_id)
    if patient is None:
        raise field_error(("body", "patient_id"), "no such patient")
    await ensure_patient_visible(session, staff, patient.id)
    task = await session.get(CareTask, body.task_id) if body.task_id else None
    if body.task_id is not None and (task is None or task.patient_id != patient.id):
        raise field_error(("body", "task_id"), "not a task of this patient")
    department = body.department_code or (task.department_code if task else None)
    department = department or staff.department_code
    if department is None:
        raise field_error(("body", "department_code"), "say which department handles the case")
    row, created = await open_complaint(
        session,
        container.temporal,
        container.settings,
        NewComplaint(
            patient_id=patient.id,
            kind=body.kind,
            source=body.source,
            category=body.category,
            summary=body.summary,
            department_code=department,
            hospital_code=container.settings.default_hospital_code,
            task_id=body.task_id,
            idempotency_key=body.idempotency_key,
        ),
        staff.id,
        utcnow(),
    )
    await session.commit()
    if not created:
        response.status_code = status.HTTP_200_OK
    return _out(row)


@router.get("", response_model=Page[ComplaintOut])
async def queue(
    session: SessionDep,
    staff: ReaderDep,
    case_status: Annotated[list[ComplaintStatus] | None, Query(alias="status")] = None,
    escalation: Escalation | None = None,
    category: Category | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[Count, Query()] = 0,
) -> Page[ComplaintOut]:
    """The cases in the caller's scope, oldest first; ``escalation=department_head`` is the
    head's queue, ``quality_office`` the quality office's."""
    rows, total = await list_complaints(
        session,
        staff,
        statuses=list(case_status or []),
        escalation=escalation,
        category=category,
        limit=limit,
        offset=offset,
    )
    return Page(items=[_out(r) for r in rows], total=total, limit=limit, offset=offset)


@router.get("/stats")
async def stats(
    session: SessionDep,
    staff: ReaderDep,
    opened_from: SaneDateTime,
    opened_to: SaneDateTime,
) -> dict[str, Any]:
    """Cases opened in [opened_from, opened_to) in the caller's scope: by kind, status,
    category and department, escalations, hours to close, and the patients' ratings."""
    if opened_to <= opened_from:
        raise field_error(("query", "opened_to"), "must be after opened_from")
    return await complaint_statistics(session, staff, opened_from=opened_from, opened_to=opened_to)


@router.get("/{complaint_id}", response_model=ComplaintOut)
async def case(complaint_id: Key, session: SessionDep, staff: ReaderDep) -> ComplaintOut:
    return _out(await _visible(session, staff, complaint_id))


async def _step(
    container: ContainerDep,
    session: SessionDep,
    staff: StaffPrincipal,
    complaint_id: str,
    update: str,
    argument: BaseModel,
) -> ComplaintState:
    row = await _visible(session, staff, complaint_id)
    try:
        return await take_step(session, container.temporal, row, update, argument)
    except UpdateConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc


@router.post("/{complaint_id}/acknowledge", response_model=ComplaintState)
async def acknowledge(
    complaint_id: Key,
    body: AcknowledgeIn,
    container: ContainerDep,
    session: SessionDep,
    staff: HandlerDep,
) -> ComplaintState:
    """The department takes the case (stops the acknowledgement timer)."""
    step = Acknowledgement(by=staff.id, note=body.note)
    return await _step(container, session, staff, complaint_id, UPDATE_ACKNOWLEDGE, step)


@router.post("/{complaint_id}/resolve", response_model=ComplaintState)
async def resolve(
    complaint_id: Key,
    body: ResolveIn,
    container: ContainerDep,
    session: SessionDep,
    staff: HandlerDep,
) -> ComplaintState:
    """The outcome: the patient is told it and asked to rate how the case was handled."""
    step = Resolution(by=staff.id, outcome=body.outcome)
    return await _step(container, session, staff, complaint_id, UPDATE_RESOLVE, step)


@router.post("/{complaint_id}/reassign", response_model=ComplaintState)
async def reassign(
    complaint_id: Key,
    body: ReassignIn,
    container: ContainerDep,
    session: SessionDep,
    staff: HandlerDep,
) -> ComplaintState:
    """To the department it concerns: that department must acknowledge it anew."""
    step = Reassignment(by=staff.id, department_code=body.department_code, reason=body.reason)
    return await _step(container, session, staff, complaint_id, UPDATE_REASSIGN, step)
