"""Each channel end to end against its simulator, fallback between them, opt-outs and the
providers' delivery reports — on the Temporal dev server, in real time."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlmodel import select
from temporalio.testing import WorkflowEnvironment

from core.db import transaction
from core.models import DeliveryReport, MessageAttempt, OutboundMessage
from harness.waiting import eventually
from integrations.clients import message_channels
from integrations.wechat import WeChatTemplateChannel
from messaging.channel import OutgoingMessage
from simulators.faults import FaultPlan, FaultRule
from simulators.twilio.app import Faults as TwilioFaults
from simulators.twilio.app import twilio_signature
from simulators.wechat.app import wechat_signature
from tests.messaging.conftest import NOTICE, TWILIO_TOKEN, WECHAT_TOKEN, Stack, StackFactory


async def test_sms_goes_through_twilio_and_its_delivery_report_comes_back(
    dev_env: WorkflowEnvironment, messaging_stack: StackFactory
) -> None:
    async with messaging_stack(dev_env) as stack, stack.workers():
        patient = await stack.patient(phone="13800138001")
        response = await stack.push(
            idempotency_key="notice-1", to={"patient_id": patient.his_patient_id}
        )
        assert response.status_code == 202, response.text
        message_id = response.json()["message_id"]
        message = await stack.wait_status(message_id, "delivered")

    assert message.channel == "sms"
    assert message.sent_at is not None
    assert message.delivered_at is not None
    [received] = stack.twilio.messages.values()
    assert received.to == "+8613800138001"
    assert received.body == f"【示例医院】{NOTICE['title']}：{NOTICE['content']}"
    attempts = await stack.attempts(message_id)
    assert list(attempts) == ["sms"]
    assert attempts["sms"].provider_message_id == received.sid
    assert attempts["sms"].status == "delivered"
    # Twilio signed both callbacks and we accepted both.
    assert [(c["status"], c["response"]) for c in stack.twilio.callbacks] == [
        ("sent", 204),
        ("delivered", 204),
    ]


async def test_wechat_template_message_with_token_refresh(
    dev_env: WorkflowEnvironment, messaging_stack: StackFactory
) -> None:
    async with messaging_stack(dev_env) as stack, stack.workers():
        patient = await stack.patient(openid="oPatient0001")
        to = {"patient_id": patient.his_patient_id}
        first = (await stack.push(idempotency_key="wx-1", to=to)).json()
        await stack.wait_status(first["message_id"], "delivered")
        # WeChat invalidates the token (expiry, or another system forced a refresh).
        stack.wechat.tokens.update(dict.fromkeys(stack.wechat.tokens, 0.0))
        second = (await stack.push(idempotency_key="wx-2", to=to)).json()
        message = await stack.wait_status(second["message_id"], "delivered")

    assert message.channel == "wechat"
    assert len(stack.wechat.sent) == 2
    sent = stack.wechat.sent[0]
    assert sent.touser == "oPatient0001"
    assert sent.template_id == "TPL-NOTICE"
    assert sent.data["first"] == {"value": NOTICE["title"]}
    assert sent.data["keyword1"] == {"value": NOTICE["content"]}
    # One token for the first send, one fresh after the 42001: not one per message.
    assert stack.wechat.token_requests == 2
    assert stack.twilio.messages == {}


async def test_an_sms_whose_answer_was_lost_is_found_among_many_to_the_same_number(
    dev_env: WorkflowEnvironment, messaging_stack: StackFactory
) -> None:
    """The lookup a retry makes after a lost answer (find_sent) finds the message it sent even
    when a burst of others went to the number since: Twilio lists newest first, a page at a
    time, and every page is read."""
    async with messaging_stack(dev_env) as stack:
        channel = message_channels(stack.settings)["sms"]
        try:
            since = datetime.now(UTC)
            ours = OutgoingMessage(
                message_id="m-ours",
                idempotency_key="burst-ours",
                category="notice",
                template="notice_generic",
                phone="+8613800138009",
                openid=None,
                sms_body="【示例医院】您的复诊时间已调整为3月5日上午。",
            )
            sent = await channel.deliver(ours)
            for n in range(120):  # two and a half pages of newer notices to the same number
                await channel.deliver(
                    OutgoingMessage(
                        message_id=f"m-{n}",
                        idempotency_key=f"burst-{n}",
                        category="notice",
                        template="notice_generic",
                        phone="+8613800138009",
                        openid=None,
                        sms_body=f"【示例医院】处方进度通知 {n}",
                    )
                )
            found = await channel.find_sent(ours, since)
        finally:
            await channel.close()

    assert found is not None
    assert found.provider_message_id == sent.provider_message_id


async def test_a_provider_id_seen_before_is_stored_and_the_message_is_not_sent_again(
    dev_env: WorkflowEnvironment, messaging_stack: StackFactory
) -> None:
    async with messaging_stack(dev_env) as stack, stack.workers():
        patient = await stack.patient(openid="oPatient0001")
        to = {"patient_id": patient.his_patient_id}
        first = (await stack.push(idempotency_key="wx-1", to=to)).json()
        await stack.wait_status(first["message_id"], "delivered")
        # WeChat answers the next send with the id it gave the first one (a provider, or a
        # simulator, that restarted without its memory).
        stack.wechat.faults.repeat_last_msgid = True
        second = (await stack.push(idempotency_key="wx-2", to=to)).json()
        message = await stack.wait_status(second["message_id"], "sent", "delivered")
        attempts = await stack.attempts(second["message_id"])

    assert message.channel == "wechat"
    # Each logical message reached the patient once, and never by SMS as well.
    assert [s.data["keyword1"]["value"] for s in stack.wechat.sent] == [NOTICE["content"]] * 2
    assert stack.twilio.messages == {}
    assert attempts["wechat"].provider_message_id == str(stack.wechat.sent[0].msgid)
    assert attempts["wechat"].tries == 1


async def _send_losing_the_answer(
    env: WorkflowEnvironment, messaging_stack: StackFactory, openid: str, *, report: bool
) -> tuple[Stack, OutboundMessage, dict[str, MessageAttempt]]:
    """One WeChat notice whose first send reaches WeChat while its answer never reaches us (nor,
    unless ``report``, WeChat's report of it); the message once sent, and its attempts."""
    async with (
        messaging_stack(env, channel_timeout_seconds=1.0) as stack,
        stack.workers(),
    ):
        if not report:
            stack.wechat.event_url = None
        patient = await stack.patient(openid=openid)
        stack.wechat.random_faults.replace(
            FaultPlan(
                hang_seconds=2.0,  # past the channel's 1 s timeout
                rules=[
                    FaultRule(path_prefix="/cgi-bin/message/template/send", hang_after_commit=True)
                ],
            )
        )
        response = await stack.push(
            idempotency_key=f"wx-{openid}", to={"patient_id": patient.his_patient_id}
        )
        message = await stack.wait_status(response.json()["message_id"], "sent", "delivered")
        return stack, message, await stack.attempts(message.id)


async def test_a_wechat_send_whose_answer_was_lost_is_known_by_its_report_and_not_sent_again(
    dev_env: WorkflowEnvironment, messaging_stack: StackFactory
) -> None:
    stack, message, attempts = await _send_losing_the_answer(
        dev_env, messaging_stack, "oLostAnswer1", report=True
    )

    # The patient got it once: the retry found WeChat's TEMPLATESENDJOBFINISH report of the
    # first try instead of sending again, and did not fall back to SMS either.
    [sent] = stack.wechat.sent
    assert sent.touser == "oLostAnswer1"
    assert stack.twilio.messages == {}
    assert message.channel == "wechat"
    assert attempts["wechat"].tries == 2
    assert attempts["wechat"].provider_message_id == str(sent.msgid)


async def test_a_try_that_claimed_the_report_and_died_before_recording_is_not_sent_again(
    dev_env: WorkflowEnvironment, messaging_stack: StackFactory
) -> None:
    """A try after a lost answer claimed WeChat's report of the send (its id now on the
    attempt) and its worker died before the receipt was recorded. The next try takes that claim
    as the answer; it used to find no unclaimed report (the report was its own), wait out the
    window and send again: the fault campaign's bulk sends, killed every few seconds, did that
    to over a hundred patients."""
    async with messaging_stack(dev_env) as stack:
        patient = await stack.patient(openid="oClaimedOnce1")
        pushed = await stack.push(
            idempotency_key="claimed-1", to={"patient_id": patient.his_patient_id}
        )
        message_id = pushed.json()["message_id"]
        async with transaction(stack.sessions) as session:
            session.add(
                MessageAttempt(
                    message_id=message_id,
                    channel="wechat",
                    recipient="oClaimedOnce1",
                    tries=2,
                    provider_message_id="7700000000000001",
                )
            )
        async with stack.workers():
            message = await stack.wait_status(message_id, "sent")
        attempts = await stack.attempts(message_id)

    assert stack.wechat.sent == []  # the patient already has it: not sent again
    assert stack.twilio.messages == {}
    assert message.channel == "wechat"
    assert attempts["wechat"].status == "sent"
    assert attempts["wechat"].provider_message_id == "7700000000000001"


async def test_a_wechat_send_whose_report_never_comes_either_is_sent_again_after_the_wait(
    dev_env: WorkflowEnvironment, messaging_stack: StackFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(WeChatTemplateChannel, "reports_sends_within", timedelta(seconds=3))
    stack, _, attempts = await _send_losing_the_answer(
        dev_env, messaging_stack, "oLostReport1", report=False
    )

    # Nothing tells the first send from a failure: sent twice rather than perhaps never.
    assert [s.touser for s in stack.wechat.sent] == ["oLostReport1"] * 2
    assert attempts["wechat"].provider_message_id == str(stack.wechat.sent[1].msgid)
    assert stack.twilio.messages == {}


async def test_a_lost_report_of_one_notice_does_not_send_another_to_the_same_patient_twice(
    dev_env: WorkflowEnvironment, messaging_stack: StackFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(WeChatTemplateChannel, "reports_sends_within", timedelta(seconds=3))
    async with (
        messaging_stack(dev_env, channel_timeout_seconds=1.0) as stack,
        stack.workers(),
    ):
        patient = await stack.patient(openid="oTwoNotices1")
        # Both notices' first sends reach WeChat and their answers are lost; WeChat reports
        # only the first of all sends.
        stack.wechat.random_faults.replace(
            FaultPlan(
                hang_seconds=2.0,  # past the channel's 1 s timeout
                rules=[
                    FaultRule(
                        path_prefix="/cgi-bin/message/template/send",
                        hang_after_commit=True,
                        count=2,
                    )
                ],
            )
        )
        stack.wechat.faults.report_only_first = 1
        contents = ["王医生11月26日上午停诊。", "李医生11月27日下午停诊。"]
        responses = await asyncio.gather(
            *(
                stack.push(
                    idempotency_key=f"two-notices-{n}",
                    to={"patient_id": patient.his_patient_id},
                    variables={"title": "停诊通知", "content": content},
                )
                for n, content in enumerate(contents)
            )
        )
        for response in responses:
            await stack.wait_status(response.json()["message_id"], "sent", "delivered")

    # The notices went out one after the other: the first's retry found its report before the
    # second was sent, so only the second, whose report never came, was sent again. Sent
    # together, neither report could be told apart and both went out twice.
    copies = Counter(c for sent in stack.wechat.sent for c in contents if c in str(sent.data))
    assert sorted(copies.values()) == [1, 2]
    assert set(copies) == set(contents)
    assert stack.twilio.messages == {}


async def test_falls_back_to_sms_when_the_patient_no_longer_follows_the_account(
    dev_env: WorkflowEnvironment,
    messaging_stack: StackFactory,
    record_history: Any,
) -> None:
    async with messaging_stack(dev_env) as stack, stack.workers():
        patient = await stack.patient(openid="oUnfollowed01", follower=False)
        response = await stack.push(
            idempotency_key="fb-1", to={"patient_id": patient.his_patient_id}
        )
        message = await stack.wait_status(response.json()["message_id"], "delivered")
        await record_history(
            dev_env.client.get_workflow_handle(response.json()["workflow_id"]),
            "message_delivery_v2_fallback",
        )

    assert message.channel == "sms"
    attempts = await stack.attempts(message.id)
    # 43004 is permanent: one try, no retries, then straight to SMS.
    assert attempts["wechat"].status == "failed"
    assert attempts["wechat"].error_code == "43004"
    assert attempts["wechat"].tries == 1
    assert attempts["sms"].status == "delivered"
    assert stack.wechat.sent == []


async def test_patients_preferred_channel_goes_first(
    dev_env: WorkflowEnvironment, messaging_stack: StackFactory
) -> None:
    async with messaging_stack(dev_env) as stack, stack.workers():
        patient = await stack.patient(openid="oPrefersSms01", preferred="sms")
        response = await stack.push(
            idempotency_key="pref-1", to={"patient_id": patient.his_patient_id}
        )
        message = await stack.wait_status(response.json()["message_id"], "delivered")

    assert message.channel == "sms"
    assert stack.wechat.sent == []


async def test_number_the_provider_refuses_fails_without_retry(
    dev_env: WorkflowEnvironment, messaging_stack: StackFactory
) -> None:
    async with messaging_stack(dev_env, channels="sms") as stack, stack.workers():
        stack.twilio.faults = TwilioFaults(invalid_numbers=["+8613900000000"])
        patient = await stack.patient(phone="13900000000")
        response = await stack.push(
            idempotency_key="bad-1", to={"patient_id": patient.his_patient_id}
        )
        message = await stack.wait_status(response.json()["message_id"], "failed")

    attempts = await stack.attempts(message.id)
    assert attempts["sms"].tries == 1
    assert attempts["sms"].error_code == "21211"
    assert "21211" in (message.failure_reason or "")
    assert stack.twilio.messages == {}


async def test_undelivered_report_marks_the_message_failed(
    dev_env: WorkflowEnvironment, messaging_stack: StackFactory
) -> None:
    async with messaging_stack(dev_env, channels="sms") as stack, stack.workers():
        stack.twilio.faults = TwilioFaults(undeliverable_numbers=["+8613800138099"])
        patient = await stack.patient(phone="13800138099")
        response = await stack.push(
            idempotency_key="und-1", to={"patient_id": patient.his_patient_id}
        )
        message = await stack.wait_status(response.json()["message_id"], "failed")

    assert message.sent_at is not None
    assert "undelivered" in (message.failure_reason or "")
    assert (await stack.attempts(message.id))["sms"].error_code == "30003"


async def test_opted_out_categories_are_suppressed_but_critical_values_go_out(
    dev_env: WorkflowEnvironment, messaging_stack: StackFactory
) -> None:
    async with messaging_stack(dev_env) as stack, stack.workers():
        patient = await stack.patient(opt_outs=["notice"])
        to = {"patient_id": patient.his_patient_id}
        notice = (await stack.push(idempotency_key="oo-1", to=to)).json()
        critical = (
            await stack.push(
                idempotency_key="oo-2",
                to=to,
                template="critical_value",
                variables={"item": "血钾 6.8 mmol/L", "advice": "请立即到急诊就诊"},
            )
        ).json()
        suppressed = await stack.wait_status(notice["message_id"], "suppressed")
        sent = await stack.wait_status(critical["message_id"], "delivered")

    assert suppressed.sent_at is None
    assert sent.channel == "sms"
    assert [m.body for m in stack.twilio.messages.values()] == [sent.body]


async def test_duplicate_and_out_of_order_reports_are_applied_once(
    dev_env: WorkflowEnvironment, messaging_stack: StackFactory
) -> None:
    async with messaging_stack(dev_env, channels="sms") as stack, stack.workers():
        stack.twilio.faults = TwilioFaults(duplicate_callbacks=2, out_of_order_callbacks=True)
        patient = await stack.patient()
        response = await stack.push(
            idempotency_key="dup-1", to={"patient_id": patient.his_patient_id}
        )
        message_id = response.json()["message_id"]

        async def all_callbacks() -> bool:
            return len(stack.twilio.callbacks) == 6

        await eventually(all_callbacks, what="six callbacks")
        message = await stack.message(message_id)

    # 'delivered' arrived first and three times, then 'sent' three times: still delivered.
    assert message.status == "delivered"
    async with stack.sessions() as session:
        recorded = await session.exec(select(DeliveryReport))
        reports = recorded.all()
    assert sorted(r.provider_status for r in reports) == ["delivered", "sent"]
    assert all(r.applied_at is not None for r in reports)


async def test_forged_twilio_callback_is_refused(
    dev_env: WorkflowEnvironment, messaging_stack: StackFactory
) -> None:
    async with messaging_stack(dev_env) as stack:
        url = f"{stack.url}/webhooks/twilio/status"
        params = {"MessageSid": "SM" + "0" * 32, "MessageStatus": "delivered"}
        async with httpx.AsyncClient() as http:
            forged = await http.post(
                url,
                data=params,
                headers={"X-Twilio-Signature": twilio_signature("wrong", url, params)},
            )
            genuine = await http.post(
                url,
                data=params,
                headers={"X-Twilio-Signature": twilio_signature(TWILIO_TOKEN, url, params)},
            )

    assert forged.status_code == 401
    # Genuine but about a message we never sent: acknowledged, nothing to change.
    assert genuine.status_code == 204


async def test_wechat_event_push_is_verified(
    dev_env: WorkflowEnvironment, messaging_stack: StackFactory
) -> None:
    xml = (
        b"<xml><MsgType>event</MsgType><Event>TEMPLATESENDJOBFINISH</Event>"
        b"<MsgID>42</MsgID><Status>success</Status></xml>"
    )
    async with messaging_stack(dev_env) as stack, httpx.AsyncClient() as http:
        url = f"{stack.url}/webhooks/wechat"
        now, nonce = str(int(time.time())), "n0nce"
        good = wechat_signature(WECHAT_TOKEN, now, nonce)
        forged = await http.post(
            url,
            params={
                "signature": wechat_signature("guess", now, nonce),
                "timestamp": now,
                "nonce": nonce,
            },
            content=xml,
        )
        stale = str(int(time.time()) - 3600)
        replayed = await http.post(
            url,
            params={
                "signature": wechat_signature(WECHAT_TOKEN, stale, nonce),
                "timestamp": stale,
                "nonce": nonce,
            },
            content=xml,
        )
        genuine = await http.post(
            url, params={"signature": good, "timestamp": now, "nonce": nonce}, content=xml
        )
        verify = await http.get(
            url, params={"signature": good, "timestamp": now, "nonce": nonce, "echostr": "e42"}
        )

    assert forged.status_code == 401
    assert replayed.status_code == 401
    assert genuine.status_code == 200
    assert genuine.text == "success"
    assert verify.text == "e42"
