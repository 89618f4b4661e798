"""One patient's record for staff (SEC-2): masked demographics, encounters, runs and open
alerts. Every read is audited ("patient.viewed": who looked at whom), and so is every reveal of
a masked field ("patient.revealed"), which answers the full value."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, status
from pydantic import BaseModel, Field

from api.deps import SessionDep
from api.permissions import Permission, ensure_patient_visible, require
from core.models import Patient
from core.validation import Key, Text
from services import audit
from services.disclosure import Identifier, may_reveal, shown
from services.patient_records import identifier_value, patient_record
from services.staff import StaffPrincipal

router = APIRouter(prefix="/api/patients", tags=["patients"])

ReaderDep = Annotated[StaffPrincipal, Depends(require(Permission.PATIENTS_READ))]
RevealerDep = Annotated[StaffPrincipal, Depends(require(Permission.PATIENTS_REVEAL))]


class Demographics(BaseModel):
    id: str
    his_patient_id: str
    # In full or masked as services.disclosure says for the caller's role.
    name: str
    phone: str
    id_number: str
    address: str
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
    field: Identifier
    reason: Text | None = Field(default=None, max_length=300)


class RevealOut(BaseModel):
    patient_id: str
    field: Identifier
    value: str


async def _visible_patient(session: SessionDep, staff: StaffPrincipal, patient_id: str) -> Patient:
    """The patient, if in the caller's data scope; unknown and hidden look alike (404)."""
    patient = await session.get(Patient, patient_id)
    if patient is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "not found")
    await ensure_patient_visible(session, staff, patient.id)
    return patient


@router.get("/{patient_id}", response_model=PatientRecordOut)
async def get_patient(patient_id: Key, session: SessionDep, staff: ReaderDep) -> PatientRecordOut:
    """The patient's record with name and phone masked; the read is audited."""
    patient = await _visible_patient(session, staff, patient_id)
    found = await patient_record(session, patient)
    out = PatientRecordOut(
        patient=Demographics(
            id=patient.id,
            his_patient_id=patient.his_patient_id,
            name=shown(staff.role, Identifier.NAME, patient.name),
            phone=shown(staff.role, Identifier.PHONE, patient.phone),
            id_number=shown(staff.role, Identifier.ID_NUMBER, patient.id_number or ""),
            address=shown(staff.role, Identifier.ADDRESS, patient.address or ""),
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
    patient_id: Key, body: RevealIn, session: SessionDep, staff: RevealerDep
) -> RevealOut:
    """The full value of one masked identifier; every reveal is audited."""
    if not may_reveal(staff.role, body.field):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, f"the role {staff.role} may not reveal {body.field}"
        )
    patient = await _visible_patient(session, staff, patient_id)
    value = identifier_value(patient, body.field)
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
