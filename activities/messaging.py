"""Message delivery activities: prepare (compose, route, quiet hours), deliver on one channel,
and record the outcome; plus the pages and the end of a batch send.

Everything is idempotent under the message's key: a retried activity finds the row, and a
channel attempt is reserved before the provider is called, so a retry after a crash asks the
provider whether the first try got through before sending again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import get_args

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity
from temporalio.exceptions import ApplicationError

from contracts.messages import (
    ACTIVITY_BATCH_FINISHED,
    ACTIVITY_BATCH_PAGE,
    ACTIVITY_DELIVER,
    ACTIVITY_FINISH,
    ACTIVITY_FINISH_MANY,
    ACTIVITY_PREPARE,
    ACTIVITY_PREPARE_MANY,
    ACTIVITY_PREPARE_PUSHED,
    ACTIVITY_RECORD_MANY,
    ACTIVITY_RECORD_SENT,
    ACTIVITY_SEND_MANY,
    CHANNEL_SEND_TIMEOUT,
    PERMANENT_DELIVERY_FAILURE,
    AttemptResult,
    BatchFinished,
    BatchPage,
    BatchPageRequest,
    DeliverAttempt,
    MessageFinished,
    MessageRequest,
    MessagesFinished,
    PreparedMany,
    PreparedMessage,
    PreparedPushed,
    PrepareMany,
    PrepareMessage,
    PreparePushed,
    SendLane,
    SendMany,
    SendOutcome,
    SentMany,
    SentReceipt,
    SentReceipts,
)
from core.db import SessionFactory, transaction
from core.logs import get_logger
from core.models import (
    AttemptStatus,
    BatchStatus,
    DeliveryReport,
    MessageAttempt,
    MessageBatch,
    MessageStatus,
    OutboundMessage,
    Patient,
    attempt_recipient_index,
    utcnow,
)
from messaging.categories import OPTIONAL_CATEGORIES
from messaging.channel import (
    DeliveryError,
    DeliveryReceipt,
    MessageChannel,
    OutgoingMessage,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from messaging.routing import channel_order
from services.message_status import (
    advance,
    another_send_unresolved,
    apply_pending_reports_of,
    claim_reported_send,
    locked_states,
    recipients_with_unresolved_sends,
)
from services.messages import (
    ComposeMemo,
    Composer,
    MessageRejected,
    message_by_key,
    outgoing,
)

log = get_logger(__name__)

# How long a new send waits, within one try, for another send to the same patient whose outcome
# is unknown (then the try is retried), and how old such a send may be and still be waited for:
# past a minute it has had its lost-answer retry, and is left to it.
_WAIT_FOR_OTHER_SEND = timedelta(seconds=10)
_OTHER_SEND_POLL_SECONDS = 0.2
_OTHER_SEND_FOR = timedelta(minutes=1)

# A single message's try gives up a little before its activity times out. Past that timeout the
# server has scheduled the retry, and this try never hears of it (it does not heartbeat): still
# waiting (for a connection, for another send to settle), it would send the message as well.
_TRY_LIMIT = CHANNEL_SEND_TIMEOUT - timedelta(seconds=2)


# Messages of one bulk send in flight at once, enough to hide the provider's round trip. First
# tries hold no database connection while they send.
_SEND_MANY_CONCURRENCY = 20


def _new_attempt(message_id: str, channel: str, draft: OutgoingMessage) -> MessageAttempt:
    """The send-log row of a message's first try on a channel, to its recipient there."""
    recipient = draft.openid if channel == "wechat" else draft.phone
    return MessageAttempt(message_id=message_id, channel=channel, recipient=recipient or "")


class _OtherSendUnresolved(Exception):
    pass


class _Pacer:
    """Spaces one process's sends on a channel to its rate. The server's limit on the bulk queue
    holds all workers to the same rate on average; this keeps one activity's sends from leaving
    in a burst."""

    def __init__(self, per_second: float) -> None:
        self._interval = 1.0 / per_second
        self._next = 0.0

    async def wait(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        slot = max(now, self._next)
        self._next = slot + self._interval
        if slot > now:
            await asyncio.sleep(slot - now)


@dataclass(frozen=True)
class _Reserved:
    draft: OutgoingMessage
    attempt_id: str
    at: datetime  # when the attempt was first reserved
    uncertain: bool  # an earlier try may have reached the provider
    refused_before: bool  # the last try was refused by the provider


_DONE = {MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.READ}


class MessagingActivities:
    def __init__(
        self,
        sessions: SessionFactory,
        composer: Composer,
        channels: Mapping[str, MessageChannel],
        enabled: Sequence[str],
        rates: Mapping[str, float | None] | None = None,
        try_limit: timedelta = _TRY_LIMIT,
    ) -> None:
        self._sessions = sessions
        self._try_limit = try_limit
        self._composer = composer
        self._channels = dict(channels)
        self._enabled = list(enabled)
        # One pacer per lane and channel: pushes are paced apart from a batch's sends.
        self._pacers = {
            (lane, name): _Pacer(rate)
            for name, rate in (rates or {}).items()
            if rate
            for lane in get_args(SendLane)
        }

    @activity.defn(name=ACTIVITY_PREPARE)
    async def prepare(self, prepare: PrepareMessage) -> PreparedMessage:
        async with transaction(self._sessions) as session:
            message = await message_by_key(session, prepare.request.key)
            return await self._prepare(session, prepare.request, prepare.now, message)

    @activity.defn(name=ACTIVITY_PREPARE_MANY)
    async def prepare_many(self, prepare: PrepareMany) -> PreparedMany:
        """A batch page in one transaction: all of it composed, or (on an error) none of it."""
        requests = prepare.all_requests()
        async with transaction(self._sessions) as session:
            # Read together, not one by one: the page's messages already made, and its patients.
            made = await session.exec(
                select(OutboundMessage).where(
                    col(OutboundMessage.idempotency_key).in_([r.key for r in requests])
                )
            )
            existing = {m.idempotency_key: m for m in made.all()}
            patients = await session.exec(
                select(Patient).where(col(Patient.id).in_({r.patient_id for r in requests}))
            )
            memo = ComposeMemo(patients={p.id: p for p in patients.all()})
            return PreparedMany(
                messages=[
                    await self._prepare(session, r, prepare.now, existing.get(r.key), memo)
                    for r in requests
                ]
            )

    @activity.defn(name=ACTIVITY_PREPARE_PUSHED)
    async def prepare_pushed(self, prepare: PreparePushed) -> PreparedPushed:
        """Messages the push API composed, routed together in one transaction."""
        async with transaction(self._sessions) as session:
            rows = await session.exec(
                select(OutboundMessage).where(col(OutboundMessage.id).in_(prepare.message_ids))
            )
            found = {m.id: m for m in rows.all()}
            patients = await session.exec(
                select(Patient).where(
                    col(Patient.id).in_({m.patient_id for m in found.values() if m.patient_id})
                )
            )
            memo = ComposeMemo(patients={p.id: p for p in patients.all()})
            return PreparedPushed(
                messages=[
                    await self._route(session, found[i], prepare.now, memo)
                    for i in prepare.message_ids
                    if i in found
                ],
                missing=[i for i in prepare.message_ids if i not in found],
            )

    async def _prepare(
        self,
        session: AsyncSession,
        request: MessageRequest,
        now: datetime,
        message: OutboundMessage | None,
        memo: ComposeMemo | None = None,
    ) -> PreparedMessage:
        """``message``: the one already made under the request's key, if any."""
        if message is None:
            try:
                message = await self._composer.compose(session, request, now, memo=memo)
            except MessageRejected as exc:
                log.warning("message refused", key=request.key, reason=str(exc))
                rejected = self._rejected(request, now, exc)
                session.add(rejected)
                return PreparedMessage(
                    message_id=rejected.id, status="failed", reason=rejected.failure_reason
                )
        return await self._route(session, message, now, memo)

    async def _route(
        self,
        session: AsyncSession,
        message: OutboundMessage,
        now: datetime,
        memo: ComposeMemo | None,
    ) -> PreparedMessage:
        """Where a composed message stands: done, refused, or ready with its channels in order."""
        if message.status in _DONE:
            return PreparedMessage(
                message_id=message.id,
                status="done",
                channel=message.channel,
                link_expires_at=message.link_expires_at,
            )
        if message.status in (MessageStatus.FAILED, MessageStatus.SUPPRESSED):
            return PreparedMessage(
                message_id=message.id,
                status="failed" if message.status == MessageStatus.FAILED else "suppressed",
                reason=message.failure_reason,
            )
        patient = await (memo or ComposeMemo()).patient(session, message.patient_id)
        if (
            patient is not None
            and message.category in OPTIONAL_CATEGORIES
            and message.category in patient.message_opt_outs
        ):
            message.status = MessageStatus.SUPPRESSED
            message.failure_reason = "患者已关闭此类消息"
            return PreparedMessage(
                message_id=message.id, status="suppressed", reason=message.failure_reason
            )

        draft = outgoing(message, patient.name if patient else None)
        unavailable = {}
        for name in self._enabled:
            channel = self._channels.get(name)
            reason = "渠道未配置" if channel is None else channel.unavailable_reason(draft)
            if reason:
                unavailable[name] = reason
        route = channel_order(
            enabled=self._enabled,
            preferred=patient.preferred_channel if patient else None,
            unavailable=unavailable,
        )
        if not route.channels:
            message.status = MessageStatus.FAILED
            message.failure_reason = "；".join(f"{c}: {r}" for c, r in route.skipped.items())
            return PreparedMessage(
                message_id=message.id,
                status="failed",
                skipped=route.skipped,
                reason=message.failure_reason,
            )

        # Re-checked now: a message composed earlier (by the push API) may be due already.
        not_before = message.not_before if message.not_before and message.not_before > now else None
        return PreparedMessage(
            message_id=message.id,
            status="ready",
            channels=route.channels,
            skipped=route.skipped,
            not_before=not_before,
            link_expires_at=message.link_expires_at,
        )

    @staticmethod
    def _rejected(request: MessageRequest, now: datetime, exc: MessageRejected) -> OutboundMessage:
        # A refused message is kept (failed, with the reason) so the send log shows it.
        return OutboundMessage(
            idempotency_key=request.key,
            category=request.category or "unknown",
            template=request.template,
            hospital_code=request.hospital_code,
            department_code=request.department_code,
            sender=request.sender,
            patient_id=None if exc.field == "to.patient_id" else request.patient_id,
            task_id=request.task_id,
            workflow_id=request.workflow_id,
            batch_id=request.batch_id,
            status=MessageStatus.FAILED,
            failure_reason=str(exc)[:500],
            scheduled_for=now,
        )

    @activity.defn(name=ACTIVITY_DELIVER)
    async def deliver(self, attempt: DeliverAttempt) -> AttemptResult:
        channel = self._channel(attempt.channel)
        limit = self._try_limit.total_seconds()
        try:
            async with asyncio.timeout(limit):
                result = await self._send(attempt, channel)
        except TimeoutError:
            # Left as a lost answer is: the retry asks the provider (or waits for its report)
            # before it sends again.
            raise ApplicationError(
                f"发送超时（{limit:g}秒）", type="TransientDeliveryFailure"
            ) from None
        if attempt.record:
            await self.record_sent(
                SentReceipt(
                    message_id=attempt.message_id,
                    channel=attempt.channel,
                    provider_message_id=result.provider_message_id,
                    provider_status=result.provider_status,
                    at=attempt.now,
                )
            )
        return result

    @activity.defn(name=ACTIVITY_SEND_MANY)
    async def send_many(self, send: SendMany) -> SentMany:
        """Each message as ``deliver`` sends it (reserved in the send log first, so a retry of
        this activity asks the provider before sending again), several at a time, paced to the
        channel's rate; the receipts are recorded by the workflow, as for one message.

        First tries are reserved together, in one transaction; a message tried before (its answer
        may have been lost) is reserved and reconciled on its own, as ``deliver`` does."""
        channel = self._channel(send.channel)
        pacer = self._pacers.get((send.lane, send.channel))
        slots = asyncio.Semaphore(_SEND_MANY_CONCURRENCY)
        first_tries = await self._reserve_first_tries(send, channel)
        loop = asyncio.get_running_loop()
        next_beat = 0.0

        def heartbeat() -> None:
            # Once a second is plenty against a 20-second heartbeat timeout.
            nonlocal next_beat
            if loop.time() >= next_beat:
                activity.heartbeat()
                next_beat = loop.time() + 1.0

        async def one(message_id: str) -> SendOutcome:
            async with slots:
                if pacer is not None:
                    await pacer.wait()
                try:
                    # A try's full timeout: this activity heartbeats, so no retry of the
                    # message starts while it runs (``deliver``'s tries stop short of theirs).
                    async with asyncio.timeout(CHANNEL_SEND_TIMEOUT.total_seconds()):
                        result = await self._send(
                            DeliverAttempt(
                                message_id=message_id,
                                channel=send.channel,
                                now=send.now,
                                record=False,
                            ),
                            channel,
                            first_tries.get(message_id),
                        )
                except ApplicationError as exc:
                    return SendOutcome(
                        message_id=message_id,
                        status="failed" if exc.non_retryable else "retry",
                        reason=exc.message,
                    )
                except TimeoutError:
                    return SendOutcome(
                        message_id=message_id,
                        status="retry",
                        reason=f"发送超时（{CHANNEL_SEND_TIMEOUT.total_seconds():g}秒）",
                    )
                except Exception as exc:  # noqa: BLE001 - one message's trouble is not the page's
                    # Its type only: the text of a database error may quote the row's values.
                    log.warning("bulk send failed", message_id=message_id, error=type(exc).__name__)
                    return SendOutcome(
                        message_id=message_id,
                        status="retry",
                        reason=f"发送出错（{type(exc).__name__}）",
                    )
                finally:
                    heartbeat()
                return SendOutcome(
                    message_id=message_id,
                    status="sent",
                    provider_message_id=result.provider_message_id,
                    provider_status=result.provider_status,
                )

        return SentMany(outcomes=list(await asyncio.gather(*map(one, send.message_ids))))

    def _channel(self, name: str) -> MessageChannel:
        channel = self._channels.get(name)
        if channel is None:
            raise ApplicationError(
                f"channel {name} is not configured on this worker",
                type=PERMANENT_DELIVERY_FAILURE,
                non_retryable=True,
            )
        return channel

    async def _send(
        self, attempt: DeliverAttempt, channel: MessageChannel, reserved: _Reserved | None = None
    ) -> AttemptResult:
        """One try on one channel: reserved here unless the caller has (a bulk first try)."""
        if reserved is None:
            found = await self._reserve_waiting(attempt, channel)
            if isinstance(found, AttemptResult):
                return found
            reserved = found

        try:
            receipt: DeliveryReceipt | None = None
            if reserved.uncertain and channel.reports_sends_within is not None:
                receipt = await self._reported_send(
                    reserved.attempt_id,
                    reserved.at,
                    channel,
                    may_wait=not reserved.refused_before,
                )
            elif reserved.uncertain:
                receipt = await channel.find_sent(reserved.draft, reserved.at)
            if receipt is None:
                receipt = await channel.deliver(reserved.draft)
        except DeliveryError as exc:
            await self._attempt_error(reserved.attempt_id, exc, attempt.now)
            permanent = isinstance(exc, PermanentDeliveryError)
            raise ApplicationError(
                exc.reason,
                type=PERMANENT_DELIVERY_FAILURE if permanent else "TransientDeliveryFailure",
                non_retryable=permanent,
            ) from exc

        return AttemptResult(
            channel=attempt.channel,
            provider_message_id=receipt.provider_message_id,
            provider_status=receipt.provider_status,
        )

    async def _reserve_waiting(
        self, attempt: DeliverAttempt, channel: MessageChannel
    ) -> _Reserved | AttemptResult:
        waiting_until = utcnow() + _WAIT_FOR_OTHER_SEND
        while True:
            try:
                return await self._reserve(attempt, channel)
            except _OtherSendUnresolved:
                if utcnow() >= waiting_until:
                    raise ApplicationError(
                        f"等待该患者上一条{channel.name}消息的发送结果",
                        type="TransientDeliveryFailure",
                    ) from None
                activity.heartbeat()
                await asyncio.sleep(_OTHER_SEND_POLL_SECONDS)

    async def _reserve_first_tries(
        self, send: SendMany, channel: MessageChannel
    ) -> dict[str, _Reserved]:
        """Reserves, in one transaction, the messages of a bulk send never tried on its channel:
        what ``_reserve`` does for each, without its per-message round trips. The others are
        left to ``_reserve``: those tried before, and, on a channel whose sends wait for the
        patient's unresolved ones, those to a patient with such a send (or with another message
        in this send, which must wait for the first)."""
        ids = sorted(send.message_ids)  # locked in one order, as everywhere
        async with transaction(self._sessions) as session:
            found = await session.exec(
                select(OutboundMessage)
                .where(col(OutboundMessage.id).in_(ids))
                .order_by(col(OutboundMessage.id))
                .with_for_update()
            )
            messages = {m.id: m for m in found.all()}
            tried = await session.exec(
                select(MessageAttempt.message_id).where(
                    col(MessageAttempt.message_id).in_(ids), MessageAttempt.channel == send.channel
                )
            )
            tried_before = set(tried.all())
            fresh = [messages[i] for i in ids if i in messages and i not in tried_before]
            named = await session.exec(
                select(Patient.id, Patient.name).where(
                    col(Patient.id).in_({m.patient_id for m in fresh if m.patient_id})
                )
            )
            names = dict(named.all())
            rows = []
            for message in fresh:
                draft = outgoing(message, names.get(message.patient_id or ""))
                rows.append((message, draft, _new_attempt(message.id, send.channel, draft)))
            if channel.reports_sends_within is not None:
                rows = await self._free_recipients(session, send.channel, rows)
            reserved: dict[str, _Reserved] = {}
            for message, draft, row in rows:
                row.tries, row.updated_at = 1, send.now
                session.add(row)
                advance(message, MessageStatus.SENDING, send.now)
                reserved[message.id] = _Reserved(draft, row.id, row.created_at, False, False)
        return reserved

    @staticmethod
    async def _free_recipients(
        session: AsyncSession,
        channel: str,
        rows: list[tuple[OutboundMessage, OutgoingMessage, MessageAttempt]],
    ) -> list[tuple[OutboundMessage, OutgoingMessage, MessageAttempt]]:
        """Of new sends on a channel that reports its sends, those that need not wait: no other
        send to their recipient is unresolved (the check ``_reserve`` makes for one), nor comes
        before them in this bulk send. Their recipients stay locked until the reservation
        commits, so a send starting elsewhere meanwhile sees theirs."""
        indexes = [attempt_recipient_index(channel, row.recipient) for *_, row in rows]
        busy = await recipients_with_unresolved_sends(
            session, channel, {i for i in indexes if i}, utcnow() - _OTHER_SEND_FOR
        )
        free = []
        for (message, draft, row), index in zip(rows, indexes, strict=True):
            if index is not None:
                if index in busy:
                    continue
                busy.add(index)
            free.append((message, draft, row))
        return free

    async def _reserve(
        self, attempt: DeliverAttempt, channel: MessageChannel
    ) -> _Reserved | AttemptResult:
        """Reserves this try in the send log before the provider is called: the result if an
        earlier try was recorded as sent, else what the try needs to know of the ones before."""
        async with transaction(self._sessions) as session:
            message = await session.get(OutboundMessage, attempt.message_id, with_for_update=True)
            if message is None:
                raise LookupError(f"message {attempt.message_id} vanished")
            patient = await session.get(Patient, message.patient_id) if message.patient_id else None
            draft = outgoing(message, patient.name if patient else None)
            found = await session.exec(
                select(MessageAttempt).where(
                    MessageAttempt.message_id == message.id,
                    MessageAttempt.channel == attempt.channel,
                )
            )
            row = found.first()
            if row is None:
                row = _new_attempt(message.id, attempt.channel, draft)
                session.add(row)
                await session.flush()  # its recipient's blind index, for the wait below
            # Sent, or still 'sending' with the provider's id: an earlier try claimed the report
            # of its send (claim_reported_send) and died before the receipt was recorded. That
            # try's claim is this one's answer; asked again, the claim would not see its own
            # report as unclaimed, and the message would go out twice.
            if row.provider_message_id is not None and row.status != AttemptStatus.FAILED:
                return AttemptResult(
                    channel=attempt.channel, provider_message_id=row.provider_message_id
                )
            if row.status == AttemptStatus.FAILED:
                raise ApplicationError(
                    row.error_message or "failed before",
                    type=PERMANENT_DELIVERY_FAILURE,
                    non_retryable=True,
                )
            # A try before this one may have reached the provider and died before we recorded it;
            # one that ended with the provider's own error code was refused, not sent.
            uncertain = row.tries > 0
            refused_before = row.error_code is not None
            # A try that will send afresh, on a channel whose lost answers are settled by its
            # reports, waits while another send to the patient is unresolved (rolled back, so
            # it reserved nothing).
            if (
                channel.reports_sends_within is not None
                and (refused_before or not uncertain)
                and await another_send_unresolved(session, row, utcnow() - _OTHER_SEND_FOR)
            ):
                raise _OtherSendUnresolved
            row.error_code = None  # until this try ends
            row.tries += 1
            row.updated_at = attempt.now
            advance(message, MessageStatus.SENDING, attempt.now)
            await session.flush()
            return _Reserved(draft, row.id, row.created_at, uncertain, refused_before)

    @activity.defn(name=ACTIVITY_RECORD_SENT)
    async def record_sent(self, receipt: SentReceipt) -> None:
        """Writes the provider's receipt into the send log. Idempotent, and retried on its own:
        the message has left, so nothing here may send it again."""
        await self.record_many(SentReceipts(receipts=[receipt]))

    @activity.defn(name=ACTIVITY_RECORD_MANY)
    async def record_many(self, sent: SentReceipts) -> None:
        """Many receipts in one transaction: attempts, then messages, each locked in id order
        (as a single receipt or a delivery report locks them), so none of these waits on
        another's rows in a cycle."""
        ids = sorted({r.message_id for r in sent.receipts})
        async with transaction(self._sessions) as session:
            found = await session.exec(
                select(MessageAttempt)
                .where(col(MessageAttempt.message_id).in_(ids))
                .order_by(col(MessageAttempt.message_id), col(MessageAttempt.channel))
                .with_for_update()
            )
            attempts = {(a.message_id, a.channel): a for a in found.all()}
            locked = await session.exec(locked_states(ids))
            messages = {m.id: m for m in locked.all()}
            for receipt in sent.receipts:
                row = attempts.get((receipt.message_id, receipt.channel))
                message = messages.get(receipt.message_id)
                if row is None or message is None:
                    raise LookupError(
                        f"message {receipt.message_id} has no {receipt.channel} attempt"
                    )
                self._record(row, message, receipt)
        # The provider may have reported on these messages before we committed their ids;
        # applied in a second transaction, after the ids are visible
        # (see services.delivery_reports).
        async with transaction(self._sessions) as session:
            reported = await session.exec(
                select(DeliveryReport.channel, DeliveryReport.provider_message_id)
                .where(
                    col(DeliveryReport.provider_message_id).in_(
                        {r.provider_message_id for r in sent.receipts}
                    ),
                    col(DeliveryReport.applied_at).is_(None),
                )
                .distinct()
            )
            recorded = {(r.channel, r.provider_message_id) for r in sent.receipts}
            await apply_pending_reports_of(
                session, recorded & set(reported.all()), max(r.at for r in sent.receipts)
            )

    @staticmethod
    def _record(row: MessageAttempt, message: OutboundMessage, receipt: SentReceipt) -> None:
        if row.status == AttemptStatus.SENDING:
            row.status = AttemptStatus.SENT
            row.provider_message_id = receipt.provider_message_id
            row.provider_status = receipt.provider_status
            row.error_code = row.error_message = None
            row.updated_at = receipt.at
        if message.channel is None:
            message.channel = receipt.channel
            message.sent_at = receipt.at
        advance(message, MessageStatus.SENT, receipt.at)

    async def _reported_send(
        self, attempt_id: str, reserved_at: datetime, channel: MessageChannel, *, may_wait: bool
    ) -> DeliveryReceipt | None:
        """After a try whose answer was lost, on a channel that reports its sends to us: the
        report of that send, if it has come. Until it could have come, the try is retried later
        rather than the message sent again (unless the last try was refused outright, so the
        one before it has had its time); after that, it is sent again (the report may have been
        lost too, and a message sent twice beats one never sent)."""
        assert channel.reports_sends_within is not None
        async with transaction(self._sessions) as session:
            row = await session.get(MessageAttempt, attempt_id, with_for_update=True)
            assert row is not None
            report = await claim_reported_send(session, row)
        if report is not None:
            log.warning(
                "send reported by the provider after an interrupted try; not sending again",
                attempt_id=attempt_id,
                provider_message_id=report.provider_message_id,
            )
            return DeliveryReceipt(report.provider_message_id, report.provider_status)
        if may_wait and utcnow() < reserved_at + channel.reports_sends_within:
            raise TransientDeliveryError(f"等待{channel.name}的发送报告（上次发送结果未知）")
        return None

    async def _attempt_error(self, attempt_id: str, exc: DeliveryError, at: datetime) -> None:
        async with transaction(self._sessions) as session:
            row = await session.get(MessageAttempt, attempt_id, with_for_update=True)
            assert row is not None
            row.error_code = exc.code
            row.error_message = exc.reason[:500]
            row.updated_at = at
            if isinstance(exc, PermanentDeliveryError):
                row.status = AttemptStatus.FAILED
        log.warning("delivery attempt failed", attempt_id=attempt_id, reason=exc.reason)

    @activity.defn(name=ACTIVITY_FINISH)
    async def finish(self, finished: MessageFinished) -> None:
        await self.finish_many(MessagesFinished(finished=[finished]))

    @activity.defn(name=ACTIVITY_FINISH_MANY)
    async def finish_many(self, many: MessagesFinished) -> None:
        async with transaction(self._sessions) as session:
            for finished in sorted(many.finished, key=lambda f: f.message_id):
                await self._finish(session, finished)

    @staticmethod
    async def _finish(session: AsyncSession, finished: MessageFinished) -> None:
        message = await session.get(OutboundMessage, finished.message_id, with_for_update=True)
        if message is None:
            raise LookupError(f"message {finished.message_id} vanished")
        attempts = await session.exec(
            select(MessageAttempt).where(MessageAttempt.message_id == message.id)
        )
        for row in attempts.all():
            if row.channel in finished.failures and row.status == AttemptStatus.SENDING:
                row.status = AttemptStatus.FAILED
                row.error_message = (row.error_message or finished.failures[row.channel])[:500]
                row.updated_at = finished.at
        if finished.status == "sent":
            message.channel = message.channel or finished.channel
            message.sent_at = message.sent_at or finished.sent_at or finished.at
            advance(message, MessageStatus.SENT, finished.at)
        elif message.status not in _DONE:
            message.status = MessageStatus.FAILED
            message.failure_reason = (finished.reason or "")[:500]
            message.updated_at = finished.at

    @activity.defn(name=ACTIVITY_BATCH_PAGE)
    async def batch_page(self, page: BatchPageRequest) -> BatchPage:
        async with self._sessions() as session:
            batch = await session.get(MessageBatch, page.batch_id)
            if batch is None:
                raise LookupError(f"batch {page.batch_id} vanished")
            return BatchPage(patient_ids=batch.recipients[page.offset : page.offset + page.limit])

    @activity.defn(name=ACTIVITY_BATCH_FINISHED)
    async def batch_finished(self, finished: BatchFinished) -> None:
        async with transaction(self._sessions) as session:
            batch = await session.get(MessageBatch, finished.batch_id, with_for_update=True)
            if batch is None:
                raise LookupError(f"batch {finished.batch_id} vanished")
            if batch.status != BatchStatus.COMPLETED:
                batch.status = BatchStatus.COMPLETED
                batch.finished_at = finished.at
