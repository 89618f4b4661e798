"""One patient's record for staff (SEC-2): masked demographics, encounters, runs and open
alerts. Every read is audited ("patient.viewed": who looked at whom), and so is every reveal of
a masked field ("patient.revealed"), which answers the full value."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Response, status
from pydantic import BaseModel, Field

from api.deps import ContainerDep, SessionDep
from api.permissions import Permission, ensure_patient_visible, require
from core.charts import ChartPoint, line_chart
from core.models import Patient
from core.validation import Key, Text
from services import audit
from services.disclosure import Identifier, may_reveal, shown
from services.patient_records import identifier_value, patient_record
from services.staff import StaffPrincipal
from services.trends import Trend, patient_trends

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


class TrendPointOut(BaseModel):
    at: datetime
    value: float
    abnormal: bool
    task_id: str
    form_id: str


class TrendOut(BaseModel):
    """One measure over time: a number or rating question, or a score."""

    name: str
    label: str
    unit: str | None
    limits: list[tuple[float, str]] = Field(description="reference lines: (value, label)")
    points: list[TrendPointOut]


async def _trends(session: SessionDep, staff: StaffPrincipal, patient_id: str) -> list[Trend]:
    patient = await _visible_patient(session, staff, patient_id)
    trends = await patient_trends(session, patient.id)
    audit.record(
        session,
        actor_type="staff",
        actor_id=staff.id,
        action="patient.trends_viewed",
        target_type="patient",
        target_id=patient.id,
        role=staff.role,
    )
    await session.commit()
    return trends


@router.get("/{patient_id}/trends", response_model=list[TrendOut])
async def trends(patient_id: Key, session: SessionDep, staff: ReaderDep) -> list[TrendOut]:
    """Every number the patient has given over time (FORM-4): answers to number and rating
    questions and form scores, across their pathways, oldest first."""
    return [
        TrendOut(
            name=t.measure.name,
            label=t.measure.label,
            unit=t.measure.unit,
            limits=t.measure.limits,
            points=[TrendPointOut.model_validate(p, from_attributes=True) for p in t.points],
        )
        for t in await _trends(session, staff, patient_id)
    ]


@router.get(
    "/{patient_id}/trends/{name}/chart",
    response_class=Response,
    responses={200: {"content": {"image/svg+xml": {}}, "description": "an SVG line chart"}},
)
async def trend_chart(
    patient_id: Key, name: Key, container: ContainerDep, session: SessionDep, staff: ReaderDep
) -> Response:
    """One measure over time as an SVG chart, abnormal values and thresholds in red."""
    found = next(
        (t for t in await _trends(session, staff, patient_id) if t.measure.name == name), None
    )
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"the patient has no values for '{name}'")
    svg = line_chart(
        found.measure.label,
        [ChartPoint(p.at, p.value, p.abnormal) for p in found.points],
        tz=container.settings.tz,
        unit=found.measure.unit,
        limits=found.measure.limits,
    )
    return Response(svg, media_type="image/svg+xml", headers={"Cache-Control": "no-store"})
