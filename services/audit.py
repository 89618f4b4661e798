"""Audit trail (SEC-2): who did what to which record, written in the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import AuditEntry


def record(
    session: AsyncSession,
    *,
    actor_type: str,
    actor_id: str | None,
    action: str,
    target_type: str,
    target_id: str,
    **detail: Any,
) -> AuditEntry:
    entry = AuditEntry(
        actor_type=actor_type,
        actor_id=actor_id,
        action=action,
        target_type=target_type,
        target_id=target_id,
        detail=detail,
    )
    session.add(entry)
    return entry


async def trail(session: AsyncSession, target_id: str) -> Sequence[AuditEntry]:
    """Every entry about one record, oldest first."""
    rows = await session.exec(
        select(AuditEntry).where(AuditEntry.target_id == target_id).order_by(col(AuditEntry.at))
    )
    return rows.all()
