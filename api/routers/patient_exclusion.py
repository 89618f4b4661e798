"""FU-10: staff exclude a patient from management. Every running pathway of theirs ends (each
through the workflow's end update, with an audit entry), and no new one starts."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel

from api.deps import ContainerDep, SessionDep
from api.permissions import ensure_patient_visible
from api.routers.run_operations import ClinicalDep, Reason, update_run
from contracts.pathway import UPDATE_END, End
from contracts.runs import RunProgress
from core.models import Patient
from core.validation import Key
from services import audit
from services.enrolment import running_runs

router = APIRouter(tags=["pathway runs"])


class ExclusionIn(Reason):
    pass


class ExclusionOut(BaseModel):
    patient_id: str
    ended_runs: list[str]


@router.post("/api/patients/{patient_id}/exclusion", response_model=ExclusionOut)
async def exclude(
    patient_id: Key,
    body: ExclusionIn,
    container: ContainerDep,
    session: SessionDep,
    staff: ClinicalDep,
) -> ExclusionOut:
    """FU-10: a patient tagged as excluded has every running pathway ended, and no new one."""
    patient = await session.get(Patient, patient_id, with_for_update=True)
    if patient is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no patient '{patient_id}'")
    await ensure_patient_visible(session, staff, patient.id)
    patient.excluded = True
    audit.record(
        session,
        actor_type="staff",
        actor_id=staff.id,
        action="patient.excluded",
        target_type="patient",
        target_id=patient.id,
        reason=body.reason,
    )
    await session.commit()
    ended = []
    for run in await running_runs(session, patient.id):
        change = End(reason=f"患者已排除：{body.reason}", actor=staff.id)
        try:
            await update_run(container, run.workflow_id, UPDATE_END, change, RunProgress)
        except HTTPException:
            continue  # already ended or finished meanwhile
        ended.append(run.workflow_id)
    return ExclusionOut(patient_id=patient.id, ended_runs=ended)
