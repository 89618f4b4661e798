"""What time does to messages, under the time-skipping server: quiet hours hold non-urgent
messages until morning (in a delivery workflow or in a push's outbox) while urgent ones go at
once, and a failing channel is retried with backoff before the next one is tried."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlmodel import select
from temporalio.testing import WorkflowEnvironment

from contracts.messages import (
    DELIVERY_WORKFLOW,
    PUSH_OUTBOX_WORKFLOW,
    QUERY_OUTBOX,
    SIGNAL_PUSHED,
    DeliveryOutcome,
    MessageRequest,
    OutboxInput,
    OutboxProgress,
    Pushed,
    delivery_workflow_id,
    push_outbox_id,
)
from core.db import transaction
from core.models import OutboundMessage
from harness.waiting import eventually
from simulators.wechat.app import Faults as WeChatFaults
from tests.factories import BEIJING
from tests.messaging.conftest import NOTICE, Stack, StackFactory


async def _sleep_until_local(env: WorkflowEnvironment, hour: int, minute: int = 0) -> datetime:
    """Skips the test server's clock forward to the next hh:mm in Beijing."""
    now = await env.get_current_time()
    local = now.astimezone(BEIJING)
    target = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if target <= local:
        target += timedelta(days=1)
    await env.sleep(target - local)
    return await env.get_current_time()


async def _send(env: WorkflowEnvironment, queue: str, request: MessageRequest) -> DeliveryOutcome:
    outcome: DeliveryOutcome = await env.client.execute_workflow(
        DELIVERY_WORKFLOW,
        request,
        id=delivery_workflow_id(request.key),
        task_queue=queue,
        result_type=DeliveryOutcome,
    )
    return outcome


async def test_quiet_hours_hold_a_notice_until_seven_but_not_a_critical_value(
    time_env: WorkflowEnvironment, messaging_stack: StackFactory
) -> None:
    async with messaging_stack(time_env, channels="sms", quiet_hours=True) as stack:
        patient = await stack.patient()
        queue = stack.settings.temporal_task_queue

        async def start(key: str, template: str, variables: dict[str, str]) -> Any:
            request = MessageRequest(
                key=key, template=template, patient_id=patient.id, variables=variables
            )
            return await time_env.client.start_workflow(
                DELIVERY_WORKFLOW,
                request,
                id=delivery_workflow_id(key),
                task_queue=queue,
                result_type=DeliveryOutcome,
            )

        async with stack.workers():
            late_evening = await _sleep_until_local(time_env, 23, 0)
            # The clock moves only when this test moves it: no jumps to other tests' timers.
            with time_env.auto_time_skipping_disabled():
                critical_run = await start(
                    f"critical-{patient.id}",
                    "critical_value",
                    {"item": "血钾 6.8 mmol/L", "advice": "请立即到急诊就诊"},
                )
                notice_run = await start(f"notice-{patient.id}", "notice_generic", NOTICE)
                critical: DeliveryOutcome = await critical_run.result()
                notice_id = await _message_id(stack, f"notice-{patient.id}")
                held = await stack.wait_status(notice_id, "scheduled")
                assert len(stack.twilio.messages) == 1
            await time_env.sleep(timedelta(hours=8, seconds=1))  # to 07:00:01
            with time_env.auto_time_skipping_disabled():
                notice: DeliveryOutcome = await notice_run.result()

    assert critical.status == "sent"
    assert critical.sent_at is not None
    assert critical.sent_at - late_evening < timedelta(seconds=5)
    assert held.not_before is not None
    seven = held.not_before.astimezone(BEIJING)
    assert (seven.hour, seven.minute, seven.second) == (7, 0, 0)
    assert seven.date() == (late_evening.astimezone(BEIJING) + timedelta(days=1)).date()
    assert notice.status == "sent"
    assert notice.sent_at is not None
    assert held.not_before <= notice.sent_at < held.not_before + timedelta(seconds=5)
    assert len(stack.twilio.messages) == 2


async def _message_id(stack: Stack, key: str) -> str:
    async def probe() -> str | None:
        async with stack.sessions() as session:
            found = await session.exec(
                select(OutboundMessage.id).where(OutboundMessage.idempotency_key == key)
            )
            return found.first()

    return await eventually(probe, what=f"message {key}")


async def test_transient_wechat_errors_are_retried_with_backoff_then_sms_takes_over(
    time_env: WorkflowEnvironment, messaging_stack: StackFactory
) -> None:
    async with messaging_stack(time_env) as stack:
        stack.wechat.faults = WeChatFaults(fail_next=100)  # "system busy" every time
        patient = await stack.patient(openid="oBusy000001")
        async with stack.workers():
            started = await time_env.get_current_time()
            outcome = await _send(
                time_env,
                stack.settings.temporal_task_queue,
                MessageRequest(
                    key=f"busy-{patient.id}",
                    template="notice_generic",
                    patient_id=patient.id,
                    variables=NOTICE,
                ),
            )

    assert outcome.status == "sent"
    assert outcome.channel == "sms"
    attempts = await stack.attempts(outcome.message_id or "")
    assert attempts["wechat"].tries == 8
    assert attempts["wechat"].status == "failed"
    assert attempts["wechat"].error_code == "-1"
    # Backoff 2 + 4 + 8 + 16 + 30 + 30 + 30 s between the eight tries, then SMS.
    assert outcome.sent_at is not None
    assert outcome.sent_at - started >= timedelta(seconds=120)
    assert stack.wechat.faults.fail_next == 92


async def test_a_push_at_night_waits_in_its_outbox_until_seven_but_a_critical_value_goes_at_once(
    time_env: WorkflowEnvironment, messaging_stack: StackFactory
) -> None:
    async with messaging_stack(time_env, channels="sms", quiet_hours=True) as stack:
        patient = await stack.patient()
        queue = stack.settings.temporal_task_queue

        async def push(key: str, template: str, variables: dict[str, str]) -> str:
            # As the push API does it, at the test server's time rather than the wall clock's.
            async with transaction(stack.sessions) as session:
                request = MessageRequest(
                    key=key, template=template, patient_id=patient.id, variables=variables
                )
                now = await time_env.get_current_time()
                message = await stack.composer.compose(session, request, now=now)
                await session.flush()
                await time_env.client.start_workflow(
                    PUSH_OUTBOX_WORKFLOW,
                    OutboxInput(),
                    id=push_outbox_id(queue, key),
                    task_queue=queue,
                    start_signal=SIGNAL_PUSHED,
                    start_signal_args=[Pushed(message_ids=[message.id])],
                )
                return message.id

        async with stack.workers():
            late_evening = await _sleep_until_local(time_env, 23, 0)
            with time_env.auto_time_skipping_disabled():
                critical_id = await push(
                    "night-critical",
                    "critical_value",
                    {"item": "血钾 6.8 mmol/L", "advice": "请立即到急诊就诊"},
                )
                notice_id = await push("night-notice", "notice_generic", NOTICE)
                urgent = await stack.wait_status(critical_id, "delivered")

                async def held_in_outbox() -> bool:
                    handle = time_env.client.get_workflow_handle(
                        push_outbox_id(queue, "night-notice")
                    )
                    progress: OutboxProgress = await handle.query(
                        QUERY_OUTBOX, result_type=OutboxProgress
                    )
                    return progress.held == 1

                await eventually(held_in_outbox, what="the notice to wait in its outbox")
                held = await stack.message(notice_id)
                assert held.status == "scheduled"
                assert len(stack.twilio.messages) == 1
            await time_env.sleep(timedelta(hours=8, seconds=1))  # to 07:00:01
            with time_env.auto_time_skipping_disabled():
                sent = await stack.wait_status(notice_id, "delivered")

    assert urgent.sent_at is not None
    assert urgent.sent_at - late_evening < timedelta(seconds=5)
    assert held.not_before is not None
    seven = held.not_before.astimezone(BEIJING)
    assert (seven.hour, seven.minute, seven.second) == (7, 0, 0)
    assert sent.sent_at is not None
    assert held.not_before <= sent.sent_at < held.not_before + timedelta(seconds=5)
    assert len(stack.twilio.messages) == 2
