"""HIS events (HIS-1) enrol patients in pathways (FU-1, FU-6, ED-1, SAT-1, CM-2): each live
pathway whose membership rules match starts a run, or, for manually enrolled case management,
lists the patient as a candidate. A registration satisfies expected revisits (CM-7).

Exactly-once per event: the event id is recorded in the same transaction as the master data, and
each run's workflow id is derived from pathway, patient and anchoring event, so neither a
redelivered event nor a second event for the same encounter can start a second run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from contracts.pathway import (
    PATHWAY_WORKFLOW,
    SIGNAL_REGISTRATION,
    Registration,
    RunInput,
    pathway_workflow_id,
)
from contracts.search import search_attributes
from core.db import insert_if_absent
from core.models import (
    Encounter,
    EnrollmentCandidate,
    InboundEvent,
    PathwayRun,
    Patient,
    RunStatus,
    new_id,
    utcnow,
)
from core.settings import Settings
from integrations.his import HisClient
from integrations.his_events import DischargeEvent, EncounterEvent, RegistrationEvent
from pathways.definition import PathwaySnapshot
from pathways.form_definition import CARE_STEPS
from pathways.membership import EventFacts, in_sample, matches
from services import audit
from services.hospitals import HospitalProfile, hospital_profile
from services.inbound_events import find_event
from services.pathway_definitions import live_snapshots
from services.patients import fetch_patient, patient_by_his_id, upsert_patient

SOURCE = "his"
# An HIS clock may run a little ahead of ours; an event further in the future is an error.
FUTURE_TOLERANCE = timedelta(minutes=10)


class StartedRun(BaseModel):
    workflow_id: str
    run_id: str
    plan_id: str
    plan_version: int


class EventOutcome(BaseModel):
    event_id: str
    duplicate: bool
    runs: list[StartedRun]
    candidates: list[str] = []


class EventConflict(Exception):
    """The event id was seen before with a different body: a sender bug, not a redelivery."""


class InvalidEvent(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class EnrolmentContext:
    settings: Settings
    temporal: Client
    his: HisClient


def _duplicate(previous: InboundEvent, body_sha256: str) -> EventOutcome:
    if previous.body_sha256 != body_sha256:
        raise EventConflict(
            f"event '{previous.event_id}' was already received with a different body"
        )
    return EventOutcome(
        event_id=previous.event_id,
        duplicate=True,
        runs=[StartedRun.model_validate(r) for r in previous.runs if "workflow_id" in r],
        candidates=[r["candidate"] for r in previous.runs if "candidate" in r],
    )


async def _record(
    session: AsyncSession, event_id: str, event_type: str, body_sha256: str
) -> InboundEvent | EventOutcome:
    """The new event's row, or the earlier outcome when a racing delivery recorded it first."""
    previous = await find_event(session, SOURCE, event_id)
    if previous is not None:
        return _duplicate(previous, body_sha256)
    record = InboundEvent(
        source=SOURCE, event_id=event_id, event_type=event_type, body_sha256=body_sha256
    )
    session.add(record)
    try:
        await session.flush()
    except IntegrityError:
        await session.rollback()
        raced = await find_event(session, SOURCE, event_id)
        if raced is None:
            raise
        return _duplicate(raced, body_sha256)
    return record


async def accept_encounter_event(
    session: AsyncSession,
    ctx: EnrolmentContext,
    event: DischargeEvent | EncounterEvent,
    body_sha256: str,
) -> EventOutcome:
    """Records the event and starts its runs. The caller commits; on any error it rolls back."""
    anchor = _anchor_time(event)
    if anchor > utcnow() + FUTURE_TOLERANCE:
        field = "encounter.discharged_at" if event.event_type == "discharge" else "occurred_at"
        raise InvalidEvent(field, f"{event.event_type} time is in the future")
    admitted = event.encounter.admitted_at
    if event.event_type == "discharge" and admitted is not None and admitted > anchor:
        raise InvalidEvent("encounter.admitted_at", "admission is after discharge")
    speedup = getattr(event, "demo_clock_speedup", None) or 1.0
    if speedup != 1.0 and not ctx.settings.demo_clock_allowed:
        raise InvalidEvent("demo_clock_speedup", "a compressed clock is not allowed here")

    # The HIS is asked before our transaction starts, so that a slow HIS does not hold a
    # database connection (and the event's row lock) while it answers.
    master_data = await fetch_patient(session, ctx.his, event.patient_id)
    recorded = await _record(session, event.event_id, event.event_type, body_sha256)
    if isinstance(recorded, EventOutcome):
        return recorded
    patient = await upsert_patient(session, master_data)
    encounter = await _upsert_encounter(session, patient, event)
    facts = EventFacts(
        event_type=event.event_type,
        encounter_kind=event.encounter.kind,
        department_code=event.encounter.department_code,
        ward=event.encounter.ward,
        diagnoses=[(d.code, d.name) for d in event.encounter.diagnoses],
        drugs=list(event.drugs),
        orders=list(event.orders),
        sex=patient.sex,
        birth_date=patient.birth_date,
        on=anchor.astimezone(ctx.settings.tz).date(),
    )
    starts: list[tuple[PathwaySnapshot, datetime]] = []
    candidates: list[str] = []
    if not patient.excluded:
        for snapshot in await live_snapshots(session):
            definition = snapshot.definition
            membership = definition.membership
            if membership is None or not matches(membership, facts):
                continue
            if not in_sample(
                definition.id,
                patient.his_patient_id,
                encounter.his_encounter_id,
                membership.sample_ratio,
            ):
                continue
            if definition.enrollment.mode == "manual":
                await _candidate(session, definition.id, patient, encounter, event.event_id)
                candidates.append(definition.id)
                continue
            anchor_at = anchor
            if definition.anchor == "fixed_date" and definition.fixed_date is not None:
                # A campaign on a fixed date: the event enrols, the calendar anchors.
                anchor_at = datetime.combine(
                    definition.fixed_date, datetime.min.time(), tzinfo=ctx.settings.tz
                )
            starts.append((snapshot, anchor_at))
    runs: list[StartedRun] = []
    if starts:  # an event that starts nothing needs no hospital profile
        profile = await hospital_profile(session, ctx.settings, ctx.settings.default_hospital_code)
        # Started together: each start waits on Temporal, and the event's row stays locked until
        # the caller commits, so one after another made a redelivery wait for all of them.
        started = await asyncio.gather(
            *(
                start_run(
                    ctx,
                    profile,
                    snapshot,
                    patient,
                    encounter=encounter,
                    anchor_at=anchor_at,
                    anchor_event=event.event_type,
                    anchor_ref=encounter.his_encounter_id,
                    speedup=speedup,
                )
                for snapshot, anchor_at in starts
            ),
            return_exceptions=True,
        )
        for outcome in started:
            if isinstance(outcome, BaseException):
                raise outcome  # the first failure; the rest have finished, nothing runs on
            runs.append(outcome)
    recorded.runs = [r.model_dump() for r in runs] + [{"candidate": c} for c in candidates]
    audit.record(
        session,
        actor_type="his",
        actor_id=SOURCE,
        action=f"{event.event_type}.accepted",
        target_type="encounter",
        target_id=encounter.id,
        patient_id=patient.id,
        event_id=event.event_id,
        workflow_ids=[r.workflow_id for r in runs],
        candidates=candidates,
    )
    return EventOutcome(event_id=event.event_id, duplicate=False, runs=runs, candidates=candidates)


def _anchor_time(event: DischargeEvent | EncounterEvent) -> datetime:
    if isinstance(event, DischargeEvent):
        assert event.encounter.discharged_at is not None
        return event.encounter.discharged_at
    return event.occurred_at


async def start_run(
    ctx: EnrolmentContext,
    profile: HospitalProfile,
    snapshot: PathwaySnapshot,
    patient: Patient,
    *,
    encounter: Encounter | None,
    anchor_at: datetime,
    anchor_event: str,
    anchor_ref: str,
    speedup: float = 1.0,
    department_code: str | None = None,
) -> StartedRun:
    """Starts the run in Temporal (or finds it started) for the hospital ``profile`` describes.
    Touches no database session, so that an event's runs can start at once."""
    definition = snapshot.definition
    workflow_id = pathway_workflow_id(definition.id, patient.his_patient_id, anchor_ref)
    run_input = RunInput(
        patient_id=patient.id,
        encounter_id=encounter.id if encounter else None,
        department_code=department_code or (encounter.department_code if encounter else ""),
        hospital_code=profile.code,
        anchor_at=anchor_at,
        anchor_event=anchor_event,
        snapshot=snapshot,
        timezone=profile.tz.key,
        clock_speedup=speedup,
    )
    try:
        handle: WorkflowHandle[object, object] = await ctx.temporal.start_workflow(
            PATHWAY_WORKFLOW,
            run_input,
            id=workflow_id,
            task_queue=ctx.settings.temporal_task_queue,
            search_attributes=search_attributes(
                patient=patient.his_patient_id,
                pathway=definition.id,
                pathway_version=snapshot.version,
                department=run_input.department_code,
                ward=encounter.ward if encounter else None,
                hospital=profile.code,
            ),
            # Running: hand back the existing run. Finished: never start the same one again.
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )
    except WorkflowAlreadyStartedError as exc:
        handle = ctx.temporal.get_workflow_handle(workflow_id, run_id=exc.run_id)
    return StartedRun(
        workflow_id=workflow_id,
        run_id=handle.result_run_id or handle.run_id or "",
        plan_id=definition.id,
        plan_version=snapshot.version,
    )


async def _candidate(
    session: AsyncSession, pathway_id: str, patient: Patient, encounter: Encounter, event_id: str
) -> None:
    await insert_if_absent(
        session,
        EnrollmentCandidate.__table__,  # type: ignore[attr-defined]
        {
            "id": new_id(),
            "pathway_id": pathway_id,
            "patient_id": patient.id,
            "encounter_id": encounter.id,
            "event_ref": event_id,
            "department_code": encounter.department_code,
            "status": "pending",
            "created_at": utcnow(),
        },
        unique_on=["pathway_id", "patient_id", "event_ref"],
    )


async def accept_registration(
    session: AsyncSession, ctx: EnrolmentContext, event: RegistrationEvent, body_sha256: str
) -> EventOutcome:
    """Tells the patient's running case-management pathways that a visit was registered."""
    recorded = await _record(session, event.event_id, event.event_type, body_sha256)
    if isinstance(recorded, EventOutcome):
        return recorded
    patient = await patient_by_his_id(session, event.patient_id)
    if patient is None:
        return EventOutcome(event_id=event.event_id, duplicate=False, runs=[])
    signal = Registration(department_code=event.department_code, at=event.registered_at)
    touched = []
    for run in await running_runs(session, patient.id):
        try:
            await ctx.temporal.get_workflow_handle(run.workflow_id).signal(
                SIGNAL_REGISTRATION, signal
            )
        except RPCError:
            continue  # finished meanwhile
        touched.append(
            StartedRun(
                workflow_id=run.workflow_id,
                run_id="",
                plan_id=run.plan_id,
                plan_version=run.plan_version,
            )
        )
    audit.record(
        session,
        actor_type="his",
        actor_id=SOURCE,
        action=f"{event.event_type}.accepted",
        target_type="patient",
        target_id=patient.id,
        event_id=event.event_id,
        department_code=event.department_code,
        workflow_ids=[r.workflow_id for r in touched],
    )
    return EventOutcome(event_id=event.event_id, duplicate=False, runs=touched)


async def running_runs(session: AsyncSession, patient_id: str) -> Sequence[PathwayRun]:
    rows = await session.exec(
        select(PathwayRun).where(
            PathwayRun.patient_id == patient_id, PathwayRun.status == RunStatus.RUNNING
        )
    )
    return rows.all()


async def _upsert_encounter(
    session: AsyncSession, patient: Patient, event: DischargeEvent | EncounterEvent
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
            {
                "id": new_id(),
                "his_encounter_id": info.encounter_id,
                "patient_id": patient.id,
                "kind": info.kind,
                "department_code": info.department_code,
                "department_name": info.department_name,
                "diagnoses": [],
                "created_at": utcnow(),
            },
            unique_on=["his_encounter_id"],
        )
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
    if info.care_steps is not None:
        encounter.care_steps = sorted({s for s in info.care_steps if s in CARE_STEPS})
    encounter.diagnoses = [d.model_dump() for d in info.diagnoses]
    encounter.admitted_at = info.admitted_at
    encounter.discharged_at = info.discharged_at
    await session.flush()
    return encounter
