"""Providers' delivery reports as they arrive (Twilio status callbacks, WeChat send-job events):
each is stored at once, then applied to the send log together with the others that arrived
meanwhile (MSG-3).

A batch makes its provider report as fast as it sends, two Twilio callbacks per SMS, and a
report applied in a transaction of its own (the attempt, the reports and the message locked, read
and written) cost the API more than the send cost the worker. Here a report waits while the group
before it is applied and goes with the next group in one transaction, as a database's group
commit does: a lone report is applied at once, and a burst costs a transaction per group. The
request is answered after its group commits, so the provider's 2xx still means the report is
applied, or stored ahead of our record of the send, which applies it when it commits."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from core.db import SessionFactory, insert_unless_present, transaction
from core.grouped import GroupedCalls
from core.logs import get_logger
from core.models import DeliveryReport, new_id, utcnow
from services.message_status import apply_pending_reports_of

log = get_logger(__name__)

_REPORTS = DeliveryReport.__table__  # type: ignore[attr-defined]

# Sends named in one transaction at most; a burst bigger than this is applied in several.
GROUP_LIMIT = 200


@dataclass(frozen=True)
class ProviderReport:
    channel: str
    provider_message_id: str
    provider_status: str
    error_code: str | None
    at: datetime
    # Blind index of the recipient the provider names (WeChat's FromUserName), when it does.
    recipient_index: str | None = None


class Received(enum.Enum):
    NEW = "new"
    # Received before and never applied: applying it failed after it was stored, and the
    # provider, having had no 2xx, sent it again.
    AGAIN_UNAPPLIED = "again, unapplied"
    AGAIN = "again"


async def store_report(engine: AsyncEngine, report: ProviderReport) -> Received:
    """Stores the report unless the same one (channel, provider id, status) is stored already.
    One statement outside a transaction: most reports outrun our record of the send (a bulk
    page records its sends together) and need nothing else until it commits."""
    async with engine.connect() as connection:
        autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
        stored = await autocommit.execute(
            insert_unless_present(
                connection.dialect.name,
                _REPORTS,
                {
                    "id": new_id(),
                    "channel": report.channel,
                    "provider_message_id": report.provider_message_id,
                    "provider_status": report.provider_status,
                    "error_code": report.error_code,
                    "recipient_index": report.recipient_index,
                    "received_at": report.at,
                },
                ["channel", "provider_message_id", "provider_status"],
            ).returning(_REPORTS.c.id)
        )
        if stored.first() is not None:
            return Received.NEW
        before = await autocommit.execute(
            select(_REPORTS.c.applied_at).where(
                _REPORTS.c.channel == report.channel,
                _REPORTS.c.provider_message_id == report.provider_message_id,
                _REPORTS.c.provider_status == report.provider_status,
            )
        )
        row = before.first()
        return Received.AGAIN if row is None or row[0] is not None else Received.AGAIN_UNAPPLIED


class DeliveryReports:
    """One per API process: stores each report and applies it in the next group."""

    def __init__(self, sessions: SessionFactory, *, group_limit: int = GROUP_LIMIT) -> None:
        self._sessions = sessions
        self._engine: AsyncEngine | None = None
        self._apply = GroupedCalls(self._apply_group, limit=group_limit)

    async def record(self, report: ProviderReport) -> bool:
        """Stores and applies a report; False when the same report was received before
        (providers send reports again), in which case it is applied only if it never was.

        The report commits before its group's transaction begins, and a send commits the
        provider's id before it applies the reports pending for it, so whichever of the two
        commits last sees the other's row: a report that outruns our record of the send is
        never left unapplied."""
        if self._engine is None:
            async with self._sessions() as session:
                assert isinstance(session.bind, AsyncEngine)
                self._engine = session.bind
        received = await store_report(self._engine, report)
        if received is not Received.AGAIN:
            await self._apply((report.channel, report.provider_message_id))
        return received is Received.NEW

    async def _apply_group(self, sends: list[tuple[str, str]]) -> None:
        """One transaction for the group. If it fails, every request of the group is a 5xx,
        and the provider's retry applies the stored report (Received.AGAIN_UNAPPLIED)."""
        try:
            async with transaction(self._sessions) as session:
                await apply_pending_reports_of(session, set(sends), utcnow())
        except Exception as exc:
            log.warning("delivery reports not applied", sends=len(sends), error=type(exc).__name__)
            raise
