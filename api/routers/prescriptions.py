"""Pharmacists' work (RX-3, RX-8): the review queue with time left, any prescription's review,
dispensing, delivery and timeout status, decisions, and statistics."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from temporalio.client import WorkflowQueryFailedError
from temporalio.service import RPCError

from api.deps import ContainerDep, SessionDep
from api.permissions import Permission, ensure_visible, require
from api.schemas import Page, PatientBrief
from contracts.prescription import (
    QUERY_STATE,
    UPDATE_DECIDE,
    Conclusion,
    Decision,
    PrescriptionState,
)
from core.hospitals import RxStatusFilter
from core.logs import get_logger
from core.models import Patient, Prescription, StaffRole, utcnow
from core.validation import Count, Key, SaneDateTime, Text, Version
from services.prescription_queries import (
    GroupBy,
    prescription_events,
    review_queue,
    search,
    statistics,
)
from services.prescriptions import PrescriptionConflict, apply
from services.staff import StaffPrincipal
from services.staff_lists import patient_brief

router = APIRouter(prefix="/api/prescriptions", tags=["prescriptions"])
log = get_logger(__name__)

PharmacistDep = Annotated[StaffPrincipal, Depends(require(Permission.PRESCRIPTIONS_REVIEW))]
ReaderDep = Annotated[StaffPrincipal, Depends(require(Permission.PRESCRIPTIONS_READ))]


class PrescriptionOut(BaseModel):
    id: str
    hospital_code: str
    prescription_no: str
    status: str
    round: int
    department_code: str
    department_name: str
    doctor_id: str
    doctor_name: str
    diagnosis: list[dict[str, Any]]
    items: list[dict[str, Any]]
    doses: int
    decoction: bool
    delivery: dict[str, Any]
    findings: list[dict[str, Any]]
    review_deadline_at: datetime | None
    review_outcome: str | None
    reviewed_by: str | None
    reviewed_at: datetime | None
    review_reason: str | None
    review_timed_out: bool
    enterprise_code: str | None
    tracking_no: str | None
    paid_at: datetime | None
    refunded_at: datetime | None
    refund_reason: str | None
    submitted_at: datetime
    patient: PatientBrief


class QueueItem(PrescriptionOut):
    seconds_left: float


class EventOut(BaseModel):
    seq: int
    kind: str
    status: str
    round: int
    actor: str
    note: str | None
    at: datetime


class PrescriptionDetail(PrescriptionOut):
    events: list[EventOut]
    live: PrescriptionState | None
    source: Literal["workflow", "projection"]


class DecisionIn(BaseModel):
    round: Version
    outcome: Literal["approve", "reject"]
    reason: Text | None = Field(default=None, max_length=500)


def _out(row: Prescription, patient: Patient, role: StaffRole) -> dict[str, Any]:
    brief = PatientBrief.model_validate(patient_brief(patient, role))
    return {**row.model_dump(), "patient": brief}


@router.get("/review-queue", response_model=list[QueueItem])
async def queue(
    session: SessionDep,
    staff: PharmacistDep,
    hospital_code: Key | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[QueueItem]:
    now = utcnow()
    return [
        QueueItem.model_validate(
            {
                **_out(row, patient, staff.role),
                "seconds_left": round(((row.review_deadline_at or now) - now).total_seconds(), 1),
            }
        )
        for row, patient in await review_queue(
            session, staff, hospital_code=hospital_code, limit=limit
        )
    ]


@router.get("", response_model=Page[PrescriptionOut])
async def list_prescriptions(
    session: SessionDep,
    staff: ReaderDep,
    rx_status: Annotated[
        RxStatusFilter | None,
        Query(alias="status", description="a status, or 'completed' (delivered or picked up)"),
    ] = None,
    hospital_code: Key | None = None,
    department_code: Key | None = None,
    doctor_id: Key | None = None,
    submitted_from: Annotated[SaneDateTime | None, Query(alias="from")] = None,
    submitted_to: Annotated[SaneDateTime | None, Query(alias="to")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[Count, Query()] = 0,
) -> dict[str, Any]:
    rows, total = await search(
        session,
        staff,
        status=rx_status,
        hospital_code=hospital_code,
        department_code=department_code,
        doctor_id=doctor_id,
        submitted_from=submitted_from,
        submitted_to=submitted_to,
        limit=limit,
        offset=offset,
    )
    items = [PrescriptionOut.model_validate(_out(r, p, staff.role)) for r, p in rows]
    return {"items": items, "total": total, "limit": limit, "offset": offset}


class StatsRow(BaseModel):
    # The group: a hospital, department or doctor code, or a local day.
    key: date | str | None
    submitted: int
    reviewing: int
    approved_by_pharmacist: int
    approved_by_system: int
    returned: int
    cancelled: int
    review_timed_out: int
    paid: int
    completed: int
    refunded: int
    avg_review_seconds: float | None


@router.get("/stats", response_model=list[StatsRow])
async def stats(
    container: ContainerDep,
    session: SessionDep,
    staff: ReaderDep,
    by: GroupBy = "day",
    submitted_from: Annotated[SaneDateTime | None, Query(alias="from")] = None,
    submitted_to: Annotated[SaneDateTime | None, Query(alias="to")] = None,
) -> list[dict[str, Any]]:
    return await statistics(
        session,
        staff,
        group_by=by,
        submitted_from=submitted_from,
        submitted_to=submitted_to,
        tz=container.settings.tz,
    )


async def _row(session: SessionDep, staff: StaffPrincipal, prescription_id: str) -> Prescription:
    row = await session.get(Prescription, prescription_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no prescription '{prescription_id}'")
    await ensure_visible(
        session, staff, patient_id=row.patient_id, department_code=row.department_code
    )
    return row


@router.get("/{prescription_id}", response_model=PrescriptionDetail)
async def detail(
    prescription_id: Key, container: ContainerDep, session: SessionDep, staff: ReaderDep
) -> PrescriptionDetail:
    row = await _row(session, staff, prescription_id)
    patient = await session.get(Patient, row.patient_id)
    assert patient is not None
    events = await prescription_events(session, row.id)
    live, source = None, "projection"
    try:
        live = await container.temporal.get_workflow_handle(row.workflow_id).query(
            QUERY_STATE,
            result_type=PrescriptionState,
            rpc_timeout=timedelta(seconds=container.settings.temporal_query_timeout_seconds),
        )
        source = "workflow"
    except (RPCError, WorkflowQueryFailedError) as exc:
        log.info("prescription query failed; projection only", error=str(exc))
    return PrescriptionDetail.model_validate(
        {
            **_out(row, patient, staff.role),
            "events": [EventOut.model_validate(e.model_dump()) for e in events],
            "live": live,
            "source": source,
        }
    )


@router.post(
    "/{prescription_id}/decision",
    response_model=Conclusion,
    responses={409: {"description": "The round is concluded, or already decided; says why"}},
)
async def decide(
    prescription_id: Key,
    body: DecisionIn,
    container: ContainerDep,
    session: SessionDep,
    pharmacist: PharmacistDep,
) -> Conclusion:
    if body.outcome == "reject" and not (body.reason and body.reason.strip()):
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ("body", "reason"),
                    "msg": "a rejection needs a reason",
                }
            ]
        )
    row = await _row(session, pharmacist, prescription_id)
    try:
        conclusion, _ = await apply(
            session,
            container.temporal,
            row,
            update=UPDATE_DECIDE,
            argument=Decision(
                round=body.round,
                outcome=body.outcome,
                reason=body.reason,
                pharmacist_id=pharmacist.id,
                pharmacist_name=pharmacist.name,
            ),
            result_type=Conclusion,
            source="staff",
            event_id=None,
            actor=("staff", pharmacist.id),
        )
        await session.commit()
    except PrescriptionConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    except RPCError as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, "workflow service unavailable, retry later"
        ) from exc
    result: Conclusion = conclusion
    return result
