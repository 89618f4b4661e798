"""Webhooks the HIS calls about herbal prescriptions (RX-1, RX-3, RX-5, RX-7): submission,
the doctor's revision or cancellation, payment and refund. Authenticated like every HIS event
(HMAC over timestamp and body) and deduplicated by event id."""

from __future__ import annotations

import hashlib
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response, status
from pydantic import BaseModel
from temporalio.service import RPCError

from api.deps import ContainerDep, SessionDep
from api.signed import parse, signed_body, signed_json
from contracts.prescription import (
    UPDATE_CANCEL,
    UPDATE_PAYMENT,
    UPDATE_REFUND,
    UPDATE_REVISE,
    Cancellation,
    Payment,
    PrescriptionContent,
    PrescriptionState,
    Refund,
    ReviewRound,
    Revision,
)
from core.logs import get_logger
from core.validation import Key
from integrations.his import HisUnavailable
from integrations.his_events import (
    PrescriptionCancelled,
    PrescriptionPaid,
    PrescriptionRefundRequested,
    PrescriptionRevised,
    PrescriptionSubmitted,
)
from services.patients import UnknownPatient
from services.prescriptions import (
    PrescriptionConflict,
    PrescriptionContext,
    PrescriptionNotFound,
    SubmitOutcome,
    apply,
    by_number,
    submit,
)

router = APIRouter(prefix="/webhooks/his/prescriptions", tags=["HIS webhooks"])
log = get_logger(__name__)

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Bad signature or stale timestamp"},
    404: {"description": "Unknown patient or prescription"},
    409: {"description": "Not applicable in the prescription's current state; says why"},
    422: {"description": "Malformed event; the error names the field"},
    503: {"description": "HIS or Temporal unreachable; retry later"},
}


class ChangeOutcome(BaseModel):
    prescription_id: str
    duplicate: bool
    status: str
    round: int


async def _body(request: Request, container: ContainerDep) -> bytes:
    settings = container.settings
    return await signed_body(
        request,
        settings.his_webhook_secret.get_secret_value(),
        settings.his_webhook_tolerance_seconds,
    )


@router.post(
    "",
    response_model=SubmitOutcome,
    status_code=status.HTTP_202_ACCEPTED,
    responses={**ERRORS, 200: {"description": "Duplicate event", "model": SubmitOutcome}},
    openapi_extra=signed_json(PrescriptionSubmitted),
)
async def submitted(
    request: Request, response: Response, container: ContainerDep, session: SessionDep
) -> SubmitOutcome:
    body = await _body(request, container)
    event = parse(PrescriptionSubmitted, body)
    ctx = PrescriptionContext(container.settings, container.temporal, container.his)
    try:
        outcome = await submit(session, ctx, event, hashlib.sha256(body).hexdigest())
        await session.commit()
    except UnknownPatient as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    except PrescriptionConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    except (HisUnavailable, RPCError) as exc:
        log.error("prescription not accepted", event_id=event.event_id, error=str(exc))
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, "HIS or workflow service unavailable"
        ) from exc
    if outcome.duplicate:
        response.status_code = status.HTTP_200_OK
    log.info(
        "prescription submitted",
        prescription_no=event.prescription_no,
        findings=len(outcome.findings),
        duplicate=outcome.duplicate,
    )
    return outcome


async def _change(
    container: ContainerDep,
    session: SessionDep,
    *,
    hospital_code: str,
    prescription_no: str,
    event_id: str,
    body: bytes,
    update: str,
    argument: BaseModel,
    result_type: type[Any] = PrescriptionState,
) -> ChangeOutcome:
    try:
        row = await by_number(session, hospital_code, prescription_no)
        state, duplicate = await apply(
            session,
            container.temporal,
            row,
            update=update,
            argument=argument,
            result_type=result_type,
            source=f"his:{hospital_code}",
            event_id=event_id,
            body_sha=hashlib.sha256(body).hexdigest(),
            actor=("his", f"his:{hospital_code}"),
        )
        await session.commit()
    except PrescriptionNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    except PrescriptionConflict as exc:
        log.warning("prescription change refused", update=update, reason=str(exc))
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    except RPCError as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, "workflow service unavailable, retry later"
        ) from exc
    status_ = getattr(state, "status", row.status)
    round_ = getattr(state, "round", getattr(state, "number", row.round))
    return ChangeOutcome(prescription_id=row.id, duplicate=duplicate, status=status_, round=round_)


@router.post(
    "/{prescription_no}/revision",
    response_model=ChangeOutcome,
    responses=ERRORS,
    openapi_extra=signed_json(PrescriptionRevised),
)
async def revised(
    prescription_no: Key, request: Request, container: ContainerDep, session: SessionDep
) -> ChangeOutcome:
    body = await _body(request, container)
    event = parse(PrescriptionRevised, body)
    content = PrescriptionContent.model_validate(
        event.model_dump(include=set(PrescriptionContent.model_fields))
    )
    return await _change(
        container,
        session,
        hospital_code=event.hospital_code,
        prescription_no=prescription_no,
        event_id=event.event_id,
        body=body,
        update=UPDATE_REVISE,
        argument=Revision(content=content, doctor_id=event.doctor_id),
        result_type=ReviewRound,
    )


@router.post(
    "/{prescription_no}/cancellation",
    response_model=ChangeOutcome,
    responses=ERRORS,
    openapi_extra=signed_json(PrescriptionCancelled),
)
async def cancelled(
    prescription_no: Key, request: Request, container: ContainerDep, session: SessionDep
) -> ChangeOutcome:
    body = await _body(request, container)
    event = parse(PrescriptionCancelled, body)
    return await _change(
        container,
        session,
        hospital_code=event.hospital_code,
        prescription_no=prescription_no,
        event_id=event.event_id,
        body=body,
        update=UPDATE_CANCEL,
        argument=Cancellation(reason=event.reason, by="his"),
    )


@router.post(
    "/{prescription_no}/payment",
    response_model=ChangeOutcome,
    responses=ERRORS,
    openapi_extra=signed_json(PrescriptionPaid),
)
async def paid(
    prescription_no: Key, request: Request, container: ContainerDep, session: SessionDep
) -> ChangeOutcome:
    body = await _body(request, container)
    event = parse(PrescriptionPaid, body)
    return await _change(
        container,
        session,
        hospital_code=event.hospital_code,
        prescription_no=prescription_no,
        event_id=event.event_id,
        body=body,
        update=UPDATE_PAYMENT,
        argument=Payment(
            payment_id=event.payment_id, amount_fen=event.amount_fen, paid_at=event.paid_at
        ),
    )


@router.post(
    "/{prescription_no}/refund",
    response_model=ChangeOutcome,
    responses=ERRORS,
    openapi_extra=signed_json(PrescriptionRefundRequested),
)
async def refund_requested(
    prescription_no: Key, request: Request, container: ContainerDep, session: SessionDep
) -> ChangeOutcome:
    body = await _body(request, container)
    event = parse(PrescriptionRefundRequested, body)
    return await _change(
        container,
        session,
        hospital_code=event.hospital_code,
        prescription_no=prescription_no,
        event_id=event.event_id,
        body=body,
        update=UPDATE_REFUND,
        argument=Refund(refund_id=event.refund_id, reason=event.reason, requested_by="his"),
    )
