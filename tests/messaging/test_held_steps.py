"""Send-log writes run as local activities inside the workflow task that asks for them (issue 15).
One that waits on the database longer than the task may take must keep the task alive, not let
it time out and run the step, and maybe the send, a second time."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import select
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from contracts.messages import (
    DELIVERY_WORKFLOW,
    DeliveryOutcome,
    MessageRequest,
    delivery_workflow_id,
)
from core.models import MessageAttempt, OutboundMessage
from harness.waiting import eventually
from tests.messaging.conftest import NOTICE, StackFactory

TASK_TIMEOUT = timedelta(seconds=2)


async def _events(handle: WorkflowHandle[object, DeliveryOutcome]) -> list[HistoryEvent]:
    return [event async for event in handle.fetch_history_events()]


def _count(events: list[HistoryEvent], kind: EventType.ValueType) -> int:
    return sum(event.event_type == kind for event in events)


def _steps_recorded(events: list[HistoryEvent]) -> int:
    """Local activities that have ended (the SDK's markers; a patch leaves one of its own)."""
    return sum(
        event.marker_recorded_event_attributes.marker_name == "core_local_activity"
        for event in events
    )


async def test_a_send_log_write_held_past_the_task_timeout_sends_the_message_once(
    dev_env: WorkflowEnvironment, messaging_stack: StackFactory
) -> None:
    async with messaging_stack(dev_env, channels="sms") as stack, stack.workers():
        patient = await stack.patient()
        key = f"held-{patient.id}"
        request = MessageRequest(
            key=key, template="notice_generic", patient_id=patient.id, variables=NOTICE
        )
        async with stack.sessions() as blocker:
            # What a long vacuum or a bulk import does to the send log: its rows can be read but
            # not added to, so the first step (which stores the message) waits.
            connection = await blocker.connection()
            await connection.exec_driver_sql("LOCK TABLE outbound_message IN SHARE MODE")
            handle: WorkflowHandle[object, DeliveryOutcome] = await dev_env.client.start_workflow(
                DELIVERY_WORKFLOW,
                request,
                id=delivery_workflow_id(key),
                task_queue=stack.settings.temporal_task_queue,
                task_timeout=TASK_TIMEOUT,
                result_type=DeliveryOutcome,
            )

            async def kept_alive_twice() -> bool:
                # The worker answers its task before the timeout and asks for a new one while
                # the step goes on; nothing is recorded of the step until it ends.
                events = await _events(handle)
                completed = _count(events, EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)
                assert _steps_recorded(events) == 0
                return completed >= 2

            await eventually(kept_alive_twice, within=30, what="the held task kept alive")
            await blocker.rollback()
        outcome = await handle.result()
        events = await _events(handle)

    assert outcome.status == "sent"
    assert len(stack.twilio.messages) == 1
    # Longer than the task may take, and the task neither timed out nor failed.
    held = events[-1].event_time.ToDatetime() - events[0].event_time.ToDatetime()
    assert held > TASK_TIMEOUT
    assert _count(events, EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT) == 0
    assert _count(events, EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED) == 0
    async with stack.sessions() as session:
        messages = (
            await session.exec(
                select(OutboundMessage).where(OutboundMessage.idempotency_key == key)
            )
        ).all()
        assert len(messages) == 1
        assert messages[0].status in ("sent", "delivered")  # the simulator reports delivery
        attempts = (
            await session.exec(
                select(MessageAttempt).where(MessageAttempt.message_id == messages[0].id)
            )
        ).all()
    assert [(a.channel, a.tries) for a in attempts] == [("sms", 1)]  # one try: sent once
