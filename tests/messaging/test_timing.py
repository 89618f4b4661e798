"""What time does to messages, under the time-skipping server: quiet hours hold non-urgent
messages until morning while urgent ones go at once, and a failing channel is retried with
backoff before the next one is tried."""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio.testing import WorkflowEnvironment

from simulators.wechat.app import Faults as WeChatFaults
from tests.factories import BEIJING
from tests.messaging.conftest import NOTICE, StackFactory
from workflows.message_contracts import (
    DELIVERY_WORKFLOW,
    DeliveryOutcome,
    MessageRequest,
    delivery_workflow_id,
)


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
        async with stack.workers():
            late_evening = await _sleep_until_local(time_env, 23, 0)
            critical = await _send(
                time_env,
                queue,
                MessageRequest(
                    key=f"critical-{patient.id}",
                    template="critical_value",
                    patient_id=patient.id,
                    variables={"item": "血钾 6.8 mmol/L", "advice": "请立即到急诊就诊"},
                ),
            )
            notice = await _send(
                time_env,
                queue,
                MessageRequest(
                    key=f"notice-{patient.id}", template="notice_generic",
                    patient_id=patient.id, variables=NOTICE,
                ),
            )  # fmt: skip

    assert critical.status == "sent"
    assert critical.sent_at is not None
    assert critical.sent_at - late_evening < timedelta(minutes=1)
    assert notice.status == "sent"
    assert notice.sent_at is not None
    local = notice.sent_at.astimezone(BEIJING)
    assert (local.hour, local.minute) == (7, 0)
    assert local.date() == (late_evening.astimezone(BEIJING) + timedelta(days=1)).date()
    message = await stack.message(notice.message_id or "")
    assert message.not_before == notice.sent_at.replace(microsecond=0)
    assert len(stack.twilio.messages) == 2


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
                    key=f"busy-{patient.id}", template="notice_generic",
                    patient_id=patient.id, variables=NOTICE,
                ),
            )  # fmt: skip

    assert outcome.status == "sent"
    assert outcome.channel == "sms"
    attempts = await stack.attempts(outcome.message_id or "")
    assert attempts["wechat"].tries == 5
    assert attempts["wechat"].status == "failed"
    assert attempts["wechat"].error_code == "-1"
    # Backoff 2 + 4 + 8 + 16 s between the five tries, then SMS.
    assert outcome.sent_at is not None
    assert outcome.sent_at - started >= timedelta(seconds=30)
    assert stack.wechat.faults.fail_next == 95
