"""One patient's record for staff (SEC-2): masked demographics, encounters, runs and open
alerts. Reading it, and revealing a masked field, are audited by the router."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.logs import mask_name
from core.models import Alert, AlertStatus, Encounter, PathwayRun, Patient
from services.staff_lists import mask_phone

RevealableField = Literal["name", "phone"]


@dataclass(frozen=True)
class PatientRecord:
    patient: Patient
    name_masked: str
    phone_masked: str
    encounters: list[Encounter]  # newest first
    runs: list[PathwayRun]  # newest first
    open_alerts: list[Alert]  # newest first


async def patient_record(session: AsyncSession, patient: Patient) -> PatientRecord:
    encounters = await session.exec(
        select(Encounter)
        .where(Encounter.patient_id == patient.id)
        .order_by(col(Encounter.created_at).desc())
    )
    runs = await session.exec(
        select(PathwayRun)
        .where(PathwayRun.patient_id == patient.id)
        .order_by(col(PathwayRun.started_at).desc())
    )
    alerts = await session.exec(
        select(Alert)
        .where(Alert.patient_id == patient.id, Alert.status == AlertStatus.OPEN)
        .order_by(col(Alert.raised_at).desc())
    )
    return PatientRecord(
        patient=patient,
        name_masked=mask_name(patient.name),
        phone_masked=mask_phone(patient.phone),
        encounters=list(encounters.all()),
        runs=list(runs.all()),
        open_alerts=list(alerts.all()),
    )


async def latest_department(session: AsyncSession, patient_id: str) -> str:
    """The department of the patient's latest encounter ("" if none)."""
    found = await session.exec(
        select(Encounter.department_code)
        .where(Encounter.patient_id == patient_id)
        .order_by(col(Encounter.created_at).desc())
        .limit(1)
    )
    return found.first() or ""


def revealed(patient: Patient, field: RevealableField) -> str:
    """The unmasked value of one field."""
    return patient.name if field == "name" else patient.phone
