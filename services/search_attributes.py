"""The Temporal search attributes of a workflow about a patient known by our internal id."""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.common import TypedSearchAttributes

from contracts.search import search_attributes
from core.models import Patient


async def for_patient(
    session: AsyncSession,
    patient_id: str | None,
    *,
    department: str | None = None,
    hospital: str | None = None,
    order_no: str | None = None,
) -> TypedSearchAttributes:
    """PatientId is the patient's HIS number (contracts.search), looked up from our id."""
    patient = await session.get(Patient, patient_id) if patient_id else None
    return search_attributes(
        patient=patient.his_patient_id if patient else None,
        department=department,
        hospital=hospital,
        order_no=order_no,
    )
