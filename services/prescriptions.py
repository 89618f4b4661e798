"""Herbal prescriptions arriving from the HIS (RX-1), and the changes the HIS, pharmacists and
service enterprises make to them afterwards, each applied to the prescription's workflow.

Exactly-once per event: an event id is recorded only in the transaction of a change that took
effect, so a redelivered event is answered from the current state, and an event refused because
it came too early (payment before approval) can be delivered again later.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from contracts.prescription import (
    PRESCRIPTION_WORKFLOW,
    QUERY_STATE,
    Delivery,
    Finding,
    PrescriptionContent,
    PrescriptionInput,
    PrescriptionState,
    prescription_workflow_id,
    review_task_queue,
)
from contracts.search import search_attributes
from core.db import release_connection
from core.models import Prescription, utcnow
from core.settings import Settings
from integrations.his import HisClient
from integrations.his_events import PrescriptionSubmitted
from prescriptions.rules import RuleItem, check
from services import audit
from services.hospitals import hospital_profile
from services.inbound_events import find_event, record_event
from services.patients import fetch_patient, upsert_patient
from services.updates import execute_update, workflow_not_ready


class PrescriptionConflict(Exception):
    """The change does not apply in the prescription's current state (HTTP 409)."""


class PrescriptionNotFound(Exception):
    pass


class SubmitOutcome(BaseModel):
    prescription_id: str
    workflow_id: str
    duplicate: bool
    status: str
    findings: list[Finding]


@dataclass(frozen=True)
class PrescriptionContext:
    settings: Settings
    temporal: Client
    his: HisClient


def _findings(content: PrescriptionContent) -> list[Finding]:
    return [
        Finding(code=f.code, rule=f.rule, herbs=list(f.herbs), message=f.message)
        for f in check([RuleItem(i.herb, i.dose_g) for i in content.items])
    ]


async def by_number(session: AsyncSession, hospital_code: str, number: str) -> Prescription:
    found = await session.exec(
        select(Prescription).where(
            Prescription.hospital_code == hospital_code, Prescription.prescription_no == number
        )
    )
    row = found.first()
    if row is None:
        raise PrescriptionNotFound(f"no prescription {number} from hospital {hospital_code}")
    return row


async def submit(
    session: AsyncSession, ctx: PrescriptionContext, event: PrescriptionSubmitted, body_sha: str
) -> SubmitOutcome:
    """Stores the prescription and starts its review. The caller commits."""
    source = f"his:{event.hospital_code}"
    workflow_id = prescription_workflow_id(event.hospital_code, event.prescription_no)
    previous = await find_event(session, source, event.event_id)
    if previous is not None:
        if previous.body_sha256 != body_sha:
            raise PrescriptionConflict(f"event '{event.event_id}' was received with another body")
        row = await by_number(session, event.hospital_code, event.prescription_no)
        return SubmitOutcome(
            prescription_id=row.id,
            workflow_id=workflow_id,
            duplicate=True,
            status=row.status,
            findings=[Finding.model_validate(f) for f in row.findings],
        )
    try:
        await by_number(session, event.hospital_code, event.prescription_no)
    except PrescriptionNotFound:
        pass
    else:
        raise PrescriptionConflict(
            f"prescription {event.prescription_no} was already submitted; send a revision"
        )
    patient = await upsert_patient(session, await fetch_patient(session, ctx.his, event.patient_id))
    profile = await hospital_profile(session, ctx.settings, event.hospital_code)
    content = PrescriptionContent.model_validate(
        event.model_dump(include=set(PrescriptionContent.model_fields))
    )
    findings = _findings(content)
    row = Prescription(
        hospital_code=event.hospital_code,
        prescription_no=event.prescription_no,
        workflow_id=workflow_id,
        patient_id=patient.id,
        department_code=event.department_code,
        department_name=event.department_name,
        doctor_id=event.doctor_id,
        doctor_name=event.doctor_name,
        diagnosis=[d.model_dump() for d in content.diagnosis],
        items=[i.model_dump() for i in content.items],
        doses=content.doses,
        decoction=content.decoction,
        delivery=event.delivery.model_dump(),
        findings=[f.model_dump() for f in findings],
        submitted_at=_now(),
    )
    session.add(row)
    if not await record_event(session, source, event.event_id, "prescription", body_sha):
        return await submit(session, ctx, event, body_sha)
    await session.flush()
    await ctx.temporal.start_workflow(
        PRESCRIPTION_WORKFLOW,
        PrescriptionInput(
            prescription_id=row.id,
            hospital_code=event.hospital_code,
            prescription_no=event.prescription_no,
            patient_id=patient.id,
            department_code=event.department_code,
            doctor_id=event.doctor_id,
            content=content,
            delivery=Delivery.model_validate(event.delivery.model_dump()),
            config=profile.config.prescriptions,
            submitted_at=row.submitted_at,
        ),
        id=workflow_id,
        task_queue=review_task_queue(ctx.settings.temporal_task_queue),
        search_attributes=search_attributes(
            patient=patient.his_patient_id,
            department=event.department_code,
            hospital=event.hospital_code,
            prescription_no=event.prescription_no,
        ),
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
    )
    # After the start: the audit chain's lock is taken at flush and held until commit.
    audit.record(
        session,
        actor_type="his",
        actor_id=source,
        action="prescription.submitted",
        target_type="prescription",
        target_id=row.id,
        patient_id=patient.id,
        prescription_no=event.prescription_no,
    )
    return SubmitOutcome(
        prescription_id=row.id,
        workflow_id=workflow_id,
        duplicate=False,
        status="reviewing",
        findings=findings,
    )


async def apply(
    session: AsyncSession,
    temporal: Client,
    row: Prescription,
    *,
    update: str,
    argument: BaseModel,
    result_type: type[Any],
    source: str,
    event_id: str | None,
    body_sha: str = "",
    actor: tuple[str, str | None],
) -> tuple[Any, bool]:
    """Runs one update on the prescription's workflow. Returns (result, duplicate); raises
    PrescriptionConflict with the workflow's reason when the update does not apply."""
    handle = temporal.get_workflow_handle(row.workflow_id)
    if event_id is not None and await find_event(session, source, event_id) is not None:
        return await handle.query(QUERY_STATE, result_type=PrescriptionState), True
    await release_connection(session)
    try:
        result = await execute_update(handle, update, argument, result_type)
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        reason = cause.message if isinstance(cause, ApplicationError) else str(cause or exc)
        raise PrescriptionConflict(reason) from exc
    except RPCError as exc:
        ended = "completed" in str(exc).lower() or "not found" in str(exc).lower()
        if ended and not workflow_not_ready(exc):
            raise PrescriptionConflict(f"处方流程已结束（{row.status}）") from exc
        raise
    if event_id is not None and not await record_event(session, source, event_id, update, body_sha):
        return result, True
    audit.record(
        session,
        actor_type=actor[0],
        actor_id=actor[1],
        action=f"prescription.{update}",
        target_type="prescription",
        target_id=row.id,
        patient_id=row.patient_id,
        event_id=event_id,
    )
    return result, False


def _now() -> datetime:
    return utcnow()
