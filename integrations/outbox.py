"""The outbox channel: stores and logs, transmits nothing.

The default in development and the last fallback elsewhere: the stored message row is the outbox,
readable through the staff API, so nobody is texted by a demo and an undeliverable message is
still there for staff to act on.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from core.logs import get_logger
from messaging.channel import DeliveryReceipt, OutgoingMessage

log = get_logger(__name__)


class OutboxChannel:
    name = "outbox"
    reports_sends_within: timedelta | None = None

    def unavailable_reason(self, message: OutgoingMessage) -> str | None:
        # It stands in for SMS, so it needs a number just as SMS does.
        return None if message.phone else "没有有效的手机号码"

    async def deliver(self, message: OutgoingMessage) -> DeliveryReceipt:
        log.info(
            "message placed in outbox",
            message_id=message.message_id,
            category=message.category,
            recipient=message.phone,
            body=message.loggable_body(),
        )
        return DeliveryReceipt(provider_message_id=f"outbox-{message.message_id}")

    async def find_sent(self, message: OutgoingMessage, since: datetime) -> DeliveryReceipt | None:  # noqa: ARG002
        # Delivering to the outbox has no effect outside our own row: doing it again is harmless.
        return None

    async def close(self) -> None:
        return None
