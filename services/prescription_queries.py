"""Read models for pharmacists and managers: the review queue (RX-8), search, and statistics by
hospital, department, doctor or day (S2 10.1–10.2), each a single query on the projection."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import local_day, plan_for_each_call
from core.hospitals import RX_STATUS_GROUPS
from core.models import Patient, Prescription, PrescriptionEvent
from services.scope import record_filter
from services.staff import StaffPrincipal

GroupBy = Literal["hospital", "department", "doctor", "day"]


def _scoped(query: Any, staff: StaffPrincipal) -> Any:
    return query.where(record_filter(staff, Prescription.patient_id, Prescription.department_code))


async def review_queue(
    session: AsyncSession, staff: StaffPrincipal, *, hospital_code: str | None, limit: int
) -> Sequence[tuple[Prescription, Patient]]:
    """Prescriptions waiting for a pharmacist, the one whose deadline comes first at the top."""
    query: Any = (
        select(Prescription, Patient)
        .join(Patient, col(Patient.id) == Prescription.patient_id)
        .where(Prescription.status == "reviewing")
        .order_by(col(Prescription.review_deadline_at), col(Prescription.id))
        .limit(limit)
    )
    if hospital_code:
        query = query.where(Prescription.hospital_code == hospital_code)
    rows: Sequence[tuple[Prescription, Patient]] = (await session.exec(_scoped(query, staff))).all()
    return rows


async def prescription_events(
    session: AsyncSession, prescription_id: str
) -> Sequence[PrescriptionEvent]:
    """A prescription's events in the order they happened."""
    events = await session.exec(
        select(PrescriptionEvent)
        .where(PrescriptionEvent.prescription_id == prescription_id)
        .order_by(col(PrescriptionEvent.seq))
    )
    return events.all()


async def search(
    session: AsyncSession,
    staff: StaffPrincipal,
    *,
    status: str | None,
    hospital_code: str | None,
    department_code: str | None,
    doctor_id: str | None,
    submitted_from: datetime | None,
    submitted_to: datetime | None,
    limit: int,
    offset: int,
) -> tuple[Sequence[tuple[Prescription, Patient]], int]:
    query: Any = select(Prescription, Patient).join(
        Patient, col(Patient.id) == Prescription.patient_id
    )
    if status:
        query = query.where(col(Prescription.status).in_(RX_STATUS_GROUPS.get(status, (status,))))
    for column, value in (
        (Prescription.hospital_code, hospital_code),
        (Prescription.department_code, department_code),
        (Prescription.doctor_id, doctor_id),
    ):
        if value:
            query = query.where(column == value)
    if submitted_from:
        query = query.where(Prescription.submitted_at >= submitted_from)
    if submitted_to:
        query = query.where(Prescription.submitted_at < submitted_to)
    query = _scoped(query, staff)
    total = (await session.exec(select(sa.func.count()).select_from(query.subquery()))).one()
    rows = await session.exec(
        query.order_by(col(Prescription.submitted_at).desc(), col(Prescription.id))
        .limit(limit)
        .offset(offset)
    )
    return rows.all(), int(total)


async def statistics(
    session: AsyncSession,
    staff: StaffPrincipal,
    *,
    group_by: GroupBy,
    submitted_from: datetime | None,
    submitted_to: datetime | None,
    tz: ZoneInfo,
) -> list[dict[str, Any]]:
    dialect = session.get_bind().dialect.name
    key = {
        "hospital": Prescription.hospital_code,
        "department": Prescription.department_code,
        "doctor": Prescription.doctor_id,
        "day": local_day(Prescription.submitted_at, tz, dialect),
    }[group_by]

    def count_if(condition: Any) -> Any:
        return sa.func.sum(sa.case((condition, 1), else_=0))

    review_seconds = (
        sa.func.extract("epoch", col(Prescription.reviewed_at) - col(Prescription.round_started_at))
        if dialect == "postgresql"
        else (
            sa.func.julianday(Prescription.reviewed_at)
            - sa.func.julianday(Prescription.round_started_at)
        )
        * 86400
    )
    concluded = col(Prescription.reviewed_at).is_not(None)
    # sqlalchemy's select: sqlmodel's typed one takes at most four columns.
    query: Any = sa.select(
        key.label("key"),
        sa.func.count().label("submitted"),
        count_if(col(Prescription.status) == "reviewing").label("reviewing"),
        count_if(
            concluded
            & (col(Prescription.review_outcome) == "approved")
            & (col(Prescription.reviewed_by) != "system")
        ).label("approved_by_pharmacist"),
        count_if(
            concluded
            & (col(Prescription.review_outcome) == "approved")
            & (col(Prescription.reviewed_by) == "system")
        ).label("approved_by_system"),
        count_if(col(Prescription.status) == "returned").label("returned"),
        count_if(col(Prescription.status) == "cancelled").label("cancelled"),
        count_if(col(Prescription.review_timed_out)).label("review_timed_out"),
        count_if(col(Prescription.paid_at).is_not(None)).label("paid"),
        count_if(col(Prescription.status).in_(RX_STATUS_GROUPS["completed"])).label("completed"),
        count_if(col(Prescription.status) == "refunded").label("refunded"),
        sa.func.avg(sa.case((concluded, review_seconds), else_=None)).label("avg_review_seconds"),
    )
    if submitted_from:
        query = query.where(Prescription.submitted_at >= submitted_from)
    if submitted_to:
        query = query.where(Prescription.submitted_at < submitted_to)
    query = _scoped(query, staff).group_by(key).order_by(key)
    await plan_for_each_call(session)
    rows = (await session.exec(query)).all()
    return [
        {
            **row._asdict(),
            "avg_review_seconds": round(float(row.avg_review_seconds), 1)
            if row.avg_review_seconds is not None
            else None,
        }
        for row in rows
    ]
