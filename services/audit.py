"""Audit trail (SEC-2): who did what to which record, written in the caller's transaction.

``record`` only adds the entry; when the session flushes, core.audit_chain numbers it and
chains it (HMAC-SM3) to the entry before, under a lock that keeps one chain. Detail holds ids
and codes, never a patient's name, phone or ID number.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.audit_chain import ChainWalker, Verification
from core.models import AuditEntry


def record(
    session: AsyncSession,
    *,
    actor_type: str,
    actor_id: str | None,
    action: str,
    target_type: str,
    target_id: str,
    patient_id: str | None = None,
    **detail: Any,
) -> AuditEntry:
    """Adds an entry to the caller's transaction. ``patient_id`` (our id) names the patient the
    record concerns, for searches; a target that is a patient names itself."""
    if patient_id is None and target_type == "patient":
        patient_id = target_id
    entry = AuditEntry(
        actor_type=actor_type,
        actor_id=actor_id,
        action=action,
        target_type=target_type,
        target_id=target_id,
        patient_id=patient_id,
        detail=detail,
    )
    session.add(entry)
    return entry


async def trail(session: AsyncSession, target_id: str) -> Sequence[AuditEntry]:
    """Every entry about one record, oldest first."""
    rows = await session.exec(
        select(AuditEntry)
        .where(AuditEntry.target_id == target_id)
        .order_by(col(AuditEntry.at), col(AuditEntry.seq))
    )
    return rows.all()


@dataclass(frozen=True)
class AuditFilter:
    actor_id: str | None = None
    patient_id: str | None = None
    action: str | None = None
    target_type: str | None = None
    target_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


async def search(
    session: AsyncSession, where: AuditFilter, *, limit: int, before_seq: int | None = None
) -> tuple[list[AuditEntry], int | None]:
    """Newest first, ``limit`` at a time; keyset pagination on ``seq``. Returns the page and
    the seq to continue before (None on the last page)."""
    query = select(AuditEntry)
    for name in ("actor_id", "patient_id", "action", "target_type", "target_id"):
        value = getattr(where, name)
        if value is not None:
            query = query.where(getattr(AuditEntry, name) == value)
    if where.since is not None:
        query = query.where(col(AuditEntry.at) >= where.since)
    if where.until is not None:
        query = query.where(col(AuditEntry.at) < where.until)
    if before_seq is not None:
        query = query.where(col(AuditEntry.seq) < before_seq)
    rows = list(
        (await session.exec(query.order_by(col(AuditEntry.seq).desc()).limit(limit + 1))).all()
    )
    more = len(rows) > limit
    page = rows[:limit]
    return page, (page[-1].seq if more and page else None)


async def verify_chain(session: AsyncSession, key: str | bytes) -> Verification:
    """Checks the whole chain, streamed in ``seq`` order (see core.audit_chain.ChainWalker)."""
    table = AuditEntry.__table__  # type: ignore[attr-defined]
    walker = ChainWalker(key)
    stream = await session.stream(
        sa.select(*table.columns).order_by(table.c.seq).execution_options(yield_per=2000)
    )
    async for row in stream:
        walker.feed(row)
    result = walker.finish()
    for found in result.breaks:
        if found.follows_mac:
            where = await session.execute(
                sa.select(table.c.seq).where(table.c.mac == found.follows_mac)
            )
            found.follows(where.scalar())
    return result
