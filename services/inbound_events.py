"""Inbound events (webhooks from the HIS, the service enterprises, the payment provider) are
recorded by (source, event id) so that a redelivery is recognised and acted on only once."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import InboundEvent


async def find_event(session: AsyncSession, source: str, event_id: str) -> InboundEvent | None:
    found = await session.exec(
        select(InboundEvent).where(InboundEvent.source == source, InboundEvent.event_id == event_id)
    )
    return found.first()


async def record_event(
    session: AsyncSession, source: str, event_id: str, event_type: str, body_sha256: str
) -> bool:
    """Records the event; False when a concurrent delivery of it got there first, in which case
    the session is rolled back so that nothing done on behalf of this delivery is kept."""
    session.add(
        InboundEvent(
            source=source, event_id=event_id, event_type=event_type, body_sha256=body_sha256
        )
    )
    try:
        await session.flush()
    except IntegrityError:
        await session.rollback()
        return False
    return True
