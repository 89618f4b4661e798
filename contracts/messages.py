"""Inputs and outputs of the message workflows (one delivery, one batch) and their activities.

Plain pydantic models shared by workflows, activities and the API. Nothing here does I/O.
"""

from __future__ import annotations

import zlib
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

DELIVERY_WORKFLOW = "MessageDelivery"
BATCH_WORKFLOW = "MessageBatchSend"
QUERY_DELIVERY = "delivery"
QUERY_BATCH_PROGRESS = "progress"
# Pushes (MSG-5) are gathered by a few long-running outbox workflows and sent many per activity.
PUSH_OUTBOX_WORKFLOW = "PushOutbox"
SIGNAL_PUSHED = "pushed"
QUERY_OUTBOX = "outbox"
PUSH_OUTBOX_SHARDS = 4

ACTIVITY_PREPARE = "messaging.prepare"
ACTIVITY_DELIVER = "messaging.deliver"
ACTIVITY_RECORD_SENT = "messaging.record_sent"
ACTIVITY_FINISH = "messaging.finish"
ACTIVITY_BATCH_PAGE = "messaging.batch_page"
ACTIVITY_BATCH_FINISHED = "messaging.batch_finished"
# A batch's recipients in bulk: many messages per activity instead of a workflow each.
ACTIVITY_PREPARE_MANY = "messaging.prepare_many"
ACTIVITY_SEND_MANY = "messaging.send_many"
ACTIVITY_RECORD_MANY = "messaging.record_many"
ACTIVITY_FINISH_MANY = "messaging.finish_many"
ACTIVITY_PREPARE_PUSHED = "messaging.prepare_pushed"

# How long one try at sending one message on one channel may take, alone or in a bulk send.
CHANNEL_SEND_TIMEOUT = timedelta(seconds=20)

# Error type of a channel failure that retrying cannot fix (invalid number, user blocked us).
PERMANENT_DELIVERY_FAILURE = "PermanentDeliveryFailure"


def delivery_workflow_id(key: str) -> str:
    return f"msg:{key}"


def push_outbox_id(task_queue: str, key: str) -> str:
    """The outbox a push's message goes through: one of a few per task queue, by a stable hash
    of the push's key, so that no one workflow takes every push's signal."""
    shard = zlib.crc32(key.encode()) % PUSH_OUTBOX_SHARDS
    return f"push-outbox:{task_queue}:{shard}"


def channel_task_queue(base: str, channel: str) -> str:
    """Each channel's sends run on their own task queue, rate-limited by the server (MSG-2)."""
    return f"{base}.channel.{channel}"


# Messages per bulk send activity, at most.
BULK_SEND_SIZE = 50


def channel_bulk_task_queue(base: str, channel: str) -> str:
    """A channel's bulk sends (up to BULK_SEND_SIZE messages per activity) have a queue of their
    own, rate-limited by the server at the channel's rate divided by that size."""
    return f"{channel_task_queue(base, channel)}.bulk"


class _Msg(BaseModel):
    model_config = ConfigDict(frozen=True)


class LinkSpec(_Msg):
    """A patient link to sign at render time: the task it opens, and how long it works counted
    from when the message actually goes out (after quiet hours), or until a fixed moment."""

    task_id: str
    valid_for: timedelta | None = None
    expires_at: datetime | None = None
    # The page it opens: a care task's (/p/...), a payment order's (/pay/...), a complaint's
    # (/c/..., where the patient rates how it was handled), the patient's exams (/x/...) or
    # home-nursing orders (/n/...).
    path: Literal["p", "pay", "c", "x", "n"] = "p"

    @model_validator(mode="after")
    def _one_expiry(self) -> LinkSpec:
        if (self.valid_for is None) == (self.expires_at is None):
            raise ValueError("give exactly one of valid_for and expires_at")
        return self


class MessageRequest(_Msg):
    # One logical message per key, whatever the retries: e.g. "<run>/<step>/<occurrence>/invite".
    key: str = Field(min_length=1, max_length=240)
    template: str
    # The template's category unless given; a mismatch is refused.
    category: str | None = None
    patient_id: str | None = None
    # A number to text when there is no patient record (e.g. a family member), E.164 or CN mobile.
    phone: str | None = None
    variables: dict[str, Any] = Field(default_factory=dict)
    link: LinkSpec | None = None
    urgent: bool = False
    hospital_code: str = "default"
    department_code: str | None = None
    sender: str = "system"
    workflow_id: str | None = None
    task_id: str | None = None
    batch_id: str | None = None
    # The last moment the message is of use (the end of its task's window, or of its day for a
    # daily reminder). Held by quiet hours past it, or prepared after it, it is not sent.
    not_after: datetime | None = None


class PrepareMessage(_Msg):
    request: MessageRequest
    # Workflow time: under time skipping it is not the wall clock.
    now: datetime


PreparedStatus = Literal["ready", "suppressed", "failed", "done"]


class PreparedMessage(_Msg):
    message_id: str
    status: PreparedStatus
    channels: list[str] = Field(default_factory=list)
    skipped: dict[str, str] = Field(default_factory=dict)
    not_before: datetime | None = None
    reason: str | None = None
    # Set when status is "done": the message was already sent before this workflow run.
    channel: str | None = None
    # When the link it carries stops working (requests with a LinkSpec).
    link_expires_at: datetime | None = None


class DeliverAttempt(_Msg):
    message_id: str
    channel: str
    now: datetime
    # False: the activity only sends, and the workflow records the provider's receipt in an
    # activity of its own (ACTIVITY_RECORD_SENT), so that a failure to record never sends the
    # message again. True is how runs started before that split record it.
    record: bool = True


def batch_message_key(batch_id: str, patient_id: str) -> str:
    return f"batch:{batch_id}:{patient_id}"


class BatchMessage(_Msg):
    """What every recipient's message in a batch shares."""

    batch_id: str
    template: str
    variables: dict[str, Any] = Field(default_factory=dict)
    hospital_code: str = "default"
    department_code: str | None = None
    sender: str

    def request(self, patient_id: str) -> MessageRequest:
        return MessageRequest(
            key=batch_message_key(self.batch_id, patient_id),
            template=self.template,
            patient_id=patient_id,
            variables=self.variables,
            hospital_code=self.hospital_code,
            department_code=self.department_code,
            sender=self.sender,
            batch_id=self.batch_id,
        )


class PrepareMany(_Msg):
    """A page of requests: a batch's message and the patients it goes to (so the page's history
    holds each recipient's id, not a copy of the whole request), or whole requests, as pages
    scheduled before that were."""

    batch: BatchMessage | None = None
    patient_ids: list[str] = Field(default_factory=list)
    requests: list[MessageRequest] = Field(default_factory=list)
    now: datetime

    def all_requests(self) -> list[MessageRequest]:
        shared = self.batch
        return self.requests + ([shared.request(p) for p in self.patient_ids] if shared else [])


class PreparedMany(_Msg):
    # In the order of the requests.
    messages: list[PreparedMessage]


# "bulk": a batch's sends, on each channel's bulk queue; "single": pushes, on the queue single
# messages use, paced apart from batches so that a push never waits behind a large batch.
SendLane = Literal["bulk", "single"]


class SendMany(_Msg):
    """One channel, many messages: each is reserved, sent and answered on its own; the activity
    fails as a whole only when it could not run at all (then every message in it is tried again,
    and the send log keeps each from going out twice)."""

    channel: str
    message_ids: list[str]
    now: datetime
    lane: SendLane = "bulk"


class SendOutcome(_Msg):
    message_id: str
    # sent: the provider took it (receipt below); retry: a transient failure, try again later;
    # failed: this channel cannot carry it (the next channel may).
    status: Literal["sent", "retry", "failed"]
    provider_message_id: str | None = None
    provider_status: str | None = None
    reason: str | None = None


class SentMany(_Msg):
    outcomes: list[SendOutcome]


class AttemptResult(_Msg):
    channel: str
    provider_message_id: str
    provider_status: str | None = None


class SentReceipt(_Msg):
    """A provider accepted the message: what to write in the send log."""

    message_id: str
    channel: str
    provider_message_id: str
    provider_status: str | None
    at: datetime


class SentReceipts(_Msg):
    receipts: list[SentReceipt]


class MessageFinished(_Msg):
    message_id: str
    status: Literal["sent", "failed"]
    channel: str | None
    reason: str | None
    failures: dict[str, str] = Field(default_factory=dict)
    at: datetime
    # When the channel that carried it was called (the send log's sent time).
    sent_at: datetime | None = None


class MessagesFinished(_Msg):
    finished: list[MessageFinished]


OutcomeStatus = Literal["sent", "failed", "suppressed"]


class DeliveryOutcome(_Msg):
    message_id: str | None
    status: OutcomeStatus
    channel: str | None = None
    reason: str | None = None
    sent_at: datetime | None = None
    link_expires_at: datetime | None = None


class DeliveryProgress(_Msg):
    message_id: str | None
    state: Literal["preparing", "scheduled", "sending", "finished"]
    not_before: datetime | None
    channel: str | None
    outcome: DeliveryOutcome | None


class BatchInput(BatchMessage):
    total: int
    # Carried over continue-as-new.
    offset: int = 0
    counts: dict[str, int] = Field(default_factory=dict)


class BatchPageRequest(_Msg):
    batch_id: str
    offset: int
    limit: int


class BatchPage(_Msg):
    patient_ids: list[str]


class BatchFinished(_Msg):
    batch_id: str
    counts: dict[str, int]
    at: datetime


class BatchProgress(_Msg):
    batch_id: str
    total: int
    processed: int
    counts: dict[str, int]
    finished: bool


class Pushed(_Msg):
    """Messages the push API has composed (their rows commit just after this signal)."""

    message_ids: list[str] = Field(min_length=1)


class HeldPushes(_Msg):
    """Messages that wait until ``until``: quiet hours, or a row not committed yet."""

    until: datetime
    message_ids: list[str]


class OutboxInput(_Msg):
    """What an outbox carries into its next run when it continues as new."""

    waiting: list[str] = Field(default_factory=list)
    held: list[HeldPushes] = Field(default_factory=list)
    # Message id -> how many times it was looked for and not found.
    looks: dict[str, int] = Field(default_factory=dict)
    counts: dict[str, int] = Field(default_factory=dict)
    # Pages a run starts at most before continuing as new (the server usually suggests it sooner).
    pages_per_run: int = Field(default=500, ge=1)
    # History events up to which a run due to continue as new still starts pages while it waits
    # for those in flight: under Temporal's warning at 10,240 events (its limit is 51,200).
    drain_history_events: int = Field(default=10_000, ge=1)


class PreparePushed(_Msg):
    message_ids: list[str]
    now: datetime


class PreparedPushed(_Msg):
    messages: list[PreparedMessage]
    # Ids with no row (yet): the API signals before it commits.
    missing: list[str] = Field(default_factory=list)


class OutboxProgress(_Msg):
    waiting: int
    held: int
    pages_in_flight: int
    counts: dict[str, int]
