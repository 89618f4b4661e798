"""Online consultations (在线问诊) paid in advance and refunded automatically when no doctor
accepts them in time (PAY-7)."""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from api.deps import ContainerDep, SessionDep
from api.permissions import Permission, ensure_visible, require
from api.schemas import links
from contracts.payment import (
    CONSULTATION_REFUSALS,
    QUERY_CONSULTATION,
    UPDATE_ACCEPT,
    Acceptance,
    ConsultationState,
)
from core.models import Consultation, utcnow
from core.validation import Code, Key, Text
from integrations.his import HisUnavailable
from services import audit
from services.patients import UnknownPatient
from services.payments import OrderConflict, OrderRejected, create_order, start_consultation
from services.staff import StaffPrincipal
from services.updates import execute_update, workflow_not_ready

router = APIRouter(prefix="/api/consultations", tags=["consultations"])

WriterDep = Annotated[StaffPrincipal, Depends(require(Permission.CONSULTATIONS_REQUEST))]
DoctorDep = Annotated[StaffPrincipal, Depends(require(Permission.CONSULTATIONS_ACCEPT))]
ReaderDep = Annotated[StaffPrincipal, Depends(require(Permission.CONSULTATIONS_READ))]


class ConsultationCreate(BaseModel):
    his_order_no: Code = Field(min_length=1, max_length=64, description="the fee's HIS order")
    patient_id: Code = Field(min_length=1, max_length=64, description="the patient's HIS id")
    amount_fen: int = Field(gt=0, le=10_000_000)
    question: Annotated[Text, Field(min_length=1, max_length=1000)]
    use_insurance: bool = False
    hospital_code: Code | None = Field(default=None, max_length=32)


class ConsultationOut(BaseModel):
    id: str
    order_id: str
    department_code: str
    status: str
    accept_deadline_at: datetime | None
    accepted_by: str | None
    accepted_at: datetime | None
    refund_id: str | None
    note: str | None
    workflow_id: str
    created_at: datetime


def _out(row: Consultation) -> ConsultationOut:
    return ConsultationOut.model_validate(row, from_attributes=True)


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    responses=links(
        202,
        "id",
        ("GET", "/api/consultations/{consultation_id}", "consultation_id"),
        ("POST", "/api/consultations/{consultation_id}/accept", "consultation_id"),
    ),
)
async def request_consultation(
    body: ConsultationCreate,
    response: Response,
    container: ContainerDep,
    session: SessionDep,
    staff: WriterDep,
) -> ConsultationOut:
    ctx = container.payments
    hospital = body.hospital_code or container.settings.default_hospital_code
    try:
        order, created = await create_order(
            session,
            ctx,
            hospital_code=hospital,
            his_order_no=body.his_order_no,
            his_patient_id=body.patient_id,
            amount_fen=body.amount_fen,
            use_insurance=body.use_insurance,
            created_by=f"staff:{staff.id}",
            kind="consultation",
        )
        row = await start_consultation(
            session, ctx, order=order, question=body.question, by=f"staff:{staff.id}"
        )
        await session.commit()
    except OrderRejected as exc:
        raise RequestValidationError(
            [{"type": "value_error", "loc": ("body", exc.field), "msg": str(exc)}]
        ) from exc
    except UnknownPatient as exc:
        raise RequestValidationError(
            [{"type": "value_error", "loc": ("body", "patient_id"), "msg": str(exc)}]
        ) from exc
    except OrderConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    except (HisUnavailable, RPCError) as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, "HIS or workflow service unavailable"
        ) from exc
    if not created:
        response.status_code = status.HTTP_200_OK
    await session.refresh(row)
    return _out(row)


@router.get("/{consultation_id}")
async def get_consultation(
    consultation_id: Key, session: SessionDep, staff: ReaderDep
) -> ConsultationOut:
    row = await session.get(Consultation, consultation_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "not found")
    await ensure_visible(
        session, staff, patient_id=row.patient_id, department_code=row.department_code
    )
    return _out(row)


@router.post("/{consultation_id}/accept")
async def accept(
    consultation_id: Key, container: ContainerDep, session: SessionDep, doctor: DoctorDep
) -> ConsultationState:
    row = await session.get(Consultation, consultation_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "not found")
    await ensure_visible(
        session, doctor, patient_id=row.patient_id, department_code=row.department_code
    )
    handle = container.temporal.get_workflow_handle(row.workflow_id)
    try:
        state = await execute_update(
            handle,
            UPDATE_ACCEPT,
            Acceptance(doctor_id=doctor.id, doctor_name=doctor.name, at=utcnow()),
            ConsultationState,
        )
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        message = cause.message if isinstance(cause, ApplicationError) else str(exc)
        raise HTTPException(status.HTTP_409_CONFLICT, message) from exc
    except RPCError as exc:
        gone = exc.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION)
        if not gone or workflow_not_ready(exc):
            raise  # an outage: 503
        # The workflow has finished: the consultation was refunded or already decided.
        current: ConsultationState | None = None
        with contextlib.suppress(RPCError):
            current = await handle.query(QUERY_CONSULTATION, result_type=ConsultationState)
        detail = (
            CONSULTATION_REFUSALS.get(current.status, "问诊已结束，不能接诊")
            if current
            else ("问诊已结束，不能接诊")
        )
        raise HTTPException(status.HTTP_409_CONFLICT, detail) from exc
    audit.record(
        session,
        actor_type="staff",
        actor_id=doctor.id,
        action="consultation.accepted",
        target_type="consultation",
        target_id=row.id,
        patient_id=row.patient_id,
        status=state.status,
    )
    await session.commit()
    return state
