"""Alerts for staff (FU-9): raising one for a process without a care task to hang it on (an exam,
a home-nursing order), once per kind whatever the retries; and what staff do with an alert:
acknowledge it (someone has it in hand), then resolve it with a note of what was done. Both
are audited; the caller commits."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import Alert, AlertStatus, utcnow
from services import audit
from services.staff import StaffPrincipal


class AlertClosed(Exception):
    """The alert was already resolved (by someone else, from a page left open)."""


async def raise_once(
    session: AsyncSession,
    *,
    workflow_id: str,
    kind: str,
    patient_id: str,
    department_code: str,
    role: str,
    level: str,
    summary: str,
) -> bool:
    """Adds the alert unless the process already raised one of this kind; whether it did."""
    kind = kind[:32]
    existing = await session.exec(
        select(Alert).where(Alert.workflow_id == workflow_id, Alert.kind == kind)
    )
    if existing.first() is not None:
        return False
    session.add(
        Alert(
            kind=kind,
            task_id=None,
            workflow_id=workflow_id,
            patient_id=patient_id,
            department_code=department_code,
            role=role,
            level=level,
            summary=summary[:500],
            details=[],
            status=AlertStatus.OPEN,
            raised_at=utcnow(),
        )
    )
    return True


def acknowledge(
    session: AsyncSession, staff: StaffPrincipal, alert: Alert, note: str | None, now: datetime
) -> bool:
    """Marks an open alert as in hand; whether it changed (acknowledging twice is harmless)."""
    if alert.status != AlertStatus.OPEN:
        return False
    alert.status = AlertStatus.ACKNOWLEDGED
    alert.acknowledged_at = now
    alert.acknowledged_by = staff.id
    alert.acknowledge_note = note
    audit.record(
        session,
        actor_type="staff",
        actor_id=staff.id,
        action="alert.acknowledged",
        target_type="alert",
        target_id=alert.id,
        patient_id=alert.patient_id,
        note=note,
    )
    return True


def resolve(
    session: AsyncSession, staff: StaffPrincipal, alert: Alert, note: str, now: datetime
) -> None:
    """Closes the alert with what was done; AlertClosed if it already was."""
    if alert.status == AlertStatus.RESOLVED:
        raise AlertClosed(alert.id)
    if alert.acknowledged_at is None:
        alert.acknowledged_at = now
        alert.acknowledged_by = staff.id
    alert.status = AlertStatus.RESOLVED
    alert.resolved_at = now
    alert.resolved_by = staff.id
    alert.resolution_note = note
    audit.record(
        session,
        actor_type="staff",
        actor_id=staff.id,
        action="alert.resolved",
        target_type="alert",
        target_id=alert.id,
        patient_id=alert.patient_id,
        note=note,
    )
