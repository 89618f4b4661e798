"""One patient's record for staff (SEC-2): masked demographics, encounters, runs and open
alerts. Every read is audited ("patient.viewed": who looked at whom), and so is every reveal of
a masked field ("patient.revealed"), which answers the full value."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, status
from pydantic import BaseModel, Field

from api.deps import SessionDep, ensure_visible, require_role
from core.models import Patient, StaffRole
from services import audit
from services.patient_records import (
    RevealableField,
    latest_department,
    patient_record,
    revealed,
)
from services.patients import seen_by_department
from services.staff import StaffPrincipal

router = APIRouter(prefix="/api/patients", tags=["patients"])

ReaderDep = Annotated[
    StaffPrincipal,
    Depends(
        require_role(StaffRole.NURSE, StaffRole.DOCTOR, StaffRole.CARE_MANAGER, StaffRole.ADMIN)
    ),
]


class Demographics(BaseModel):
    id: str
    his_patient_id: str
    name_masked: str
    phone_masked: str
    sex: str | None
    birth_date: date | None
    excluded: bool


class EncounterOut(BaseModel):
    id: str
    his_encounter_id: str
    kind: str
    department_code: str
    department_name: str
    ward: str | None
    admitted_at: datetime | None
    discharged_at: datetime | None
    diagnoses: list[dict[str, str]]


class RunBrief(BaseModel):
    workflow_id: str
    plan_id: str
    plan_version: int
    status: str
    paused: bool
    department_code: str
    started_at: datetime
    finished_at: datetime | None


class OpenAlert(BaseModel):
    id: str
    kind: str
    level: str
    role: str
    summary: str
    task_id: str
    workflow_id: str
    department_code: str
    raised_at: datetime


class PatientRecordOut(BaseModel):
    patient: Demographics
    encounters: list[EncounterOut]
    runs: list[RunBrief]
    open_alerts: list[OpenAlert]


class RevealIn(BaseModel):
    field: RevealableField
    reason: str | None = Field(default=None, max_length=300)


class RevealOut(BaseModel):
    patient_id: str
    field: RevealableField
    value: str


async def _visible_patient(session: SessionDep, staff: StaffPrincipal, patient_id: str) -> Patient:
    """The patient, if the caller's department has seen them; unknown and hidden look alike."""
    patient = await session.get(Patient, patient_id)
    if patient is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "not found")
    seen = staff.department_code is not None and await seen_by_department(
        session, patient.id, staff.department_code
    )
    home = await latest_department(session, patient.id)
    ensure_visible(staff, staff.department_code if seen and staff.department_code else home)
    return patient


@router.get("/{patient_id}", response_model=PatientRecordOut)
async def get_patient(patient_id: str, session: SessionDep, staff: ReaderDep) -> PatientRecordOut:
    """The patient's record with name and phone masked; the read is audited."""
    patient = await _visible_patient(session, staff, patient_id)
    found = await patient_record(session, patient)
    out = PatientRecordOut(
        patient=Demographics(
            id=patient.id,
            his_patient_id=patient.his_patient_id,
            name_masked=found.name_masked,
            phone_masked=found.phone_masked,
            sex=patient.sex,
            birth_date=patient.birth_date,
            excluded=patient.excluded,
        ),
        encounters=[EncounterOut.model_validate(e.model_dump()) for e in found.encounters],
        runs=[RunBrief.model_validate(r.model_dump()) for r in found.runs],
        open_alerts=[OpenAlert.model_validate(a.model_dump()) for a in found.open_alerts],
    )
    audit.record(
        session,
        actor_type="staff",
        actor_id=staff.id,
        action="patient.viewed",
        target_type="patient",
        target_id=patient.id,
        role=staff.role,
    )
    await session.commit()
    return out


@router.post("/{patient_id}/reveal", response_model=RevealOut)
async def reveal(
    patient_id: str, body: RevealIn, session: SessionDep, staff: ReaderDep
) -> RevealOut:
    """The full value of one masked field (name or phone); every reveal is audited."""
    patient = await _visible_patient(session, staff, patient_id)
    value = revealed(patient, body.field)
    audit.record(
        session,
        actor_type="staff",
        actor_id=staff.id,
        action="patient.revealed",
        target_type="patient",
        target_id=patient.id,
        field=body.field,
        reason=body.reason,
        role=staff.role,
    )
    await session.commit()
    return RevealOut(patient_id=patient.id, field=body.field, value=value)
