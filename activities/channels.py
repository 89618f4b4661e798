"""Message channels behind one interface. The outbox stores and logs; real SMS and WeChat
channels (Twilio, official-account template messages) plug in here later."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from core.logs import get_logger, mask_name

log = get_logger(__name__)


@dataclass(frozen=True)
class OutgoingMessage:
    message_id: str
    idempotency_key: str
    recipient: str
    body: str
    category: str
    # Values that must not reach the logs in clear, such as the patient's name in the body.
    redact: tuple[str, ...] = ()

    def loggable_body(self) -> str:
        body = self.body
        for value in self.redact:
            if value:
                body = body.replace(value, mask_name(value))
        return body


@dataclass(frozen=True)
class DeliveryReceipt:
    provider_message_id: str


class MessageChannel(Protocol):
    name: str

    async def deliver(self, message: OutgoingMessage) -> DeliveryReceipt: ...


class OutboxChannel:
    """Transmits nothing: the stored message row is the outbox, readable through the staff API.

    Used in development and wherever no SMS provider is configured, so nobody is texted by a demo.
    """

    name = "outbox"

    async def deliver(self, message: OutgoingMessage) -> DeliveryReceipt:
        log.info(
            "message placed in outbox",
            message_id=message.message_id,
            category=message.category,
            recipient=message.recipient,
            body=message.loggable_body(),
        )
        return DeliveryReceipt(provider_message_id=f"outbox-{message.message_id}")
