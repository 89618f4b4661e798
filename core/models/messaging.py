"""Messages to patients (MSG-*): one row per logical message, one per channel attempt, the
team and personal templates, and batch sends."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from core.crypto import EncryptedJSON, EncryptedText, blind_index
from core.db import UTCDateTime
from core.models.base import JSONType, new_id, ts_field, utcnow


class MessageStatus(StrEnum):
    QUEUED = "queued"  # accepted, not yet routed
    SCHEDULED = "scheduled"  # held until the hospital's quiet hours end
    SENDING = "sending"
    SENT = "sent"  # a provider accepted it
    DELIVERED = "delivered"  # the provider confirmed delivery to the handset / WeChat
    READ = "read"  # the patient opened the link it carried
    FAILED = "failed"  # every channel failed; the reason says why
    SUPPRESSED = "suppressed"  # the patient switched this category off (MSG-6)


# Later statuses never move a message back (a late 'sent' callback after 'delivered').
MESSAGE_STATUS_RANK: dict[str, int] = {
    MessageStatus.QUEUED: 0,
    MessageStatus.SCHEDULED: 1,
    MessageStatus.SENDING: 2,
    MessageStatus.SENT: 3,
    MessageStatus.DELIVERED: 4,
    MessageStatus.READ: 5,
    MessageStatus.FAILED: 6,
    MessageStatus.SUPPRESSED: 6,
}


class AttemptStatus(StrEnum):
    SENDING = "sending"  # reserved before the provider call; a crash leaves it here
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"


class OutboundMessage(SQLModel, table=True):
    """One logical message. Its idempotency key makes every retry, redelivery and resumed batch
    find the same row instead of sending again (one message per run, step and occurrence)."""

    __tablename__ = "outbound_message"
    __table_args__ = (sa.Index("ix_outbound_message_status_created", "status", "created_at"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    idempotency_key: str = Field(max_length=255, unique=True)
    category: str = Field(max_length=32)
    template: str = Field(max_length=64)
    hospital_code: str = Field(default="default", max_length=32)
    department_code: str | None = Field(default=None, max_length=32, index=True)
    # staff:<id>, api:<client id>, or system (a workflow)
    sender: str = Field(default="system", max_length=64, index=True)
    patient_id: str | None = Field(
        default=None, foreign_key="patient.id", index=True, max_length=36
    )
    # Encrypted at rest (SEC-4) with the text and variables that may name the patient; the
    # blind index answers "messages to this number".
    recipient_phone: str | None = Field(
        default=None, sa_type=EncryptedText("outbound_message.recipient_phone")
    )
    recipient_phone_index: str | None = Field(default=None, max_length=64, index=True)
    recipient_openid: str | None = Field(default=None, max_length=64)
    task_id: str | None = Field(default=None, foreign_key="care_task.id", max_length=36)
    workflow_id: str | None = Field(default=None, max_length=200, index=True)
    batch_id: str | None = Field(default=None, max_length=36, index=True)
    urgent: bool = False
    variables: dict[str, Any] = Field(
        default_factory=dict, sa_type=EncryptedJSON("outbound_message.variables")
    )
    # The text as rendered for SMS and the outbox; WeChat gets its own fields below.
    body: str = Field(default="", sa_type=EncryptedText("outbound_message.body"))
    wechat_payload: dict[str, Any] | None = Field(
        default=None, sa_type=EncryptedJSON("outbound_message.wechat_payload")
    )
    status: str = Field(default=MessageStatus.QUEUED, max_length=16)
    channel: str | None = Field(default=None, max_length=16)
    failure_reason: str | None = Field(default=None, max_length=500)
    # Workflow time the message was due (virtual under a compressed clock or time skipping).
    scheduled_for: datetime = Field(sa_type=UTCDateTime)
    not_before: datetime | None = ts_field()
    # When the patient link in the message stops working (counted from the actual send).
    link_expires_at: datetime | None = ts_field()
    sent_at: datetime | None = ts_field()
    delivered_at: datetime | None = ts_field()
    read_at: datetime | None = ts_field()
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


@sa.event.listens_for(OutboundMessage, "before_insert")
@sa.event.listens_for(OutboundMessage, "before_update")
def _message_blind_index(_mapper: Any, _connection: Any, message: OutboundMessage) -> None:
    # A message loaded without its phone (a status change) cannot have changed it; reading it
    # here would load and decrypt it.
    if "recipient_phone" in sa.inspect(message).unloaded:
        return
    message.recipient_phone_index = blind_index("phone", message.recipient_phone)


class MessageAttempt(SQLModel, table=True):
    """One channel tried for a message. Reserved before the provider is called, so a worker that
    dies mid-call leaves a 'sending' row that the retry reconciles instead of sending twice."""

    __tablename__ = "message_attempt"
    __table_args__ = (
        sa.UniqueConstraint("message_id", "channel", name="uq_message_attempt_channel"),
        # Not unique: a provider may repeat an id (see migration 0006).
        sa.Index("ix_message_attempt_provider_id", "channel", "provider_message_id"),
        sa.Index("ix_message_attempt_recipient", "channel", "recipient_index", "status"),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    message_id: str = Field(foreign_key="outbound_message.id", index=True, max_length=36)
    channel: str = Field(max_length=16)
    # The phone number or WeChat openid the attempt went to, encrypted at rest (SEC-4), and its
    # blind index, which matches it to the provider's reports of sends (see claim_reported_send).
    recipient: str = Field(sa_type=EncryptedText("message_attempt.recipient"))
    recipient_index: str | None = Field(default=None, max_length=64)
    status: str = Field(default=AttemptStatus.SENDING, max_length=16)
    provider_message_id: str | None = Field(default=None, max_length=128)
    provider_status: str | None = Field(default=None, max_length=32)
    error_code: str | None = Field(default=None, max_length=32)
    error_message: str | None = Field(default=None, max_length=500)
    # Activity attempts on this channel (retries of transient failures).
    tries: int = 0
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


def attempt_recipient_index(channel: str, recipient: str) -> str | None:
    """The blind index of an attempt's recipient: its openid on WeChat, else its phone."""
    return blind_index("openid" if channel == "wechat" else "phone", recipient)


@sa.event.listens_for(MessageAttempt, "before_insert")
def _attempt_blind_index(_mapper: Any, _connection: Any, attempt: MessageAttempt) -> None:
    attempt.recipient_index = attempt_recipient_index(attempt.channel, attempt.recipient)


class TemplateOwner(StrEnum):
    PLATFORM = "platform"  # shipped as files under templates/messages, read-only
    TEAM = "team"  # a department's, editable by its staff
    PERSONAL = "personal"  # one staff member's


class MessageTemplate(SQLModel, table=True):
    """A team or personal template (MSG-2, ED-5). Platform templates are files, not rows."""

    __tablename__ = "message_template"
    __table_args__ = (
        sa.UniqueConstraint("code", "owner_type", "owner_id", name="uq_message_template_owner"),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    code: str = Field(max_length=64, index=True)
    owner_type: str = Field(max_length=16)
    # The department code (team) or staff id (personal).
    owner_id: str = Field(max_length=64)
    category: str = Field(max_length=32)
    name: str = Field(max_length=100)
    variables: list[str] = Field(default_factory=list, sa_type=JSONType)
    sms: str
    wechat: dict[str, Any] | None = Field(default=None, sa_type=JSONType)
    version: int = 1
    active: bool = True
    created_by: str = Field(max_length=36)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class BatchStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"


class MessageBatch(SQLModel, table=True):
    """A batch send to a selected group (MSG-2), executed by one durable workflow."""

    __tablename__ = "message_batch"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    workflow_id: str = Field(max_length=200, unique=True)
    name: str = Field(max_length=100)
    category: str = Field(max_length=32)
    template: str = Field(max_length=64)
    variables: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)
    # Internal patient ids, in send order; the workflow reads them page by page.
    recipients: list[str] = Field(default_factory=list, sa_type=JSONType)
    total: int
    created_by: str = Field(max_length=64)
    department_code: str | None = Field(default=None, max_length=32, index=True)
    hospital_code: str = Field(default="default", max_length=32)
    status: str = Field(default=BatchStatus.RUNNING, max_length=16)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    finished_at: datetime | None = ts_field()


class DeliveryReport(SQLModel, table=True):
    """Every delivery report a provider sent us, deduplicated by (channel, provider id, status).

    A report can outrun our own record of the send (Twilio may call back before the activity
    that got the message sid has committed); it then waits here, unapplied, and the activity
    applies it as soon as it records the sid."""

    __tablename__ = "delivery_report"
    __table_args__ = (
        sa.UniqueConstraint(
            "channel", "provider_message_id", "provider_status", name="uq_delivery_report_status"
        ),
        sa.Index("ix_delivery_report_recipient", "channel", "recipient_index", "received_at"),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    channel: str = Field(max_length=16)
    provider_message_id: str = Field(max_length=128)
    provider_status: str = Field(max_length=32)
    error_code: str | None = Field(default=None, max_length=32)
    # Blind index of the recipient the provider names (WeChat's FromUserName), when it does.
    recipient_index: str | None = Field(default=None, max_length=64)
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    applied_at: datetime | None = ts_field()
