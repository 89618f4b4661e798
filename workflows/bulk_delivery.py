"""Prepared messages sent many per activity, from inside the workflow that owns them: a batch's
pages, and the pushes an outbox gathers.

Each message is the same logical message a MessageDelivery workflow sends: tried on its channels
in the patient's order, a transient failure tried again on CHANNEL_SEND_RETRY's schedule, the next
channel after a permanent one, failed when none is left. Messages due together on one channel go
in one activity of up to BULK_SEND_SIZE; the send log (reserved before each try) keeps a step run
again from sending anything twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts.messages import (
        ACTIVITY_FINISH_MANY,
        ACTIVITY_RECORD_MANY,
        ACTIVITY_SEND_MANY,
        BULK_SEND_SIZE,
        MessageFinished,
        MessagesFinished,
        PreparedMessage,
        SendLane,
        SendMany,
        SendOutcome,
        SentMany,
        SentReceipt,
        SentReceipts,
        channel_bulk_task_queue,
        channel_task_queue,
    )
    from workflows.local_steps import database_activity
    from workflows.retries import (
        BULK_SEND_HEARTBEAT,
        BULK_SEND_RETRY,
        BULK_SEND_TIMEOUT,
        CHANNEL_SEND_RETRY,
    )


@dataclass
class _Pending:
    """A message not yet sent: the channels left to try, in order, and how it has fared so far."""

    channels: list[str]
    failures: dict[str, str]
    tries: int = 0  # transient failures on the current channel
    due: datetime | None = None  # when the next try may go


@dataclass
class _Round:
    receipts: list[SentReceipt] = field(default_factory=list)
    finished: list[MessageFinished] = field(default_factory=list)


class BulkDelivery:
    """``count`` hears each message's end ("sent" or "failed"); ``lane`` says which channel
    queues carry the sends (see ``SendLane``)."""

    def __init__(self, count: Callable[[str], None], lane: SendLane = "bulk") -> None:
        self._count = count
        self._lane: SendLane = lane

    async def deliver(self, ready: list[PreparedMessage]) -> None:
        pending = {
            m.message_id: _Pending(channels=list(m.channels), failures=dict(m.skipped))
            for m in ready
        }
        while pending:
            now = workflow.now()
            due = [(i, p) for i, p in pending.items() if p.due is None or p.due <= now]
            if not due:
                await workflow.sleep(min(p.due for p in pending.values() if p.due) - now)
                continue
            by_channel: dict[str, list[str]] = {}
            for message_id, state in due:
                by_channel.setdefault(state.channels[0], []).append(message_id)
            sends = [
                (channel, ids[n : n + BULK_SEND_SIZE])
                for channel, ids in by_channel.items()
                for n in range(0, len(ids), BULK_SEND_SIZE)
            ]
            results = await asyncio.gather(*(self._send(c, ids, now) for c, ids in sends))
            done = _Round()
            for (channel, _), sent in zip(sends, results, strict=True):
                for outcome in sent.outcomes:
                    self._settle(pending, channel, outcome, now, done)
            if done.receipts:
                await database_activity(ACTIVITY_RECORD_MANY, SentReceipts(receipts=done.receipts))
            if done.finished:
                await database_activity(
                    ACTIVITY_FINISH_MANY, MessagesFinished(finished=done.finished)
                )

    async def _send(self, channel: str, message_ids: list[str], now: datetime) -> SentMany:
        queue = channel_task_queue if self._lane == "single" else channel_bulk_task_queue
        result: SentMany = await workflow.execute_activity(
            ACTIVITY_SEND_MANY,
            SendMany(channel=channel, message_ids=message_ids, now=now, lane=self._lane),
            result_type=SentMany,
            task_queue=queue(workflow.info().task_queue, channel),
            start_to_close_timeout=BULK_SEND_TIMEOUT,
            heartbeat_timeout=BULK_SEND_HEARTBEAT,
            retry_policy=BULK_SEND_RETRY,
        )
        return result

    def _settle(
        self,
        pending: dict[str, _Pending],
        channel: str,
        outcome: SendOutcome,
        attempted_at: datetime,
        done: _Round,
    ) -> None:
        """One message's answer from its channel: sent, tried again later (as a single message's
        retry policy would), or on to its next channel, failed when none is left."""
        state = pending[outcome.message_id]
        if outcome.status == "sent":
            assert outcome.provider_message_id is not None
            del pending[outcome.message_id]
            self._count("sent")
            done.receipts.append(
                SentReceipt(
                    message_id=outcome.message_id,
                    channel=channel,
                    provider_message_id=outcome.provider_message_id,
                    provider_status=outcome.provider_status,
                    at=attempted_at,
                )
            )
            if state.failures:  # the send log marks the channels that failed before
                done.finished.append(
                    MessageFinished(
                        message_id=outcome.message_id,
                        status="sent",
                        channel=channel,
                        reason=None,
                        failures=state.failures,
                        at=workflow.now(),
                        sent_at=attempted_at,
                    )
                )
            return
        state.tries += 1
        if outcome.status == "retry" and state.tries < _MAX_TRIES:
            state.due = workflow.now() + _retry_after(state.tries)
            return
        state.failures[channel] = outcome.reason or "发送失败"
        state.channels.pop(0)
        state.tries, state.due = 0, None
        if state.channels:
            return
        del pending[outcome.message_id]
        self._count("failed")
        reason = "；".join(f"{c}: {r}" for c, r in state.failures.items())
        done.finished.append(
            MessageFinished(
                message_id=outcome.message_id,
                status="failed",
                channel=None,
                reason=reason[:500],
                failures=state.failures,
                at=workflow.now(),
            )
        )


_MAX_TRIES = CHANNEL_SEND_RETRY.maximum_attempts


def _retry_after(tries: int) -> timedelta:
    """CHANNEL_SEND_RETRY's schedule: the wait before the try after ``tries`` failed ones."""
    policy = CHANNEL_SEND_RETRY
    wait = policy.initial_interval * policy.backoff_coefficient ** (tries - 1)
    return min(wait, policy.maximum_interval or wait)
