"""The one interface every message channel implements (outbox, Twilio SMS, WeChat)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from core.logs import mask_name


@dataclass(frozen=True)
class OutgoingMessage:
    message_id: str
    idempotency_key: str
    category: str
    template: str
    # E.164 (+8613800138000), or None when there is no valid mobile number.
    phone: str | None
    openid: str | None
    sms_body: str
    wechat: dict[str, Any] | None = None  # {"data": {...}, "url": ...}
    # Values that must not reach the logs in clear, such as the patient's name in the body.
    redact: tuple[str, ...] = field(default=())

    def loggable_body(self) -> str:
        body = self.sms_body
        for value in self.redact:
            if value:
                body = body.replace(value, mask_name(value))
        return body


@dataclass(frozen=True)
class DeliveryReceipt:
    provider_message_id: str
    provider_status: str = "sent"


class DeliveryError(Exception):
    def __init__(self, reason: str, code: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class PermanentDeliveryError(DeliveryError):
    """Retrying cannot help (invalid number, user unsubscribed): fall back at once."""


class TransientDeliveryError(DeliveryError):
    """The provider is down, slow or throttling us: retry with backoff, then fall back."""


class MessageChannel(Protocol):
    name: str
    # For a provider with no lookup of sent messages that reports every send to our server
    # instead (WeChat): how long such a report may take to arrive. A try whose answer was lost
    # is then matched against the reports received, and waits this long for one before the
    # message is sent again. None: find_sent asks the provider.
    reports_sends_within: timedelta | None

    def unavailable_reason(self, message: OutgoingMessage) -> str | None:
        """Why this channel cannot carry the message at all (no binding, no number), or None."""
        ...

    async def deliver(self, message: OutgoingMessage) -> DeliveryReceipt: ...

    async def find_sent(self, message: OutgoingMessage, since: datetime) -> DeliveryReceipt | None:
        """After a try whose outcome is unknown (the worker died mid-call): the provider's record
        of this message if it was accepted after all, so the retry does not send it twice."""
        ...

    async def close(self) -> None: ...
