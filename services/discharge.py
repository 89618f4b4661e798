"""A discharge from the HIS enrols the patient in every follow-up plan whose trigger matches.

Exactly-once per event: the event id is recorded in the same transaction as the master data, and
each run's workflow id is derived from plan, patient and encounter, so neither a redelivered
event nor a second event for the same discharge can start a second run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from core.db import insert_if_absent
from core.models import Encounter, InboundEvent, Patient, new_id, utcnow
from core.settings import Settings
from integrations.his import HisClient
from integrations.his_events import DischargeEvent
from pathways.catalog import Catalog
from services import audit
from services.patients import fetch_patient, upsert_patient
from workflows.contracts import WORKFLOW_NAME, FollowUpInput, followup_workflow_id

SOURCE = "his"
# An HIS clock may run a little ahead of ours; a discharge further in the future is an error.
FUTURE_TOLERANCE = timedelta(minutes=10)


class StartedRun(BaseModel):
    workflow_id: str
    run_id: str
    plan_id: str
    plan_version: int


class DischargeOutcome(BaseModel):
    event_id: str
    duplicate: bool
    runs: list[StartedRun]


class EventConflict(Exception):
    """The event id was seen before with a different body: a sender bug, not a redelivery."""


class InvalidEvent(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class DischargeContext:
    settings: Settings
    temporal: Client
    his: HisClient
    catalog: Catalog


async def accept_discharge(
    session: AsyncSession, ctx: DischargeContext, event: DischargeEvent, body_sha256: str
) -> DischargeOutcome:
    """Records the event and starts its runs. The caller commits; on any error it rolls back."""
    previous = await _find_event(session, event.event_id)
    if previous is not None:
        return _duplicate(previous, body_sha256)
    _check_event(ctx.settings, event)

    # The event row goes first: a racing redelivery of the same event blocks on its unique index
    # until this transaction ends, then takes the duplicate path below.
    record = InboundEvent(
        source=SOURCE, event_id=event.event_id, event_type=event.event_type, body_sha256=body_sha256
    )
    session.add(record)
    try:
        await session.flush()
    except IntegrityError:
        await session.rollback()
        raced = await _find_event(session, event.event_id)
        if raced is None:
            raise
        return _duplicate(raced, body_sha256)
    patient = await upsert_patient(session, await fetch_patient(session, ctx.his, event.patient_id))
    encounter = await _upsert_encounter(session, patient, event)

    plans = (
        []
        if patient.excluded
        else ctx.catalog.plans_for(
            "discharge", event.encounter.kind, event.encounter.department_code
        )
    )
    runs = []
    for plan in plans:
        workflow_id = followup_workflow_id(
            plan.id, patient.his_patient_id, encounter.his_encounter_id
        )
        handle = await _start_once(
            ctx,
            workflow_id,
            FollowUpInput(
                patient_id=patient.id,
                encounter_id=encounter.id,
                department_code=encounter.department_code,
                anchor_at=event.encounter.discharged_at,
                snapshot=ctx.catalog.snapshot(plan.id),
                clock_speedup=event.demo_clock_speedup or 1.0,
            ),
        )
        runs.append(
            StartedRun(
                workflow_id=workflow_id,
                run_id=handle.result_run_id or handle.run_id or "",
                plan_id=plan.id,
                plan_version=plan.version,
            )
        )
    record.runs = [run.model_dump() for run in runs]
    audit.record(
        session,
        actor_type="his",
        actor_id=SOURCE,
        action="discharge.accepted",
        target_type="encounter",
        target_id=encounter.id,
        event_id=event.event_id,
        workflow_ids=[run.workflow_id for run in runs],
    )
    return DischargeOutcome(event_id=event.event_id, duplicate=False, runs=runs)


def _check_event(settings: Settings, event: DischargeEvent) -> None:
    if event.demo_clock_speedup not in (None, 1.0) and not settings.demo_clock_allowed:
        raise InvalidEvent("demo_clock_speedup", "a compressed clock is not allowed here")
    if event.encounter.discharged_at > utcnow() + FUTURE_TOLERANCE:
        raise InvalidEvent("encounter.discharged_at", "discharge time is in the future")
    admitted = event.encounter.admitted_at
    if admitted is not None and admitted > event.encounter.discharged_at:
        raise InvalidEvent("encounter.admitted_at", "admission is after discharge")


async def _find_event(session: AsyncSession, event_id: str) -> InboundEvent | None:
    result = await session.exec(
        select(InboundEvent).where(InboundEvent.source == SOURCE, InboundEvent.event_id == event_id)
    )
    return result.first()


def _duplicate(previous: InboundEvent, body_sha256: str) -> DischargeOutcome:
    if previous.body_sha256 != body_sha256:
        raise EventConflict(
            f"event '{previous.event_id}' was already received with a different body"
        )
    return DischargeOutcome(
        event_id=previous.event_id,
        duplicate=True,
        runs=[StartedRun.model_validate(run) for run in previous.runs],
    )


async def _upsert_encounter(
    session: AsyncSession, patient: Patient, event: DischargeEvent
) -> Encounter:
    info = event.encounter
    result = await session.exec(
        select(Encounter).where(Encounter.his_encounter_id == info.encounter_id)
    )
    encounter = result.first()
    if encounter is None:
        await insert_if_absent(
            session,
            Encounter.__table__,  # type: ignore[attr-defined]
            {"id": new_id(), "his_encounter_id": info.encounter_id, "patient_id": patient.id,
             "kind": info.kind, "department_code": info.department_code,
             "department_name": info.department_name, "diagnoses": [], "created_at": utcnow()},
            unique_on=["his_encounter_id"],
        )  # fmt: skip
        result = await session.exec(
            select(Encounter).where(Encounter.his_encounter_id == info.encounter_id)
        )
        encounter = result.one()
    if encounter.patient_id != patient.id:
        raise InvalidEvent("encounter.encounter_id", "encounter belongs to another patient")
    encounter.kind = info.kind
    encounter.department_code = info.department_code
    encounter.department_name = info.department_name
    encounter.ward = info.ward
    encounter.bed = info.bed
    encounter.attending_doctor = info.attending_doctor
    encounter.responsible_nurse = info.responsible_nurse
    encounter.diagnoses = [d.model_dump() for d in info.diagnoses]
    encounter.admitted_at = info.admitted_at
    encounter.discharged_at = info.discharged_at
    await session.flush()
    return encounter


async def _start_once(
    ctx: DischargeContext, workflow_id: str, start: FollowUpInput
) -> WorkflowHandle[object, object]:
    try:
        return await ctx.temporal.start_workflow(
            WORKFLOW_NAME,
            start,
            id=workflow_id,
            task_queue=ctx.settings.temporal_task_queue,
            # Running: hand back the existing run. Finished: never start the same discharge again.
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )
    except WorkflowAlreadyStartedError as exc:
        handle: WorkflowHandle[object, object] = ctx.temporal.get_workflow_handle(
            workflow_id, run_id=exc.run_id
        )
        return handle
