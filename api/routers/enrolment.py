"""Staff put patients on pathways (CM-2, CM-4): start a pathway by hand, list the enrolment
candidates that manually enrolled case management collects, and enrol one, with the patient's
informed consent where the pathway needs it, or record that the patient declined. The decisions
themselves are services.candidates'."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, NoReturn

from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field

from api.deps import ContainerDep, SessionDep
from api.permissions import Permission, ensure_patient_visible, ensure_visible, require
from api.routers.run_operations import ClinicalDep
from api.schemas import links
from core.models import CandidateStatus, EnrollmentCandidate, Pathway
from core.validation import Key, Line, SaneDateTime, Text, Version
from services import candidates
from services.candidates import CandidateRefused, Consent
from services.enrolment import StartedRun
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
    try:
        started = await candidates.start_by_staff(
            container.enrolment,
            session,
            staff,
            snapshot,
            patient,
            anchor_at=body.anchor_at,
            anchor_ref=f"manual-{int(body.anchor_at.timestamp())}",
            anchor_event="manual",
            department_code=department,
        )
    except CandidateRefused as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, exc.detail) from exc
    await session.commit()
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


class EnrolIn(BaseModel):
    consent: Consent | None = None
    start_at: SaneDateTime | None = Field(default=None, description="correct the service start")
    note: Text | None = Field(default=None, max_length=candidates.NOTE_LIMIT)


@router.get("/api/enrollment-candidates", response_model=list[CandidateOut])
async def candidate_list(
    session: SessionDep,
    staff: ReaderDep,
    pathway_id: Key | None = None,
    candidate_status: Annotated[Key, Query(alias="status")] = CandidateStatus.PENDING,
) -> list[CandidateOut]:
    rows = await candidates.list_candidates(
        session, staff, status=candidate_status, pathway_id=pathway_id
    )
    return [CandidateOut.model_validate(r.model_dump()) for r in rows]


@router.post("/api/enrollment-candidates/{candidate_id}/enrol", response_model=StartedRun)
async def enrol(
    candidate_id: Key,
    body: EnrolIn,
    container: ContainerDep,
    session: SessionDep,
    staff: ClinicalDep,
) -> StartedRun:
    candidate = await _candidate(session, staff, candidate_id)
    try:
        started = await candidates.enrol(
            container.enrolment,
            session,
            staff,
            candidate,
            consent=body.consent,
            start_at=body.start_at,
            note=body.note,
        )
    except CandidateRefused as exc:
        _refused(exc)
    await session.commit()
    return started


class DeclineIn(BaseModel):
    note: Annotated[
        Text,
        Field(
            min_length=2,
            max_length=candidates.NOTE_LIMIT,
            description="why the patient is not enrolled (declined, not suitable, ...)",
        ),
    ]


@router.post(
    "/api/enrollment-candidates/{candidate_id}/decline",
    status_code=status.HTTP_204_NO_CONTENT,
)
async def decline(
    candidate_id: Key, body: DeclineIn, session: SessionDep, staff: ClinicalDep
) -> None:
    candidate = await _candidate(session, staff, candidate_id)
    try:
        candidates.decline(session, staff, candidate, body.note)
    except CandidateRefused as exc:
        _refused(exc)
    await session.commit()


async def _candidate(
    session: SessionDep, staff: StaffPrincipal, candidate_id: str
) -> EnrollmentCandidate:
    candidate = await session.get(EnrollmentCandidate, candidate_id, with_for_update=True)
    if candidate is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no candidate '{candidate_id}'")
    await ensure_visible(
        session,
        staff,
        patient_id=candidate.patient_id,
        department_code=candidate.department_code,
    )
    return candidate


def _refused(exc: CandidateRefused) -> NoReturn:
    if exc.code == "consent_required":
        raise RequestValidationError(
            [{"type": "value_error", "loc": ("body", "consent"), "msg": exc.detail}]
        ) from exc
    raise HTTPException(status.HTTP_409_CONFLICT, exc.detail) from exc
