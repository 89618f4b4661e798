"""Complaints and praise (SAT-3): opening a case (its row and its workflow, together), the
steps staff and the patient take on it (workflow updates), the work queue in the caller's data
scope, and the statistics by category, department and time to close."""

from __future__ import annotations

import statistics
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy

from complaints.lifecycle import Category, Kind, Source
from contracts.complaint import (
    COMPLAINT_WORKFLOW,
    ComplaintInput,
    ComplaintState,
    complaint_workflow_id,
)
from core.models import Complaint
from core.settings import Settings
from services.hospitals import hospital_profile
from services.scope import record_filter
from services.search_attributes import for_patient
from services.staff import StaffPrincipal
from services.updates import run_update

# Opening twice with one key (a retried request) finds the first case.
_KEYS = uuid.UUID("6c8f9a52-7d0e-4b61-9f0a-3c2d1e5b7a90")


@dataclass(frozen=True)
class NewComplaint:
    patient_id: str
    kind: Kind
    source: Source
    category: Category
    summary: str
    department_code: str
    hospital_code: str
    task_id: str | None
    idempotency_key: str


def case_number(opened_at: datetime, complaint_id: str, settings: Settings) -> str:
    day = opened_at.astimezone(settings.tz).strftime("%Y%m%d")
    return f"TS{day}-{complaint_id.replace('-', '')[:6].upper()}"


async def record_case(
    session: AsyncSession, settings: Settings, case: NewComplaint, opened_by: str, now: datetime
) -> tuple[Complaint, ComplaintInput, bool]:
    """The case's row (added, not committed, when new), its workflow's input, and whether it is
    new. The same key from the same opener finds the case it opened, with the same input."""
    complaint_id = str(uuid.uuid5(_KEYS, f"{opened_by}\n{case.idempotency_key}"))
    row = await session.get(Complaint, complaint_id)
    created = row is None
    if row is None:
        row = Complaint(
            id=complaint_id,
            case_no=case_number(now, complaint_id, settings),
            workflow_id=complaint_workflow_id(complaint_id),
            kind=case.kind,
            source=case.source,
            category=case.category,
            patient_id=case.patient_id,
            task_id=case.task_id,
            hospital_code=case.hospital_code,
            department_code=case.department_code,
            summary=case.summary,
            opened_by=opened_by,
            opened_at=now,
        )
        session.add(row)
        await session.flush()
    profile = await hospital_profile(session, settings, case.hospital_code)
    return (
        row,
        ComplaintInput(
            complaint_id=row.id,
            case_no=row.case_no,
            kind=case.kind,
            source=case.source,
            category=case.category,
            patient_id=case.patient_id,
            department_code=case.department_code,
            hospital_code=case.hospital_code,
            timezone=str(profile.tz),
            policy=profile.config.complaints,
            opened_by=opened_by,
            opened_at=row.opened_at,
            task_id=case.task_id,
        ),
        created,
    )


async def open_complaint(
    session: AsyncSession,
    temporal: Client,
    settings: Settings,
    case: NewComplaint,
    opened_by: str,
    now: datetime,
) -> tuple[Complaint, bool]:
    """The case and whether it is new: its row, and its workflow started before the row is
    committed (a start that fails writes nothing; the workflow's first write waits for the
    row). ``opened_by``: a staff id, or PATIENT for the patient's own."""
    row, start, created = await record_case(session, settings, case, opened_by, now)
    if created:
        await temporal.start_workflow(
            COMPLAINT_WORKFLOW,
            start,
            id=row.workflow_id,
            task_queue=settings.temporal_task_queue,
            search_attributes=await for_patient(
                session,
                start.patient_id,
                department=start.department_code,
                hospital=start.hospital_code,
            ),
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )
    return row, created


async def take_step(
    session: AsyncSession, temporal: Client, row: Complaint, update: str, argument: BaseModel
) -> ComplaintState:
    """One update on the case's workflow; UpdateConflict with its reason when it does not
    apply, or when the case has ended."""
    return await run_update(
        session, temporal, row.workflow_id, update, argument, ComplaintState, ended="该案件已结案"
    )


async def list_complaints(
    session: AsyncSession,
    staff: StaffPrincipal,
    *,
    statuses: Sequence[str],
    escalation: str | None,
    category: str | None,
    limit: int,
    offset: int,
) -> tuple[Sequence[Complaint], int]:
    """The caller's queue, in scope: oldest open first (the ones closest to a deadline)."""
    query = select(Complaint).where(
        record_filter(staff, Complaint.patient_id, Complaint.department_code)
    )
    if statuses:
        query = query.where(col(Complaint.status).in_(statuses))
    if escalation is not None:
        query = query.where(Complaint.escalation == escalation)
    if category is not None:
        query = query.where(Complaint.category == category)
    total = (await session.exec(select(func.count()).select_from(query.subquery()))).one()
    rows = await session.exec(
        query.order_by(col(Complaint.opened_at), col(Complaint.id)).limit(limit).offset(offset)
    )
    return rows.all(), int(total)


def _hours(rows: Sequence[Complaint]) -> dict[str, Any]:
    spans = [
        (r.closed_at - r.opened_at).total_seconds() / 3600 for r in rows if r.closed_at is not None
    ]
    return {
        "closed": len(spans),
        "median_hours_to_close": round(statistics.median(spans), 1) if spans else None,
        "mean_hours_to_close": round(statistics.fmean(spans), 1) if spans else None,
    }


async def complaint_statistics(
    session: AsyncSession, staff: StaffPrincipal, *, opened_from: datetime, opened_to: datetime
) -> dict[str, Any]:
    """Cases opened in [from, to) in the caller's scope: counts by kind, status, category and
    department, escalations, time to close and the patients' ratings."""
    rows = (
        await session.exec(
            select(Complaint).where(
                record_filter(staff, Complaint.patient_id, Complaint.department_code),
                Complaint.opened_at >= opened_from,
                Complaint.opened_at < opened_to,
            )
        )
    ).all()
    ratings = [r.rating_stars for r in rows if r.rating_stars is not None]

    def grouped(key: str) -> list[dict[str, Any]]:
        groups: dict[str, list[Complaint]] = {}
        for row in rows:
            groups.setdefault(getattr(row, key), []).append(row)
        return [
            {key: name, "count": len(members), **_hours(members)}
            for name, members in sorted(groups.items())
        ]

    return {
        "total": len(rows),
        "by_kind": dict(Counter(r.kind for r in rows)),
        "by_status": dict(Counter(r.status for r in rows)),
        "by_category": grouped("category"),
        "by_department": grouped("department_code"),
        "escalated": dict(Counter(r.escalation for r in rows if r.escalation != "department")),
        **_hours(rows),
        "rated": len(ratings),
        "mean_rating": round(statistics.fmean(ratings), 2) if ratings else None,
    }
