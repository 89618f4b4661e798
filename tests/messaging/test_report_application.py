"""A provider's report moves a message on without reading its encrypted text: what staff see
of the message afterwards (its text, its phone, finding it by that phone) is as it was. Reports
arriving together are applied together, each answered once it is applied, and one whose
application failed is applied when the provider sends it again."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Collection
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.crypto import blind_index
from core.db import SessionFactory, transaction
from core.models import AttemptStatus, MessageAttempt, MessageStatus, OutboundMessage
from services import delivery_reports
from services.delivery_reports import DeliveryReports, ProviderReport, Received
from services.message_status import apply_pending_reports_of

T0 = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
PHONE = "+8613800138001"


async def _sent_by_sms(sessions: SessionFactory, sid: str) -> str:
    """A notice recorded as sent by SMS under Twilio's ``sid``; its id."""
    async with transaction(sessions) as session:
        message = OutboundMessage(
            idempotency_key=f"report/{uuid.uuid4()}",
            category="notice",
            template="notice_generic",
            recipient_phone=PHONE,
            body="【示例医院】王医生11月26日上午停诊。",
            variables={"title": "停诊通知"},
            status=MessageStatus.SENT,
            channel="sms",
            scheduled_for=T0,
            sent_at=T0,
        )
        session.add(message)
        await session.flush()
        session.add(
            MessageAttempt(
                message_id=message.id,
                channel="sms",
                recipient=PHONE,
                tries=1,
                status=AttemptStatus.SENT,
                provider_message_id=sid,
                created_at=T0,
            )
        )
        return message.id


def _delivered(sid: str, at: datetime) -> ProviderReport:
    return ProviderReport(
        channel="sms", provider_message_id=sid, provider_status="delivered", error_code=None, at=at
    )


async def _statuses(sessions: SessionFactory, ids: Collection[str]) -> dict[str, str]:
    async with sessions() as session:
        found = await session.exec(
            select(OutboundMessage.id, OutboundMessage.status).where(
                col(OutboundMessage.id).in_(ids)
            )
        )
        return {id_: str(status) for id_, status in found.all()}


async def test_a_delivered_report_keeps_the_messages_text_and_phone_search(
    sessions: SessionFactory,
) -> None:
    sid = f"SM{uuid.uuid4().hex}"
    message_id = await _sent_by_sms(sessions, sid)

    at = T0 + timedelta(seconds=3)
    assert await DeliveryReports(sessions).record(_delivered(sid, at))

    async with sessions() as session:
        found = (
            await session.exec(
                select(OutboundMessage).where(
                    OutboundMessage.recipient_phone_index == blind_index("phone", PHONE)
                )
            )
        ).all()
    assert [m.id for m in found] == [message_id]
    (message,) = found
    assert message.status == MessageStatus.DELIVERED
    assert message.delivered_at == at
    assert message.recipient_phone == PHONE
    assert message.body == "【示例医院】王医生11月26日上午停诊。"
    assert message.variables == {"title": "停诊通知"}


async def test_reports_arriving_together_are_each_applied_before_their_answer(
    sessions: SessionFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    sids = [f"SM{uuid.uuid4().hex}" for _ in range(40)]
    ids = [await _sent_by_sms(sessions, sid) for sid in sids]
    store, apply = delivery_reports.store_report, apply_pending_reports_of
    stored: list[str] = []
    all_stored = asyncio.Event()
    groups: list[int] = []

    async def counted_store(engine: AsyncEngine, report: ProviderReport) -> Received:
        received = await store(engine, report)
        stored.append(report.provider_message_id)
        if len(stored) == len(sids):
            all_stored.set()
        return received

    async def held_apply(
        session: AsyncSession, sends: Collection[tuple[str, str]], at: datetime
    ) -> None:
        # The first group is held until every report has arrived, so the rest wait together.
        await all_stored.wait()
        groups.append(len(sends))
        await apply(session, sends, at)

    monkeypatch.setattr(delivery_reports, "store_report", counted_store)
    monkeypatch.setattr(delivery_reports, "apply_pending_reports_of", held_apply)
    reports = DeliveryReports(sessions)
    at = T0 + timedelta(seconds=3)

    async def report_then_look(sid: str, message_id: str) -> str:
        await reports.record(_delivered(sid, at))
        # What the provider's 2xx promises: the report is applied by now.
        return (await _statuses(sessions, [message_id]))[message_id]

    seen = await asyncio.gather(*(report_then_look(s, i) for s, i in zip(sids, ids, strict=True)))

    assert seen == ["delivered"] * 40
    # Those that arrived while the first group was being applied went in one more.
    assert sum(groups) == 40
    assert len(groups) <= 2


async def test_a_report_whose_application_failed_is_applied_when_sent_again(
    sessions: SessionFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    sid = f"SM{uuid.uuid4().hex}"
    message_id = await _sent_by_sms(sessions, sid)

    async def down(session: AsyncSession, sends: Collection[tuple[str, str]], at: datetime) -> None:
        raise ConnectionResetError("the database went away mid-apply")

    reports = DeliveryReports(sessions)
    monkeypatch.setattr(delivery_reports, "apply_pending_reports_of", down)
    with pytest.raises(ConnectionResetError):
        await reports.record(_delivered(sid, T0 + timedelta(seconds=3)))
    assert await _statuses(sessions, [message_id]) == {message_id: "sent"}

    # Twilio had no 2xx, so it posts the same report again: stored already, applied now.
    monkeypatch.setattr(delivery_reports, "apply_pending_reports_of", apply_pending_reports_of)
    again = await reports.record(_delivered(sid, T0 + timedelta(seconds=9)))

    assert again is False
    assert await _statuses(sessions, [message_id]) == {message_id: "delivered"}
    # A third time changes nothing, and is not applied again.
    assert await reports.record(_delivered(sid, T0 + timedelta(seconds=20))) is False
    async with sessions() as session:
        (message,) = (
            await session.exec(select(OutboundMessage).where(OutboundMessage.id == message_id))
        ).all()
    assert message.delivered_at == T0 + timedelta(seconds=3)
