"""Staff put patients on pathways (CM-2, CM-4): start a pathway by hand, list the enrolment
candidates that manually enrolled case management collects, and enrol one, with the patient's
informed consent where the pathway needs it. Each start leaves an audit entry."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field

from api.deps import ContainerDep, SessionDep
from api.permissions import Permission, ensure_patient_visible, ensure_visible, require
from api.routers.run_operations import ClinicalDep
from api.schemas import links
from core.models import CandidateStatus, Encounter, EnrollmentCandidate, Pathway, Patient, utcnow
from core.validation import Key, Line, SaneDateTime, Text, Version
from pathways.definition import PathwaySnapshot
from services import audit
from services.enrolment import EnrolmentContext, StartedRun, list_candidates, start_run
from services.pathway_definitions import DefinitionConflict, ensure_enrolling, published_snapshot
from services.patients import patient_by_his_id
from services.staff import StaffPrincipal

router = APIRouter(tags=["pathway runs"])
ReaderDep = Annotated[StaffPrincipal, Depends(require(Permission.RUNS_READ))]


class StartIn(BaseModel):
    pathway_id: Line
    patient_id: Line = Field(description="the patient's HIS id")
    anchor_at: SaneDateTime
    version: Version | None = None
    department_code: Line | None = Field(default=None, description="default: the caller's")


@router.post(
    "/api/runs",
    response_model=StartedRun,
    status_code=status.HTTP_201_CREATED,
    responses=links(
        201,
        "workflow_id",
        ("GET", "/api/runs/{workflow_id}", "workflow_id"),
        ("GET", "/api/runs/{workflow_id}/audit", "workflow_id"),
        ("POST", "/api/runs/{workflow_id}/pause", "workflow_id"),
        ("POST", "/api/runs/{workflow_id}/resume", "workflow_id"),
        ("POST", "/api/runs/{workflow_id}/end", "workflow_id"),
    ),
)
async def start(
    body: StartIn, container: ContainerDep, session: SessionDep, staff: ClinicalDep
) -> StartedRun:
    """Starts a pathway for a patient by hand (e.g. an education plan after a clinic talk)."""
    pathway = await session.get(Pathway, body.pathway_id)
    if pathway is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no pathway '{body.pathway_id}'")
    try:
        ensure_enrolling(pathway)
    except DefinitionConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    version = body.version or pathway.live_version
    if version is None:
        raise HTTPException(status.HTTP_409_CONFLICT, "the pathway has no published version")
    try:
        snapshot = await published_snapshot(session, body.pathway_id, version)
    except (LookupError, DefinitionConflict) as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    patient = await patient_by_his_id(session, body.patient_id)
    if patient is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no patient '{body.patient_id}'")
    # A patient in the caller's data scope, and a run they could then see (SEC-1); else the
    # patient is not found.
    await ensure_patient_visible(session, staff, patient.id)
    await ensure_visible(
        session,
        staff,
        patient_id=patient.id,
        department_code=body.department_code or staff.department_code,
    )
    if patient.excluded:
        raise HTTPException(status.HTTP_409_CONFLICT, "the patient is excluded from management")
    reference = f"manual-{int(body.anchor_at.timestamp())}"
    department = body.department_code or staff.department_code
    if department is None:
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ("body", "department_code"),
                    "msg": "which department manages this patient",
                }
            ]
        )
    started = await _start(
        container,
        session,
        snapshot,
        patient,
        body.anchor_at,
        reference,
        staff,
        "manual",
        department,
    )
    await session.commit()
    return started


async def _start(
    container: ContainerDep,
    session: SessionDep,
    snapshot: PathwaySnapshot,
    patient: Patient,
    anchor_at: datetime,
    anchor_ref: str,
    staff: StaffPrincipal,
    event: str,
    department_code: str,
    encounter: Encounter | None = None,
) -> StartedRun:
    ctx = EnrolmentContext(container.settings, container.temporal, container.his)
    started = await start_run(
        ctx,
        session,
        snapshot,
        patient,
        encounter=encounter,
        anchor_at=anchor_at,
        anchor_event=event,
        anchor_ref=anchor_ref,
        department_code=department_code,
    )
    audit.record(
        session,
        actor_type="staff",
        actor_id=staff.id,
        action="pathway.run_started",
        target_type="pathway_run",
        target_id=started.workflow_id,
        patient_id=patient.id,
    )
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
    reference: Annotated[Line, Field(min_length=1, max_length=200)]
    signed_at: SaneDateTime


class EnrolIn(BaseModel):
    consent: Consent | None = None
    start_at: SaneDateTime | None = Field(default=None, description="correct the service start")
    note: Text | None = Field(default=None, max_length=300)


@router.get("/api/enrollment-candidates", response_model=list[CandidateOut])
async def candidates(
    session: SessionDep,
    staff: ReaderDep,
    pathway_id: Key | None = None,
    candidate_status: Annotated[Key, Query(alias="status")] = CandidateStatus.PENDING,
) -> list[CandidateOut]:
    rows = await list_candidates(session, staff, status=candidate_status, pathway_id=pathway_id)
    return [CandidateOut.model_validate(r.model_dump()) for r in rows]


@router.post("/api/enrollment-candidates/{candidate_id}/enrol", response_model=StartedRun)
async def enrol(
    candidate_id: Key,
    body: EnrolIn,
    container: ContainerDep,
    session: SessionDep,
    staff: ClinicalDep,
) -> StartedRun:
    candidate = await session.get(EnrollmentCandidate, candidate_id, with_for_update=True)
    if candidate is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no candidate '{candidate_id}'")
    await ensure_visible(
        session,
        staff,
        patient_id=candidate.patient_id,
        department_code=candidate.department_code,
    )
    if candidate.status != CandidateStatus.PENDING:
        raise HTTPException(status.HTTP_409_CONFLICT, f"candidate is {candidate.status}")
    pathway = await session.get(Pathway, candidate.pathway_id)
    assert pathway is not None
    try:
        ensure_enrolling(pathway)
    except DefinitionConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    assert pathway.live_version is not None
    snapshot = await published_snapshot(session, pathway.id, pathway.live_version)
    if snapshot.definition.enrollment.requires_consent and body.consent is None:
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ("body", "consent"),
                    "msg": "this pathway needs the patient's informed consent",
                }
            ]
        )
    patient = await session.get(Patient, candidate.patient_id)
    assert patient is not None
    if patient.excluded:
        raise HTTPException(status.HTTP_409_CONFLICT, "the patient is excluded from management")
    start_at = body.start_at or utcnow()
    encounter = await session.get(Encounter, candidate.encounter_id or "")
    started = await _start(
        container,
        session,
        snapshot,
        patient,
        start_at,
        f"enrol-{candidate.id[:8]}",
        staff,
        "enrollment",
        candidate.department_code,
        encounter,
    )
    candidate.status = CandidateStatus.ENROLLED
    candidate.workflow_id = started.workflow_id
    candidate.consent = body.consent.model_dump(mode="json") if body.consent else None
    candidate.start_at = start_at
    candidate.decided_by, candidate.decided_at, candidate.note = staff.id, utcnow(), body.note
    package = snapshot.definition.enrollment.service_package
    audit.record(
        session,
        actor_type="staff",
        actor_id=staff.id,
        action="pathway.enrolled",
        target_type="enrollment_candidate",
        target_id=candidate.id,
        patient_id=candidate.patient_id,
        consent=candidate.consent,
        package=package.code if package else None,
        start_at=start_at.isoformat(),
    )
    await session.commit()
    return started
