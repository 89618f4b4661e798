"""Patient master data: fetched from the HIS query interface (HIS-2) and kept in our database.

Fresh data from the HIS when it answers; our stored copy when it is down and we know the patient.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.crypto import blind_index
from core.db import insert_if_absent
from core.models import Patient, new_id, utcnow
from core.phones import normalise_cn_mobile
from integrations.his import HisClient, HisPatient, HisUnavailable


class UnknownPatient(Exception):
    def __init__(self, his_patient_id: str) -> None:
        super().__init__(f"the HIS has no patient with id '{his_patient_id}'")


async def fetch_patient(
    session: AsyncSession, his: HisClient, his_patient_id: str
) -> HisPatient | Patient:
    """Fresh master data from the HIS, or our stored copy if the HIS is down and we know them."""
    try:
        fetched = await his.get_patient(his_patient_id)
    except HisUnavailable:
        known = await patient_by_his_id(session, his_patient_id)
        if known is None:
            raise
        return known
    if fetched is None:
        raise UnknownPatient(his_patient_id)
    return fetched


async def known_or_fetched(session: AsyncSession, his: HisClient, his_patient_id: str) -> Patient:
    """Our copy of the patient, or, the first time we hear of them, the HIS's (HIS-2), stored.
    Raises UnknownPatient if the HIS does not know them, HisUnavailable if it does not answer."""
    known = await patient_by_his_id(session, his_patient_id)
    if known is not None:
        return known
    return await upsert_patient(session, await fetch_patient(session, his, his_patient_id))


async def patient_by_his_id(session: AsyncSession, his_patient_id: str) -> Patient | None:
    result = await session.exec(select(Patient).where(Patient.his_patient_id == his_patient_id))
    return result.first()


async def patients_by_phone(session: AsyncSession, phone: str) -> Sequence[Patient]:
    """The patients with this number, in any spelling ('+86 138-0013-8001'): an exact match
    on the blind index, since the numbers themselves are stored encrypted (SEC-4)."""
    index = blind_index("phone", phone)
    if index is None:
        return []
    found = await session.exec(select(Patient).where(Patient.phone_index == index))
    return found.all()


async def patient_by_id_number(session: AsyncSession, id_number: str) -> Patient | None:
    """The patient with this ID-card number (身份证号), through its blind index."""
    index = blind_index("id_number", id_number)
    if index is None:
        return None
    found = await session.exec(select(Patient).where(Patient.id_number_index == index))
    return found.first()


async def patient_ids_by_his_id(
    session: AsyncSession, his_patient_ids: Sequence[str]
) -> dict[str, str]:
    """Our ids of the patients we know among these HIS ids, keyed by HIS id."""
    found = await session.exec(
        select(Patient.his_patient_id, Patient.id).where(
            col(Patient.his_patient_id).in_(his_patient_ids)
        )
    )
    return dict(found.all())


async def upsert_patient(session: AsyncSession, source: HisPatient | Patient) -> Patient:
    if isinstance(source, Patient):
        return source
    patient = await patient_by_his_id(session, source.patient_id)
    if patient is None:
        # Another event for the same patient may be creating the row right now.
        await insert_if_absent(
            session,
            Patient.__table__,  # type: ignore[attr-defined]
            {
                "id": new_id(),
                "his_patient_id": source.patient_id,
                "name": source.name,
                "phone": "",
                "excluded": False,
                "created_at": utcnow(),
                "updated_at": utcnow(),
            },
            unique_on=["his_patient_id"],
        )
        patient = await patient_by_his_id(session, source.patient_id)
        assert patient is not None
    patient.name = source.name
    # Keep the number as the HIS gave it if it does not parse; the send step reports it.
    patient.phone = normalise_cn_mobile(source.phone) or (source.phone or "")
    patient.id_number = source.id_number
    patient.address = source.address
    patient.sex = source.sex
    patient.birth_date = source.birth_date
    # Written only when the HIS changed something: a write locks the row until the caller
    # commits, and an event's caller starts runs in Temporal before it does, so every other
    # event for the patient would queue behind it (issue 15 goal 2).
    if session.is_modified(patient):
        patient.updated_at = utcnow()
        await session.flush()
    return patient
