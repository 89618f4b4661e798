"""Rows and times shared by tests (staff, workers and polling are in ``harness``)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from core.db import SessionFactory, transaction
from core.models import Encounter, Patient

BEIJING = ZoneInfo("Asia/Shanghai")


def daytime(moment: datetime, hour: int = 10) -> datetime:
    """The latest ``hour`` o'clock Beijing time at or before ``moment``: an anchor whose day-N
    steps fall outside quiet hours, whatever time of day the test runs."""
    local = moment.astimezone(BEIJING)
    anchor = local.replace(hour=hour, minute=0, second=0, microsecond=0)
    if anchor > local:
        anchor -= timedelta(days=1)
    return anchor.astimezone(UTC)


async def add_patient(
    sessions: SessionFactory,
    *,
    name: str = "张建国",
    phone: str = "13800138001",
    department_code: str = "cardiology",
    discharged_at: datetime | None = None,
) -> tuple[Patient, Encounter]:
    suffix = uuid.uuid4().hex[:8]
    async with transaction(sessions) as session:
        patient = Patient(his_patient_id=f"P{suffix}", name=name, phone=phone, sex="M")
        session.add(patient)
        await session.flush()
        encounter = Encounter(
            his_encounter_id=f"E{suffix}",
            patient_id=patient.id,
            kind="inpatient",
            department_code=department_code,
            department_name="心内科",
            discharged_at=discharged_at or datetime.now(UTC),
        )
        session.add(encounter)
    return patient, encounter
