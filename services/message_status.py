"""Delivery reports from providers (Twilio status callbacks, WeChat send-job events) and the
patient opening a link, applied to the send log idempotently and never backwards (MSG-3)."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.logs import get_logger
from core.models import (
    MESSAGE_STATUS_RANK,
    AttemptStatus,
    MessageAttempt,
    MessageStatus,
    OutboundMessage,
)

log = get_logger(__name__)

# Twilio MessageStatus values -> ours. 'accepted', 'queued' and 'sending' add nothing we show.
TWILIO_STATUS: dict[str, MessageStatus] = {
    "sent": MessageStatus.SENT,
    "delivered": MessageStatus.DELIVERED,
    "read": MessageStatus.READ,
    "undelivered": MessageStatus.FAILED,
    "failed": MessageStatus.FAILED,
}


def advance(message: OutboundMessage, status: MessageStatus, at: datetime) -> bool:
    """Moves a message forward only: a late or repeated report never moves it back."""
    if MESSAGE_STATUS_RANK[status] <= MESSAGE_STATUS_RANK[MessageStatus(message.status)]:
        return False
    message.status = status
    message.updated_at = at
    return True


def wechat_status(value: str) -> MessageStatus:
    return MessageStatus.DELIVERED if value == "success" else MessageStatus.FAILED


async def apply_delivery_report(
    session: AsyncSession,
    *,
    channel: str,
    provider_message_id: str,
    status: MessageStatus,
    provider_status: str,
    error_code: str | None,
    at: datetime,
) -> bool:
    """Records a provider's report on one of our sends; False when we never sent it."""
    found = await session.exec(
        select(MessageAttempt)
        .where(
            MessageAttempt.channel == channel,
            MessageAttempt.provider_message_id == provider_message_id,
        )
        .with_for_update()
    )
    attempt = found.first()
    if attempt is None:
        log.warning(
            "delivery report for an unknown message", channel=channel, id=provider_message_id
        )
        return False
    message = await session.get(OutboundMessage, attempt.message_id, with_for_update=True)
    assert message is not None
    attempt.provider_status = provider_status
    attempt.updated_at = at
    if status == MessageStatus.FAILED:
        attempt.status = AttemptStatus.FAILED
        attempt.error_code = error_code
        attempt.error_message = f"provider reported {provider_status}"
        # Only the channel that carried the message decides its fate; a failure report on an
        # attempt we already fell back from changes nothing for the patient.
        if message.channel == channel and advance(message, MessageStatus.FAILED, at):
            message.failure_reason = (
                f"{channel}: 运营商报告未送达（{provider_status} {error_code or ''}）"
            )
    elif status == MessageStatus.DELIVERED:
        if attempt.status == AttemptStatus.SENT:
            attempt.status = AttemptStatus.DELIVERED
        if message.channel == channel and advance(message, MessageStatus.DELIVERED, at):
            message.delivered_at = at
    elif message.channel == channel:
        advance(message, status, at)
    return True


async def mark_read_by_task(session: AsyncSession, task_id: str, at: datetime) -> None:
    """The patient opened the link a message carried: that message has been read."""
    found = await session.exec(
        select(OutboundMessage).where(
            OutboundMessage.task_id == task_id,
            OutboundMessage.status.in_(  # type: ignore[attr-defined]
                [MessageStatus.SENT, MessageStatus.DELIVERED]
            ),
        )
    )
    for message in found.all():
        if advance(message, MessageStatus.READ, at):
            message.read_at = at
