"""A provider's report moves a message on without reading its encrypted text: what staff see
of the message afterwards (its text, its phone, finding it by that phone) is as it was."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlmodel import select

from core.crypto import blind_index
from core.db import SessionFactory, transaction
from core.models import AttemptStatus, MessageAttempt, MessageStatus, OutboundMessage
from services.message_status import record_delivery_report

T0 = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
PHONE = "+8613800138001"


async def test_a_delivered_report_keeps_the_messages_text_and_phone_search(
    sessions: SessionFactory,
) -> None:
    sid = f"SM{uuid.uuid4().hex}"
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
        message_id = message.id

    at = T0 + timedelta(seconds=3)
    async with sessions() as session:
        applied = await record_delivery_report(
            session,
            channel="sms",
            provider_message_id=sid,
            provider_status="delivered",
            error_code=None,
            at=at,
        )
    assert applied

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
