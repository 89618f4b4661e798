"""Manual enrolment (CM-2): the patients an HIS event made eligible for a pathway that enrols by
hand, and a staff member's decision on each, made once: enrol, with the patient's informed consent
where the pathway asks for it and the service start as agreed with the patient, or record that the
patient declined. The JSON API and the workbench both decide through here; every decision and
every run started by hand is audited.

The caller holds the candidate's row lock (``with_for_update``) and commits."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import CandidateStatus, Encounter, EnrollmentCandidate, Pathway, Patient, utcnow
from core.validation import Line, SaneDateTime
from pathways.definition import PathwaySnapshot
from services import audit
from services.enrolment import EnrolmentContext, StartedRun, start_run
from services.hospitals import hospital_profile
from services.pathway_definitions import DefinitionConflict, ensure_enrolling, published_snapshot
from services.scope import record_filter
from services.staff import StaffPrincipal

Refusal = Literal["decided", "not_enrolling", "consent_required", "patient_excluded"]
NOTE_LIMIT = 300


class Consent(BaseModel):
    """An electronic signature's reference or an uploaded scan of the signed consent form."""

    method: Literal["e_signature", "scan"]
    reference: Annotated[Line, Field(min_length=1, max_length=200)]
    signed_at: SaneDateTime


class CandidateRefused(Exception):
    """The decision cannot be made; ``code`` says why, ``detail`` says it in words."""

    def __init__(self, code: Refusal, detail: str) -> None:
        super().__init__(detail)
        self.code: Refusal = code
        self.detail = detail


async def list_candidates(
    session: AsyncSession,
    staff: StaffPrincipal,
    *,
    status: str,
    pathway_id: str | None = None,
    limit: int | None = None,
) -> Sequence[EnrollmentCandidate]:
    """Patients waiting for (or past) a decision, oldest first, within the caller's scope."""
    query: Any = select(EnrollmentCandidate).where(EnrollmentCandidate.status == status)
    if pathway_id:
        query = query.where(EnrollmentCandidate.pathway_id == pathway_id)
    query = query.where(
        record_filter(staff, EnrollmentCandidate.patient_id, EnrollmentCandidate.department_code)
    )
    query = query.order_by(col(EnrollmentCandidate.created_at), col(EnrollmentCandidate.id))
    rows = await session.exec(query.limit(limit) if limit else query)
    result: Sequence[EnrollmentCandidate] = rows.all()
    return result


async def candidate_snapshot(
    session: AsyncSession, candidate: EnrollmentCandidate
) -> PathwaySnapshot:
    """The live version of the candidate's pathway: what enrolling would start."""
    pathway = await session.get(Pathway, candidate.pathway_id)
    assert pathway is not None
    try:
        ensure_enrolling(pathway)
        if pathway.live_version is None:
            raise DefinitionConflict(f"pathway '{pathway.id}' has no published version")
        return await published_snapshot(session, pathway.id, pathway.live_version)
    except DefinitionConflict as exc:
        raise CandidateRefused("not_enrolling", str(exc)) from exc


def _pending(candidate: EnrollmentCandidate) -> None:
    if candidate.status != CandidateStatus.PENDING:
        raise CandidateRefused("decided", f"candidate is {candidate.status}")


async def start_by_staff(
    ctx: EnrolmentContext,
    session: AsyncSession,
    staff: StaffPrincipal,
    snapshot: PathwaySnapshot,
    patient: Patient,
    *,
    anchor_at: datetime,
    anchor_ref: str,
    anchor_event: str,
    department_code: str,
    encounter: Encounter | None = None,
) -> StartedRun:
    if patient.excluded:
        raise CandidateRefused("patient_excluded", "the patient is excluded from management")
    profile = await hospital_profile(session, ctx.settings, ctx.settings.default_hospital_code)
    started = await start_run(
        ctx,
        profile,
        snapshot,
        patient,
        encounter=encounter,
        anchor_at=anchor_at,
        anchor_event=anchor_event,
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


async def enrol(
    ctx: EnrolmentContext,
    session: AsyncSession,
    staff: StaffPrincipal,
    candidate: EnrollmentCandidate,
    *,
    consent: Consent | None,
    start_at: datetime | None,
    note: str | None,
) -> StartedRun:
    """Starts the candidate's run from ``start_at`` (default now) and records the decision."""
    _pending(candidate)
    snapshot = await candidate_snapshot(session, candidate)
    if snapshot.definition.enrollment.requires_consent and consent is None:
        raise CandidateRefused(
            "consent_required", "this pathway needs the patient's informed consent"
        )
    patient = await session.get(Patient, candidate.patient_id)
    assert patient is not None
    start_at = start_at or utcnow()
    encounter = await session.get(Encounter, candidate.encounter_id or "")
    started = await start_by_staff(
        ctx,
        session,
        staff,
        snapshot,
        patient,
        anchor_at=start_at,
        # From the candidate alone: enrolling again after a lost answer finds the same run.
        anchor_ref=f"enrol-{candidate.id[:8]}",
        anchor_event="enrollment",
        department_code=candidate.department_code,
        encounter=encounter,
    )
    candidate.status = CandidateStatus.ENROLLED
    candidate.workflow_id = started.workflow_id
    candidate.consent = consent.model_dump(mode="json") if consent else None
    candidate.start_at = start_at
    candidate.decided_by, candidate.decided_at, candidate.note = staff.id, utcnow(), note
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
    return started


def decline(
    session: AsyncSession, staff: StaffPrincipal, candidate: EnrollmentCandidate, note: str
) -> None:
    """The patient will not join (or is not suitable): taken off the list with the reason."""
    _pending(candidate)
    candidate.status = CandidateStatus.DECLINED
    candidate.decided_by, candidate.decided_at, candidate.note = staff.id, utcnow(), note
    audit.record(
        session,
        actor_type="staff",
        actor_id=staff.id,
        action="pathway.enrolment_declined",
        target_type="enrollment_candidate",
        target_id=candidate.id,
        patient_id=candidate.patient_id,
    )
