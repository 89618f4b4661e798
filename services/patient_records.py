"""One patient's record for staff (SEC-2): masked demographics, encounters, runs and open
alerts. Reading it, and revealing a masked field, are audited by the router."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import Alert, AlertStatus, Encounter, PathwayRun, Patient
from services.disclosure import Identifier


@dataclass(frozen=True)
class PatientRecord:
    patient: Patient
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
        encounters=list(encounters.all()),
        runs=list(runs.all()),
        open_alerts=list(alerts.all()),
    )


def identifier_value(patient: Patient, identifier: Identifier) -> str:
    """The unmasked value of one identifier ("" when the HIS gave none)."""
    value: str | None = getattr(patient, identifier.value)
    return value or ""
