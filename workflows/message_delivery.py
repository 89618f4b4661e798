"""One logical message to one patient: route it, hold it through quiet hours, try each channel
in order (WeChat, SMS, outbox, the patient's preferred one first), and record the outcome.

``deliver_message`` is those steps, run inside whichever workflow needs the message. A pathway
run sends its own messages with it (issue 15: a child workflow per due message cost the Temporal
server a new execution, its visibility record and three more workflow tasks of the parent, more
than the send itself). Other workflows' notices start the ``MessageDelivery`` workflow, whose id
is derived from the message's idempotency key, so a retried caller can never send the same message
twice (pushes go through ``workflows/push_outbox.py`` instead; those accepted before it, and
batches started before bulk sends, still run here). Either way the send log is keyed by that key: a
step run again (a replay, a reset) finds the message already sent and does not send it again.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from contracts.messages import (
        ACTIVITY_DELIVER,
        ACTIVITY_FINISH,
        ACTIVITY_PREPARE,
        ACTIVITY_RECORD_SENT,
        DELIVERY_WORKFLOW,
        QUERY_DELIVERY,
        AttemptResult,
        DeliverAttempt,
        DeliveryOutcome,
        DeliveryProgress,
        MessageFinished,
        MessageRequest,
        PreparedMessage,
        PrepareMessage,
        SentReceipt,
        channel_task_queue,
    )
    from workflows.local_steps import local_step
    from workflows.retries import CHANNEL_SEND_RETRY, CHANNEL_SEND_TIMEOUT


RECORD_AFTER_SEND = "record-after-send"


def _reason(err: ActivityError) -> str:
    cause = err.cause
    while isinstance(cause, ActivityError):  # pragma: no cover - defensive
        cause = cause.cause
    if isinstance(cause, ApplicationError):
        return cause.message
    return str(cause or err)


async def deliver_message(
    request: MessageRequest, progress: Callable[..., None] = lambda **_: None
) -> DeliveryOutcome:
    """Sends one message from the calling workflow; ``progress`` hears each change of state."""
    prepared: PreparedMessage = await local_step(
        ACTIVITY_PREPARE,
        PrepareMessage(request=request, now=workflow.now()),
        result_type=PreparedMessage,
    )
    progress(message_id=prepared.message_id)
    if prepared.status != "ready":
        return DeliveryOutcome(
            message_id=prepared.message_id,
            status="sent" if prepared.status == "done" else prepared.status,
            channel=prepared.channel,
            reason=prepared.reason,
            link_expires_at=prepared.link_expires_at,
        )

    if prepared.not_before is not None and prepared.not_before > workflow.now():
        progress(state="scheduled", not_before=prepared.not_before)
        await workflow.sleep(prepared.not_before - workflow.now())

    failures = dict(prepared.skipped)
    base_queue = workflow.info().task_queue
    for channel in prepared.channels:
        progress(state="sending", channel=channel)
        attempt_at = workflow.now()
        # Runs started before this split send and record in one activity; a failure to
        # record then retried the send too (one invitation went out five times).
        separate_record = workflow.patched(RECORD_AFTER_SEND)
        try:
            sent: AttemptResult = await workflow.execute_activity(
                ACTIVITY_DELIVER,
                DeliverAttempt(
                    message_id=prepared.message_id,
                    channel=channel,
                    now=attempt_at,
                    record=not separate_record,
                ),
                result_type=AttemptResult,
                task_queue=channel_task_queue(base_queue, channel),
                start_to_close_timeout=CHANNEL_SEND_TIMEOUT,
                retry_policy=CHANNEL_SEND_RETRY,
            )
        except ActivityError as err:
            failures[channel] = _reason(err)
            workflow.logger.info("channel %s failed, falling back: %s", channel, err)
            continue
        if separate_record:
            await local_step(
                ACTIVITY_RECORD_SENT,
                SentReceipt(
                    message_id=prepared.message_id,
                    channel=channel,
                    provider_message_id=sent.provider_message_id,
                    provider_status=sent.provider_status,
                    at=attempt_at,
                ),
            )
        return await _record(
            MessageFinished(
                message_id=prepared.message_id,
                status="sent",
                channel=channel,
                reason=None,
                failures=failures,
                at=workflow.now(),
                sent_at=attempt_at,
            ),
            prepared.link_expires_at,
        )
    reason = "；".join(f"{c}: {r}" for c, r in failures.items()) or "没有可用的发送渠道"
    return await _record(
        MessageFinished(
            message_id=prepared.message_id,
            status="failed",
            channel=None,
            reason=reason[:500],
            failures=failures,
            at=workflow.now(),
        ),
        prepared.link_expires_at,
    )


async def _record(finished: MessageFinished, link_expires_at: datetime | None) -> DeliveryOutcome:
    # The deliver activity has recorded a clean first-channel send itself; only failures and
    # fallbacks need the send log updated here.
    if finished.status != "sent" or finished.failures:
        await local_step(ACTIVITY_FINISH, finished)
    return DeliveryOutcome(
        message_id=finished.message_id,
        status=finished.status,
        channel=finished.channel,
        reason=finished.reason,
        sent_at=finished.sent_at,
        link_expires_at=link_expires_at,
    )


@workflow.defn(name=DELIVERY_WORKFLOW)
class MessageDeliveryWorkflow:
    def __init__(self) -> None:
        self._progress = DeliveryProgress(
            message_id=None, state="preparing", not_before=None, channel=None, outcome=None
        )

    @workflow.run
    async def run(self, request: MessageRequest) -> DeliveryOutcome:
        outcome = await deliver_message(request, self._set)
        self._set(state="finished", outcome=outcome)
        return outcome

    @workflow.query(name=QUERY_DELIVERY)
    def delivery(self) -> DeliveryProgress:
        return self._progress

    def _set(self, **changes: object) -> None:
        self._progress = self._progress.model_copy(update=changes)
