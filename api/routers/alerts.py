"""Alerts for the responsible staff (FU-9): abnormal answers and undeliverable messages."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, status

from api.deps import SessionDep
from api.permissions import Permission, ensure_visible, require
from api.schemas import AcknowledgeAlert, AlertOut, Page, PatientBrief, ResolveAlert, response_of
from core.models import Alert, AlertStatus, Patient, StaffRole, utcnow
from core.validation import Count, Key
from services import alerts
from services.staff import StaffPrincipal
from services.staff_lists import PatientFields, list_alerts, patient_brief

router = APIRouter(prefix="/api/alerts", tags=["alerts"])
ReaderDep = Annotated[StaffPrincipal, Depends(require(Permission.ALERTS_READ))]
# Acting on an alert is clinical work; administrators can read alerts but not close them.
ClinicianDep = Annotated[StaffPrincipal, Depends(require(Permission.ALERTS_ACKNOWLEDGE))]


def alert_out(alert: Alert, patient: PatientFields, role: StaffRole) -> AlertOut:
    return response_of(
        AlertOut, alert, patient=PatientBrief.model_validate(patient_brief(patient, role))
    )


@router.get("", response_model=Page[AlertOut])
async def get_alerts(
    session: SessionDep,
    staff: ReaderDep,
    alert_status: Annotated[AlertStatus | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[Count, Query()] = 0,
) -> Page[AlertOut]:
    rows, total = await list_alerts(
        session,
        staff,
        status=alert_status.value if alert_status else None,
        limit=limit,
        offset=offset,
    )
    return Page(
        items=[alert_out(a, p, staff.role) for a, p in rows],
        total=total,
        limit=limit,
        offset=offset,
    )


@router.post("/{alert_id}/acknowledge", response_model=AlertOut)
async def acknowledge(
    alert_id: Key, session: SessionDep, staff: ClinicianDep, body: AcknowledgeAlert | None = None
) -> AlertOut:
    """Marks the alert handled; the body (a note) is optional."""
    note = body.note if body is not None else None
    alert = await session.get(Alert, alert_id, with_for_update=True)
    if alert is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no alert with id '{alert_id}'")
    await ensure_visible(
        session, staff, patient_id=alert.patient_id, department_code=alert.department_code
    )
    # Read before the change: the first query after it flushes, which takes the audit chain's
    # lock (core.audit_chain), and every write in the hospital waits while this one holds it.
    patient = await session.get(Patient, alert.patient_id)
    assert patient is not None
    alerts.acknowledge(session, staff, alert, note, utcnow())
    await session.commit()
    return alert_out(alert, patient, staff.role)


@router.post(
    "/{alert_id}/resolve",
    response_model=AlertOut,
    responses={409: {"description": "already resolved"}},
)
async def resolve(
    alert_id: Key, body: ResolveAlert, session: SessionDep, staff: ClinicianDep
) -> AlertOut:
    """Closes the alert with a note of what was done (acknowledging it too if nobody had)."""
    alert = await session.get(Alert, alert_id, with_for_update=True)
    if alert is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no alert with id '{alert_id}'")
    await ensure_visible(
        session, staff, patient_id=alert.patient_id, department_code=alert.department_code
    )
    patient = await session.get(Patient, alert.patient_id)  # before the change, as above
    assert patient is not None
    try:
        alerts.resolve(session, staff, alert, body.note, utcnow())
    except alerts.AlertClosed:
        raise HTTPException(status.HTTP_409_CONFLICT, "该预警已处理完毕") from None
    await session.commit()
    return alert_out(alert, patient, staff.role)
