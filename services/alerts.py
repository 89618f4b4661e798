"""Alerts a process raises for staff without a care task to hang them on (an exam, a
home-nursing order): once per kind for the process, whatever the retries."""

from __future__ import annotations

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import Alert, AlertStatus, utcnow


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
