"""Delivery reports from providers (Twilio status callbacks, WeChat send-job events) and the
patient opening a link, applied to the send log idempotently and never backwards (MSG-3)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import load_only
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import Select, SelectOfScalar

from core.logs import get_logger
from core.models import (
    MESSAGE_STATUS_RANK,
    AttemptStatus,
    DeliveryReport,
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


_STATE_ONLY = load_only(
    *(
        getattr(OutboundMessage, name)
        for name in ("status", "channel", "failure_reason", "sent_at", "delivered_at", "updated_at")
    )
)


def locked_states(ids: Collection[str]) -> SelectOfScalar[OutboundMessage]:
    """The messages, locked in id order, with only what recording a send or applying a report
    reads and writes: their text, variables and phone, encrypted at rest, are not read and
    decrypted for every provider report and every receipt."""
    return (
        select(OutboundMessage)
        .where(col(OutboundMessage.id).in_(ids))
        .order_by(col(OutboundMessage.id))
        .options(_STATE_ONLY)
        .with_for_update()
    )


def advance(message: OutboundMessage, status: MessageStatus, at: datetime) -> bool:
    """Moves a message forward only: a late or repeated report never moves it back."""
    if MESSAGE_STATUS_RANK[status] <= MESSAGE_STATUS_RANK[MessageStatus(message.status)]:
        return False
    message.status = status
    message.updated_at = at
    return True


def wechat_status(value: str) -> MessageStatus:
    return MessageStatus.DELIVERED if value == "success" else MessageStatus.FAILED


def _mapped(channel: str, provider_status: str) -> MessageStatus | None:
    if channel == "wechat":
        return wechat_status(provider_status)
    return TWILIO_STATUS.get(provider_status)


async def _lock_recipient(session: AsyncSession, recipient_index: str) -> None:
    """Serialises, for one recipient, claims of reports (two retries must not claim one) and
    the start of new sends (see another_send_unresolved); SQLite serialises every write."""
    if session.get_bind().dialect.name == "postgresql":
        await session.exec(
            select(func.pg_advisory_xact_lock(func.hashtextextended(recipient_index, 0)))
        )


# Each distinct lock once, in the order of its key: two bulk sends whose recipients overlap take
# the shared ones in the same order, so neither waits for the other in a cycle. The lock calls,
# being volatile, run after the sort.
_LOCK_RECIPIENTS = sa.text(
    "SELECT pg_advisory_xact_lock(k) FROM"
    " (SELECT DISTINCT hashtextextended(r, 0) AS k FROM unnest(CAST(:indexes AS text[])) AS r) AS l"
    " ORDER BY k"
)


def _unresolved_sends(channel: str) -> tuple[sa.ColumnElement[bool], ...]:
    # Sends whose outcome nobody knows yet: not matched to a report, and not refused by the
    # provider on their last try.
    return (
        col(MessageAttempt.channel) == channel,
        col(MessageAttempt.status) == AttemptStatus.SENDING,
        col(MessageAttempt.provider_message_id).is_(None),
        col(MessageAttempt.error_code).is_(None),
    )


def _other_unresolved(attempt: MessageAttempt) -> Select[int, datetime]:
    """How many sends to ``attempt``'s recipient, other than it, are unresolved, and when the
    first of them began."""
    return select(func.count(), func.min(MessageAttempt.created_at)).where(
        MessageAttempt.recipient_index == attempt.recipient_index,
        MessageAttempt.id != attempt.id,
        *_unresolved_sends(attempt.channel),
    )


async def another_send_unresolved(
    session: AsyncSession, attempt: MessageAttempt, since: datetime
) -> bool:
    """Whether a send to this attempt's recipient other than ``attempt``, begun since ``since``,
    has an outcome nobody knows yet. A new send waits for it (deliver): its report can only be
    claimed while no other send to the patient is unresolved, so two in flight at once, one
    report lost, meant both sent again. Holds the recipient's lock until the transaction ends,
    so of two sends starting together the second sees the first."""
    if attempt.recipient_index is None:
        return False
    await _lock_recipient(session, attempt.recipient_index)
    others = await session.exec(
        _other_unresolved(attempt).where(MessageAttempt.created_at >= since)
    )
    count, _ = others.one()
    return count > 0


async def recipients_with_unresolved_sends(
    session: AsyncSession, channel: str, recipient_indexes: Collection[str], since: datetime
) -> set[str]:
    """another_send_unresolved for many new sends at once, before their attempts are added: of
    these recipients, those with a send on ``channel`` begun since ``since`` whose outcome
    nobody knows yet. Holds every one's lock until the transaction ends, as that does."""
    if not recipient_indexes:
        return set()
    if session.get_bind().dialect.name == "postgresql":
        connection = await session.connection()
        await connection.execute(_LOCK_RECIPIENTS, {"indexes": list(recipient_indexes)})
    busy = await session.exec(
        select(MessageAttempt.recipient_index)
        .where(
            col(MessageAttempt.recipient_index).in_(recipient_indexes),
            MessageAttempt.created_at >= since,
            *_unresolved_sends(channel),
        )
        .distinct()
    )
    return {index for index in busy.all() if index is not None}


async def claim_reported_send(
    session: AsyncSession, attempt: MessageAttempt
) -> DeliveryReport | None:
    """For a provider without a lookup of sent messages (WeChat): the report of a send to this
    attempt's recipient since the attempt began that no attempt has claimed, after a try whose
    answer was lost. Claims it for ``attempt`` in this transaction (its provider id), so no
    other attempt can.

    Refuses to guess: a report that came after another unresolved send to the recipient began
    may be that send's (an answer received, not yet recorded), so only a report that came before
    every other unresolved send began is claimed. Counting reports against unresolved sends is
    not enough: a send sent twice (after the wait) has two reports, and a try that never reached
    the provider took one of them in the fault campaign (its message never arrived). Refused, a
    try sends again after the wait: a duplicate rather than a loss."""
    if attempt.recipient_index is None:
        return None
    await _lock_recipient(session, attempt.recipient_index)
    others = await session.exec(_other_unresolved(attempt))
    _, other_began = others.one()
    claimed = select(MessageAttempt.provider_message_id).where(
        MessageAttempt.channel == attempt.channel,
        col(MessageAttempt.provider_message_id).is_not(None),
    )
    candidates = (
        select(DeliveryReport)
        .where(
            DeliveryReport.channel == attempt.channel,
            DeliveryReport.recipient_index == attempt.recipient_index,
            DeliveryReport.received_at >= attempt.created_at,
            col(DeliveryReport.provider_message_id).not_in(claimed),
        )
        .order_by(col(DeliveryReport.received_at))
        .limit(1)
    )
    if other_began is not None:
        candidates = candidates.where(DeliveryReport.received_at < other_began)
    found = await session.exec(candidates)
    report = found.first()
    if report is not None:
        attempt.provider_message_id = report.provider_message_id
        await session.flush()
    return report


async def apply_pending_reports_of(
    session: AsyncSession, sends: Collection[tuple[str, str]], at: datetime
) -> None:
    """Applies every stored, not yet applied report about these provider messages, each a
    (channel, provider id), oldest first, in three statements: called when sends record the
    provider's ids, and for a group of reports as they arrive (services.delivery_reports). Locks
    attempts, reports, then messages, each kind in one order, so two callers never wait for each
    other in a cycle."""
    if not sends:
        return
    channels = {channel for channel, _ in sends}
    provider_ids = {provider_id for _, provider_id in sends}
    found = await session.exec(
        select(MessageAttempt)
        .where(
            col(MessageAttempt.channel).in_(channels),
            col(MessageAttempt.provider_message_id).in_(provider_ids),
        )
        .order_by(col(MessageAttempt.id))
        .with_for_update()
    )
    attempts: dict[tuple[str, str], MessageAttempt] = {}
    for attempt in found.all():
        key = (attempt.channel, attempt.provider_message_id or "")
        # A repeated id belongs to the latest send that received it.
        if key in sends and (key not in attempts or attempt.created_at > attempts[key].created_at):
            attempts[key] = attempt
    if len(attempts) < len(sends):
        log.info("delivery report ahead of our record of the send", channels=sorted(channels))
    if not attempts:
        return
    reports = await session.exec(
        select(DeliveryReport)
        .where(
            col(DeliveryReport.channel).in_(channels),
            col(DeliveryReport.provider_message_id).in_(provider_ids),
            col(DeliveryReport.applied_at).is_(None),
        )
        .order_by(col(DeliveryReport.received_at), col(DeliveryReport.id))
        .with_for_update()
    )
    pending = [r for r in reports.all() if (r.channel, r.provider_message_id) in attempts]
    if not pending:
        return
    locked = await session.exec(locked_states({a.message_id for a in attempts.values()}))
    messages = {m.id: m for m in locked.all()}
    for report in pending:
        attempt = attempts[(report.channel, report.provider_message_id)]
        status = _mapped(report.channel, report.provider_status)
        if status is not None:
            _apply(
                attempt,
                messages[attempt.message_id],
                status,
                report.provider_status,
                report.error_code,
                report.received_at,
            )
        report.applied_at = at


def _apply(
    attempt: MessageAttempt,
    message: OutboundMessage,
    status: MessageStatus,
    provider_status: str,
    error_code: str | None,
    at: datetime,
) -> None:
    attempt.provider_status = provider_status
    attempt.updated_at = at
    if status == MessageStatus.FAILED:
        attempt.status = AttemptStatus.FAILED
        attempt.error_code = error_code
        attempt.error_message = f"provider reported {provider_status}"
        # Only the channel that carried the message decides its fate; a failure report on an
        # attempt we already fell back from changes nothing for the patient.
        if attempt.channel == message.channel and advance(message, MessageStatus.FAILED, at):
            message.failure_reason = (
                f"{attempt.channel}: 运营商报告未送达（{provider_status} {error_code or ''}）"
            )
    elif status == MessageStatus.DELIVERED:
        if attempt.status == AttemptStatus.SENT:
            attempt.status = AttemptStatus.DELIVERED
        if attempt.channel == message.channel and advance(message, MessageStatus.DELIVERED, at):
            message.delivered_at = at
    elif attempt.channel == message.channel:
        advance(message, status, at)


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
