"""Staff operate running pathways (CM-4, FU-8, FU-10, CM-2, CM-7, CM-8): start one by hand,
reschedule or skip an occurrence, add an ad-hoc step, pause, resume, end, migrate to a newer
version (with a dry run), record a staff task's outcome, enrol candidates, exclude a patient,
list potential losses and compare outcomes. Every change goes through a workflow update whose
validator explains a refusal (409), and leaves an audit entry naming who, when and why."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from sqlmodel import col, select
from temporalio.client import WorkflowQueryFailedError, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from api.deps import ContainerDep, SessionDep, StaffDep, ensure_visible, require_role
from contracts.pathway import (
    QUERY_MIGRATION_PLAN,
    UPDATE_ADD_STEP,
    UPDATE_COMPLETE_TASK,
    UPDATE_END,
    UPDATE_MIGRATE,
    UPDATE_PAUSE,
    UPDATE_RESCHEDULE,
    UPDATE_RESUME,
    UPDATE_SKIP,
    AdHocStep,
    End,
    Migration,
    MigrationPlan,
    Occurrence,
    Pause,
    Reschedule,
    Resume,
    Skip,
    TaskCompletion,
)
from contracts.runs import RunProgress
from core.models import (
    AuditEntry,
    CandidateStatus,
    CareTask,
    Encounter,
    EnrollmentCandidate,
    FormResponse,
    Pathway,
    PathwayRun,
    Patient,
    RunStatus,
    StaffRole,
    utcnow,
)
from pathways.definition import Action, Offset, PathwaySnapshot
from pathways.timeline import add_offset
from services import audit
from services.enrolment import EnrolmentContext, StartedRun, start_run
from services.pathway_definitions import DefinitionConflict, published_snapshot
from services.staff import StaffPrincipal

router = APIRouter(tags=["pathway runs"])
R = TypeVar("R")
ClinicalDep = Annotated[
    StaffPrincipal,
    Depends(require_role(StaffRole.NURSE, StaffRole.DOCTOR, StaffRole.CARE_MANAGER)),
]


async def _update(
    container: ContainerDep, workflow_id: str, name: str, argument: BaseModel, result: type[R]
) -> R:
    handle = container.temporal.get_workflow_handle(workflow_id)
    try:
        outcome: R = await handle.execute_update(name, argument, result_type=result)
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        reason = cause.message if isinstance(cause, ApplicationError) else str(cause or exc)
        raise HTTPException(status.HTTP_409_CONFLICT, reason) from exc
    except RPCError as exc:
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"the run is not running: {exc.message}"
        ) from exc
    return outcome


async def _run(session: SessionDep, staff: StaffPrincipal, workflow_id: str) -> PathwayRun:
    run = await session.get(PathwayRun, workflow_id)
    if run is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no run with id '{workflow_id}'")
    ensure_visible(staff, run.department_code)
    return run


class Reason(BaseModel):
    reason: str = Field(min_length=1, max_length=300)


class RescheduleIn(Reason):
    due_at: datetime


@router.post(
    "/api/runs/{workflow_id}/occurrences/{step_id}/{index}/reschedule", response_model=Occurrence
)
async def reschedule(
    workflow_id: str, step_id: str, index: int, body: RescheduleIn, container: ContainerDep,
    session: SessionDep, staff: ClinicalDep,
) -> Occurrence:  # fmt: skip
    await _run(session, staff, workflow_id)
    change = Reschedule(key=f"{step_id}#{index}", due_at=body.due_at, reason=body.reason,
                        actor=staff.id)  # fmt: skip
    return await _update(container, workflow_id, UPDATE_RESCHEDULE, change, Occurrence)


@router.post(
    "/api/runs/{workflow_id}/occurrences/{step_id}/{index}/skip", response_model=Occurrence
)
async def skip(
    workflow_id: str, step_id: str, index: int, body: Reason, container: ContainerDep,
    session: SessionDep, staff: ClinicalDep,
) -> Occurrence:  # fmt: skip
    await _run(session, staff, workflow_id)
    change = Skip(key=f"{step_id}#{index}", reason=body.reason, actor=staff.id)
    return await _update(container, workflow_id, UPDATE_SKIP, change, Occurrence)


class AdHocIn(Reason):
    title: str = Field(min_length=1, max_length=100)
    action: Action
    due_at: datetime
    validity: Offset | None = None
    lost_after: Offset | None = None


@router.post("/api/runs/{workflow_id}/steps", response_model=Occurrence)
async def add_step(
    workflow_id: str, body: AdHocIn, container: ContainerDep, session: SessionDep,
    staff: ClinicalDep,
) -> Occurrence:  # fmt: skip
    await _run(session, staff, workflow_id)
    change = AdHocStep(actor=staff.id, **body.model_dump())
    return await _update(container, workflow_id, UPDATE_ADD_STEP, change, Occurrence)


async def _lifecycle(
    container: ContainerDep, session: SessionDep, staff: StaffPrincipal, workflow_id: str,
    name: str, change: BaseModel,
) -> RunProgress:  # fmt: skip
    await _run(session, staff, workflow_id)
    return await _update(container, workflow_id, name, change, RunProgress)


@router.post("/api/runs/{workflow_id}/pause", response_model=RunProgress)
async def pause(
    workflow_id: str, body: Reason, container: ContainerDep, session: SessionDep,
    staff: ClinicalDep,
) -> RunProgress:  # fmt: skip
    change = Pause(reason=body.reason, actor=staff.id)
    return await _lifecycle(container, session, staff, workflow_id, UPDATE_PAUSE, change)


@router.post("/api/runs/{workflow_id}/resume", response_model=RunProgress)
async def resume(
    workflow_id: str, body: Reason, container: ContainerDep, session: SessionDep,
    staff: ClinicalDep,
) -> RunProgress:  # fmt: skip
    change = Resume(reason=body.reason, actor=staff.id)
    return await _lifecycle(container, session, staff, workflow_id, UPDATE_RESUME, change)


@router.post("/api/runs/{workflow_id}/end", response_model=RunProgress)
async def end(
    workflow_id: str, body: Reason, container: ContainerDep, session: SessionDep,
    staff: ClinicalDep,
) -> RunProgress:  # fmt: skip
    change = End(reason=body.reason, actor=staff.id)
    return await _lifecycle(container, session, staff, workflow_id, UPDATE_END, change)


class MigrateIn(Reason):
    to_version: int = Field(ge=1)
    mapping: dict[str, str | None]
    dry_run: bool = False


@router.post("/api/runs/{workflow_id}/migration", response_model=MigrationPlan)
async def migrate(
    workflow_id: str, body: MigrateIn, container: ContainerDep, session: SessionDep,
    staff: ClinicalDep,
) -> MigrationPlan:  # fmt: skip
    """Moves the run to a newer published version. With ``dry_run`` it only answers what would
    change: kept in progress, rescheduled, removed, added."""
    run = await _run(session, staff, workflow_id)
    try:
        target = await published_snapshot(session, run.plan_id, body.to_version)
    except (LookupError, DefinitionConflict) as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    migration = Migration(target=target, mapping=body.mapping, reason=body.reason, actor=staff.id)
    if body.dry_run:
        try:
            plan: MigrationPlan = await container.temporal.get_workflow_handle(workflow_id).query(
                QUERY_MIGRATION_PLAN, migration, result_type=MigrationPlan
            )
        except WorkflowQueryFailedError as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc.message)) from exc
        return plan
    return await _update(container, workflow_id, UPDATE_MIGRATE, migration, MigrationPlan)


class CompleteIn(Reason):
    outcome: Literal["completed", "abnormal"]
    next_followup_at: datetime | None = None


@router.post("/api/tasks/{task_id}/complete", response_model=Occurrence)
async def complete_task(
    task_id: str, body: CompleteIn, container: ContainerDep, session: SessionDep,
    staff: ClinicalDep,
) -> Occurrence:  # fmt: skip
    """FU-8: the outcome of a phone follow-up or visit, and optionally the next one's date."""
    task = await session.get(CareTask, task_id)
    if task is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no task '{task_id}'")
    ensure_visible(staff, task.department_code)
    change = TaskCompletion(
        key=f"{task.step_id}#{task.occurrence}", outcome=body.outcome, reason=body.reason,
        next_followup_at=body.next_followup_at, actor=staff.id,
    )  # fmt: skip
    return await _update(container, task.workflow_id, UPDATE_COMPLETE_TASK, change, Occurrence)


class StartIn(BaseModel):
    pathway_id: str
    patient_id: str = Field(description="the patient's HIS id")
    anchor_at: datetime
    version: int | None = None
    department_code: str | None = Field(default=None, description="default: the caller's")


@router.post("/api/runs", response_model=StartedRun, status_code=status.HTTP_201_CREATED)
async def start(
    body: StartIn, container: ContainerDep, session: SessionDep, staff: ClinicalDep
) -> StartedRun:
    """Starts a pathway for a patient by hand (e.g. an education plan after a clinic talk)."""
    pathway = await session.get(Pathway, body.pathway_id)
    if pathway is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no pathway '{body.pathway_id}'")
    version = body.version or pathway.live_version
    if version is None:
        raise HTTPException(status.HTTP_409_CONFLICT, "the pathway has no published version")
    try:
        snapshot = await published_snapshot(session, body.pathway_id, version)
    except (LookupError, DefinitionConflict) as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    found = await session.exec(select(Patient).where(Patient.his_patient_id == body.patient_id))
    patient = found.first()
    if patient is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no patient '{body.patient_id}'")
    if patient.excluded:
        raise HTTPException(status.HTTP_409_CONFLICT, "the patient is excluded from management")
    reference = f"manual-{int(body.anchor_at.timestamp())}"
    department = body.department_code or staff.department_code
    if department is None:
        raise RequestValidationError(
            [{"type": "value_error", "loc": ("body", "department_code"),
              "msg": "which department manages this patient"}]
        )  # fmt: skip
    started = await _start(
        container, session, snapshot, patient, body.anchor_at, reference, staff, "manual",
        department,
    )  # fmt: skip
    await session.commit()
    return started


async def _start(
    container: ContainerDep, session: SessionDep, snapshot: PathwaySnapshot, patient: Patient,
    anchor_at: datetime, anchor_ref: str, staff: StaffPrincipal, event: str,
    department_code: str, encounter: Encounter | None = None,
) -> StartedRun:  # fmt: skip
    ctx = EnrolmentContext(container.settings, container.temporal, container.his)
    started = await start_run(
        ctx, session, snapshot, patient, encounter=encounter, anchor_at=anchor_at,
        anchor_event=event, anchor_ref=anchor_ref, department_code=department_code,
    )  # fmt: skip
    audit.record(session, actor_type="staff", actor_id=staff.id, action="pathway.run_started",
                 target_type="pathway_run", target_id=started.workflow_id)  # fmt: skip
    return started


class CandidateOut(BaseModel):
    id: str
    pathway_id: str
    patient_id: str
    department_code: str
    status: str
    event_ref: str
    created_at: datetime
    workflow_id: str | None


class Consent(BaseModel):
    """CM-2: an electronic signature or an uploaded scan of the signed consent form."""

    method: Literal["e_signature", "scan"]
    reference: str = Field(min_length=1, max_length=200)
    signed_at: datetime


class EnrolIn(BaseModel):
    consent: Consent | None = None
    start_at: datetime | None = Field(default=None, description="correct the service start")
    note: str | None = Field(default=None, max_length=300)


@router.get("/api/enrollment-candidates", response_model=list[CandidateOut])
async def candidates(
    session: SessionDep, staff: StaffDep, pathway_id: str | None = None,
    candidate_status: Annotated[str, Query(alias="status")] = CandidateStatus.PENDING,
) -> list[CandidateOut]:  # fmt: skip
    query: Any = select(EnrollmentCandidate).where(EnrollmentCandidate.status == candidate_status)
    if pathway_id:
        query = query.where(EnrollmentCandidate.pathway_id == pathway_id)
    if staff.department_code is not None:
        query = query.where(EnrollmentCandidate.department_code == staff.department_code)
    rows = await session.exec(query.order_by(col(EnrollmentCandidate.created_at)))
    return [CandidateOut.model_validate(r.model_dump()) for r in rows.all()]


@router.post("/api/enrollment-candidates/{candidate_id}/enrol", response_model=StartedRun)
async def enrol(
    candidate_id: str, body: EnrolIn, container: ContainerDep, session: SessionDep,
    staff: ClinicalDep,
) -> StartedRun:  # fmt: skip
    candidate = await session.get(EnrollmentCandidate, candidate_id, with_for_update=True)
    if candidate is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no candidate '{candidate_id}'")
    ensure_visible(staff, candidate.department_code)
    if candidate.status != CandidateStatus.PENDING:
        raise HTTPException(status.HTTP_409_CONFLICT, f"candidate is {candidate.status}")
    pathway = await session.get(Pathway, candidate.pathway_id)
    assert pathway is not None
    assert pathway.live_version is not None
    snapshot = await published_snapshot(session, pathway.id, pathway.live_version)
    if snapshot.definition.enrollment.requires_consent and body.consent is None:
        raise RequestValidationError(
            [{"type": "value_error", "loc": ("body", "consent"),
              "msg": "this pathway needs the patient's informed consent"}]
        )  # fmt: skip
    patient = await session.get(Patient, candidate.patient_id)
    assert patient is not None
    if patient.excluded:
        raise HTTPException(status.HTTP_409_CONFLICT, "the patient is excluded from management")
    start_at = body.start_at or utcnow()
    encounter = await session.get(Encounter, candidate.encounter_id or "")
    started = await _start(
        container, session, snapshot, patient, start_at, f"enrol-{candidate.id[:8]}", staff,
        "enrollment", candidate.department_code, encounter,
    )  # fmt: skip
    candidate.status = CandidateStatus.ENROLLED
    candidate.workflow_id = started.workflow_id
    candidate.consent = body.consent.model_dump(mode="json") if body.consent else None
    candidate.start_at = start_at
    candidate.decided_by, candidate.decided_at, candidate.note = staff.id, utcnow(), body.note
    package = snapshot.definition.enrollment.service_package
    audit.record(
        session, actor_type="staff", actor_id=staff.id, action="pathway.enrolled",
        target_type="enrollment_candidate", target_id=candidate.id,
        consent=candidate.consent, package=package.code if package else None,
        start_at=start_at.isoformat(),
    )  # fmt: skip
    await session.commit()
    return started


class ExclusionIn(Reason):
    pass


class ExclusionOut(BaseModel):
    patient_id: str
    ended_runs: list[str]


@router.post("/api/patients/{patient_id}/exclusion", response_model=ExclusionOut)
async def exclude(
    patient_id: str, body: ExclusionIn, container: ContainerDep, session: SessionDep,
    staff: ClinicalDep,
) -> ExclusionOut:  # fmt: skip
    """FU-10: a patient tagged as excluded has every running pathway ended, and no new one."""
    patient = await session.get(Patient, patient_id, with_for_update=True)
    if patient is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no patient '{patient_id}'")
    patient.excluded = True
    audit.record(session, actor_type="staff", actor_id=staff.id, action="patient.excluded",
                 target_type="patient", target_id=patient.id, reason=body.reason)  # fmt: skip
    await session.commit()
    runs = await session.exec(
        select(PathwayRun).where(
            PathwayRun.patient_id == patient.id, PathwayRun.status == RunStatus.RUNNING
        )
    )
    ended = []
    for run in runs.all():
        change = End(reason=f"患者已排除：{body.reason}", actor=staff.id)
        try:
            await _update(container, run.workflow_id, UPDATE_END, change, RunProgress)
        except HTTPException:
            continue  # already ended or finished meanwhile
        ended.append(run.workflow_id)
    return ExclusionOut(patient_id=patient.id, ended_runs=ended)


class LostOut(BaseModel):
    task_id: str
    workflow_id: str
    patient_id: str
    patient_name: str
    title: str
    due_at: datetime
    closed_at: datetime | None


@router.get("/api/pathways/{pathway_id}/potential-losses", response_model=list[LostOut])
async def potential_losses(pathway_id: str, session: SessionDep, staff: StaffDep) -> list[LostOut]:
    """CM-7: revisits due without a registration, for the outbound-call team."""
    query: Any = (
        select(CareTask, Patient)
        .join(Patient, col(Patient.id) == CareTask.patient_id)
        .where(CareTask.plan_id == pathway_id, CareTask.action_type == "revisit",
               CareTask.status == "lost")
        .order_by(col(CareTask.due_at))
    )  # fmt: skip
    if staff.department_code is not None:
        query = query.where(CareTask.department_code == staff.department_code)
    rows = (await session.exec(query)).all()
    return [
        LostOut(task_id=t.id, workflow_id=t.workflow_id, patient_id=p.id, patient_name=p.name,
                title=t.title, due_at=t.due_at, closed_at=t.closed_at)
        for t, p in rows
    ]  # fmt: skip


class OutcomePoint(BaseModel):
    at: str
    due_at: datetime
    value: float | None
    change: float | None


class OutcomeOut(BaseModel):
    indicator: str
    label: str
    baseline: float | None
    points: list[OutcomePoint]


@router.get("/api/runs/{workflow_id}/outcomes", response_model=list[OutcomeOut])
async def outcomes(
    workflow_id: str, container: ContainerDep, session: SessionDep, staff: StaffDep
) -> list[OutcomeOut]:
    """CM-8: each core indicator at the baseline and at its comparison points."""
    run = await _run(session, staff, workflow_id)
    snapshot = PathwaySnapshot.model_validate(run.plan_snapshot)
    rows = await session.exec(
        select(CareTask, FormResponse)
        .join(FormResponse, col(FormResponse.task_id) == CareTask.id)
        .where(CareTask.workflow_id == workflow_id)
        .order_by(col(CareTask.due_at))
    )
    answered = rows.all()
    tz = container.settings.tz

    def value(response: FormResponse, name: str) -> float | None:
        if name in response.scores:
            found = response.scores[name]
            return float(found) if found is not None else None
        given = response.answers.get(name)
        try:
            return float(given[0]) if given else None
        except ValueError:
            return None

    result = []
    for outcome in snapshot.definition.outcomes:
        baseline = next(
            (value(r, outcome.indicator) for t, r in answered
             if t.step_id == outcome.baseline_step and r.form_id == outcome.form), None,
        )  # fmt: skip
        points = []
        for offset in outcome.at:
            due = add_offset(run.anchor_at, offset, tz)
            # The answer to this form closest to the comparison point.
            candidates_ = [
                (abs((t.due_at - due).total_seconds()), t, r)
                for t, r in answered
                if r.form_id == outcome.form and t.step_id != outcome.baseline_step
            ]
            nearest = min(candidates_, key=lambda c: c[0], default=None)  # fmt: skip
            found = value(nearest[2], outcome.indicator) if nearest else None
            label = f"{offset.months}个月" if offset.months else f"{offset.approx().days}天"
            points.append(
                OutcomePoint(at=label, due_at=due, value=found,
                             change=round(found - baseline, 2)
                             if found is not None and baseline is not None else None)
            )  # fmt: skip
        result.append(OutcomeOut(indicator=outcome.indicator, label=outcome.label,
                                 baseline=baseline, points=points))  # fmt: skip
    return result


class AuditOut(BaseModel):
    at: datetime
    actor_id: str | None
    action: str
    detail: dict[str, Any]


@router.get("/api/runs/{workflow_id}/audit", response_model=list[AuditOut])
async def run_audit(workflow_id: str, session: SessionDep, staff: StaffDep) -> list[AuditOut]:
    await _run(session, staff, workflow_id)
    rows = await session.exec(
        select(AuditEntry).where(AuditEntry.target_id == workflow_id).order_by(col(AuditEntry.at))
    )
    return [AuditOut.model_validate(r.model_dump()) for r in rows.all()]
