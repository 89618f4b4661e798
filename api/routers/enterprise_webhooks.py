"""Progress reports from service enterprises (RX-6): dispensing, decocting, shipped, delivered,
ready for pickup, picked up. Signed with the enterprises' shared secret; a report that skips or
reverses the order is refused (409) and logged; a redelivered report changes nothing."""

from __future__ import annotations

import hashlib

from fastapi import APIRouter, HTTPException, Request, status
from temporalio.client import WorkflowQueryFailedError
from temporalio.service import RPCError

from api.deps import ContainerDep, SessionDep
from api.routers.his_prescriptions import ERRORS, ChangeOutcome
from api.signed import parse, signed_body, signed_json
from contracts.prescription import (
    QUERY_STATE,
    UPDATE_ENTERPRISE_STATUS,
    EnterpriseUpdate,
    PrescriptionState,
)
from core.logs import get_logger
from core.models import Prescription
from core.validation import Key
from integrations.his_events import EnterpriseStatusEvent
from services.prescriptions import PrescriptionConflict, apply

router = APIRouter(prefix="/webhooks/enterprise", tags=["enterprise webhooks"])
log = get_logger(__name__)


@router.post(
    "/{enterprise_code}/status",
    response_model=ChangeOutcome,
    responses=ERRORS,
    openapi_extra=signed_json(EnterpriseStatusEvent),
)
async def enterprise_status(
    enterprise_code: Key, request: Request, container: ContainerDep, session: SessionDep
) -> ChangeOutcome:
    settings = container.settings
    body = await signed_body(
        request,
        settings.enterprise_webhook_secret.get_secret_value(),
        settings.his_webhook_tolerance_seconds,
    )
    event = parse(EnterpriseStatusEvent, body)
    row = await session.get(Prescription, event.prescription_id)
    # An enterprise may only report on prescriptions dispatched to it. The projection may lag a
    # moment behind the dispatch; the workflow itself is the authority.
    if row is None or not await _dispatched_to(container, row, enterprise_code):
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"no prescription {event.prescription_id} dispatched to {enterprise_code}",
        )
    try:
        state, duplicate = await apply(
            session,
            container.temporal,
            row,
            update=UPDATE_ENTERPRISE_STATUS,
            argument=EnterpriseUpdate(
                status=event.status, at=event.at, note=event.note, tracking_no=event.tracking_no
            ),
            result_type=PrescriptionState,
            source=f"enterprise:{enterprise_code}",
            event_id=event.event_id,
            body_sha=hashlib.sha256(body).hexdigest(),
            actor=("enterprise", enterprise_code),
        )
        await session.commit()
    except PrescriptionConflict as exc:
        log.warning(
            "enterprise status refused",
            enterprise=enterprise_code,
            prescription_id=row.id,
            status=event.status,
            reason=str(exc),
        )
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    except RPCError as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, "workflow service unavailable, retry later"
        ) from exc
    return ChangeOutcome(
        prescription_id=row.id, duplicate=duplicate, status=state.status, round=state.round
    )


async def _dispatched_to(container: ContainerDep, row: Prescription, enterprise_code: str) -> bool:
    if row.enterprise_code == enterprise_code:
        return True
    try:
        state: PrescriptionState = await container.temporal.get_workflow_handle(
            row.workflow_id
        ).query(QUERY_STATE, result_type=PrescriptionState)
    except (RPCError, WorkflowQueryFailedError):
        return False
    return state.enterprise == enterprise_code
