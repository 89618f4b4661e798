"""A batch send to 240 patients survives its worker being killed (SIGKILL, mid-send) without
messaging anyone twice: the real worker process, the dev server and the Twilio simulator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlmodel import col, func, select
from temporalio.testing import WorkflowEnvironment

from core.db import transaction
from core.models import (
    MessageAttempt,
    MessageBatch,
    OutboundMessage,
    Patient,
    StaffRole,
    new_id,
    utcnow,
)
from harness.processes import settings_env, start_process
from harness.staff import add_staff
from harness.waiting import eventually
from simulators.faults import FaultPlan, FaultRule
from simulators.twilio.app import Faults as TwilioFaults
from tests.messaging.conftest import NOTICE, Stack, StackFactory
from workflows import message_batch

# Enough that the kill lands mid-send with well over a hundred still to go; more only costs
# suite time.
RECIPIENTS = 240


async def test_a_batch_resumes_after_a_worker_kill_with_no_duplicates(
    dev_env: WorkflowEnvironment, messaging_stack: StackFactory, tmp_path: Path
) -> None:
    async with messaging_stack(dev_env, channels="sms", twilio_rate_per_second=500.0) as stack:
        async with transaction(stack.sessions) as session:
            for n in range(RECIPIENTS):
                session.add(
                    Patient(
                        id=new_id(),
                        his_patient_id=f"B{n:05d}",
                        name=f"患者{n}",
                        phone=f"139{n:08d}",
                    )
                )
        nurse = await add_staff(stack.sessions, StaffRole.NURSE, "cardiology")
        # Delivery reports are tested elsewhere; here they would only compete for the CPU.
        stack.twilio.faults = TwilioFaults(send_callbacks=False)
        env = {
            **settings_env(stack.settings),
            "CAREPATH_TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
            "CAREPATH_LOG_LEVEL": "WARNING",
        }
        worker = start_process("worker-1", ["-m", "workers.main"], env, tmp_path)
        try:
            created = await stack.http.post(
                "/api/messages/batches",
                json={
                    "name": "冬季流感疫苗接种通知",
                    "template": "notice_generic",
                    "variables": NOTICE,
                    "recipients": {"patient_ids": [f"B{n:05d}" for n in range(RECIPIENTS)]},
                },
                headers=stack.auth(nurse),
            )
            assert created.status_code == 202, created.text
            batch_id = created.json()["id"]

            async def some_sent() -> bool:
                return len(stack.twilio.messages) >= RECIPIENTS // 4

            await eventually(some_sent, within=120, what="a quarter of the batch to go out")
            worker.popen.kill()  # no graceful shutdown: activities die mid-flight
            worker.popen.wait()
            killed_at = len(stack.twilio.messages)
            worker = start_process("worker-2", ["-m", "workers.main"], env, tmp_path)

            async def finished() -> MessageBatch | None:
                async with stack.sessions() as session:
                    batch = await session.get(MessageBatch, batch_id)
                    return batch if batch and batch.status == "completed" else None

            await eventually(finished, within=240, what="the batch to finish")
            progress = await stack.http.get(
                f"/api/messages/batches/{batch_id}", headers=stack.auth(nurse)
            )
        finally:
            worker.stop()

    assert killed_at < RECIPIENTS
    received = [m.to for m in stack.twilio.messages.values()]
    assert len(received) == RECIPIENTS
    assert len(set(received)) == RECIPIENTS  # nobody twice
    async with stack.sessions() as session:
        rows = await session.exec(
            select(OutboundMessage.status, func.count())
            .where(OutboundMessage.batch_id == batch_id)
            .group_by(col(OutboundMessage.status))
        )
        by_status: dict[str, Any] = dict(rows.all())
    assert sum(by_status.values()) == RECIPIENTS
    assert set(by_status) <= {"sent", "delivered"}
    body = progress.json()
    assert body["status"] == "completed"
    assert body["total"] == RECIPIENTS
    assert sum(body["counts"].values()) == RECIPIENTS


async def test_a_batch_falls_back_retries_and_fails_per_recipient(
    dev_env: WorkflowEnvironment, messaging_stack: StackFactory, record_history: Any
) -> None:
    """Each recipient of a bulk-sent batch gets what a single message would: WeChat when they
    follow the account, SMS when they do not (WeChat refuses), SMS again after the provider's
    transient errors, and a failure with the provider's reason when nothing can carry it."""
    async with messaging_stack(dev_env, channels="wechat,sms") as stack, stack.workers():
        followers = [
            await stack.patient(phone=f"1380000000{n}", openid=f"oFollows0{n}") for n in range(3)
        ]
        unfollowed = [
            await stack.patient(phone=f"1381111111{n}", openid=f"oLeft0{n}", follower=False)
            for n in range(2)
        ]
        sms_only = [await stack.patient(phone=f"1392222222{n}") for n in range(3)]
        refused = await stack.patient(phone="13933333333")
        stack.twilio.faults = TwilioFaults(
            send_callbacks=False, fail_next=2, fail_status=503, invalid_numbers=["+8613933333333"]
        )
        everyone = [*followers, *unfollowed, *sms_only, refused]
        nurse = await add_staff(stack.sessions, StaffRole.NURSE, "cardiology")
        batch_id = await _finished_batch(stack, nurse, [p.his_patient_id for p in everyone])
        got = await stack.http.get(f"/api/messages/batches/{batch_id}", headers=stack.auth(nurse))
        batch = got.json()
        await record_history(
            dev_env.client.get_workflow_handle(batch["workflow_id"]), "message_batch_v2_fallback"
        )
        async with stack.sessions() as session:
            rows = await session.exec(
                select(OutboundMessage).where(OutboundMessage.batch_id == batch_id)
            )
            log = {row.patient_id: row for row in rows.all()}

    assert sorted(s.touser for s in stack.wechat.sent) == [f"oFollows0{n}" for n in range(3)]
    texted = sorted(m.to for m in stack.twilio.messages.values())
    assert texted == sorted(f"+86{p.phone}" for p in [*unfollowed, *sms_only])  # once each
    counts = batch["counts"]  # WeChat reports deliveries (its three may read delivered)
    assert (counts.get("sent", 0) + counts.get("delivered", 0), counts["failed"]) == (8, 1)
    assert {p.id: log[p.id].channel for p in everyone} == {
        **{p.id: "wechat" for p in followers},
        **{p.id: "sms" for p in [*unfollowed, *sms_only]},
        refused.id: None,
    }
    for patient in unfollowed:  # the refusal is in the send log, and the message still went
        attempts = await stack.attempts(log[patient.id].id)
        assert (attempts["wechat"].status, attempts["wechat"].error_code) == ("failed", "43004")
        assert attempts["sms"].status == "sent"
    texted_or_tried = [*unfollowed, *sms_only, refused]
    tries = [(await stack.attempts(log[p.id].id))["sms"].tries for p in texted_or_tried]
    assert sum(tries) == len(texted_or_tried) + 2  # the two 503s were each tried again, once
    assert log[refused.id].status == "failed"
    assert "sms" in (log[refused.id].failure_reason or "")


async def _finished_batch(stack: Stack, nurse: str, his_ids: list[str]) -> str:
    batch_id = await _created_batch(stack, nurse, his_ids)
    await _until_finished(stack, batch_id)
    return batch_id


async def _created_batch(stack: Stack, nurse: str, his_ids: list[str]) -> str:
    created = await stack.http.post(
        "/api/messages/batches",
        json={
            "name": "门诊停诊通知",
            "template": "notice_generic",
            "variables": NOTICE,
            "recipients": {"patient_ids": his_ids},
        },
        headers=stack.auth(nurse),
    )
    assert created.status_code == 202, created.text
    batch_id: str = created.json()["id"]
    return batch_id


async def _until_finished(stack: Stack, batch_id: str) -> None:
    async def finished() -> bool:
        async with stack.sessions() as session:
            batch = await session.get(MessageBatch, batch_id)
            return batch is not None and batch.status == "completed"

    await eventually(finished, within=120, what="the batch to finish")


async def test_a_bulk_send_whose_answers_were_lost_asks_twilio_and_sends_nobody_twice(
    dev_env: WorkflowEnvironment, messaging_stack: StackFactory
) -> None:
    """Twilio takes two of a page's messages and its answers never come back: the bulk send
    reports them for another try, and that try finds each among Twilio's sent messages instead
    of sending it again."""
    async with (
        messaging_stack(dev_env, channels="sms", channel_timeout_seconds=1.0) as stack,
        stack.workers(),
    ):
        stack.twilio.faults = TwilioFaults(send_callbacks=False)
        patients = [await stack.patient(phone=f"1374444444{n}") for n in range(6)]
        stack.twilio.random_faults.replace(
            FaultPlan(
                hang_seconds=2.0,  # past the channel's 1 s timeout
                rules=[
                    FaultRule(
                        path_prefix="/2010-04-01/Accounts",
                        method="POST",
                        hang_after_commit=True,
                        count=2,
                    )
                ],
            )
        )
        nurse = await add_staff(stack.sessions, StaffRole.NURSE, "cardiology")
        batch_id = await _finished_batch(stack, nurse, [p.his_patient_id for p in patients])
        async with stack.sessions() as session:
            rows = await session.exec(
                select(OutboundMessage).where(OutboundMessage.batch_id == batch_id)
            )
            log = list(rows.all())
        tries = sorted([(await stack.attempts(m.id))["sms"].tries for m in log])

    texted = sorted(m.to for m in stack.twilio.messages.values())
    assert texted == sorted(f"+86{p.phone}" for p in patients)  # each once, the two included
    assert {m.status for m in log} == {"sent"}
    assert tries == [1, 1, 1, 1, 2, 2]  # the two lost answers: one more try each, no resend


async def test_a_batch_longer_than_a_run_continues_as_new_and_counts_everyone_once(
    dev_env: WorkflowEnvironment, messaging_stack: StackFactory, monkeypatch: Any
) -> None:
    """A batch carries on across workflow runs (each run's history stays bounded): every
    recipient is texted once, and the progress a nurse reads counts all of them."""
    monkeypatch.setattr(message_batch, "BULK_PAGE_SIZE", 2)
    monkeypatch.setattr(message_batch, "BULK_RUN_LIMIT", 4)
    async with messaging_stack(dev_env, channels="sms") as stack, stack.workers():
        stack.twilio.faults = TwilioFaults(send_callbacks=False)
        patients = [await stack.patient(phone=f"1375555555{n}") for n in range(9)]
        nurse = await add_staff(stack.sessions, StaffRole.NURSE, "cardiology")
        batch_id = await _finished_batch(stack, nurse, [p.his_patient_id for p in patients])
        got = await stack.http.get(f"/api/messages/batches/{batch_id}", headers=stack.auth(nurse))
        batch = got.json()
        query = f"WorkflowId = '{batch['workflow_id']}'"

        async def runs() -> int:
            return len([run async for run in dev_env.client.list_workflows(query)])

        async def all_listed() -> bool:  # the server's list may trail the runs' starts a little
            return await runs() >= 3

        await eventually(all_listed, within=30, what="the batch's runs listed")
        listed = await runs()

    texted = sorted(m.to for m in stack.twilio.messages.values())
    assert texted == sorted(f"+86{p.phone}" for p in patients)
    assert (batch["processed"], batch["counts"]) == (9, {"sent": 9})
    assert listed == 3  # 4 recipients, 4 more, then the last one


async def test_a_wechat_batch_holds_back_only_a_patient_whose_last_message_is_unresolved(
    dev_env: WorkflowEnvironment, messaging_stack: StackFactory
) -> None:
    """WeChat's reports are how a lost answer is settled, so a patient is not sent a new message
    while another's outcome is unknown (two in flight, one report lost, would both be sent
    again). A batch sends everyone else at once and that patient's as soon as the earlier
    message is known to have gone, each once, by WeChat."""
    async with messaging_stack(dev_env, channels="wechat,sms") as stack, stack.workers():
        waiting, *others = [
            await stack.patient(phone=f"1376666666{n}", openid=f"oBulkWx0{n}") for n in range(4)
        ]
        async with transaction(stack.sessions) as session:
            earlier = OutboundMessage(
                idempotency_key="earlier-notice",
                category="notice",
                template="notice_generic",
                patient_id=waiting.id,
                recipient_openid="oBulkWx00",
                body="复诊提醒",
                status="sending",
                scheduled_for=utcnow(),
            )
            session.add(earlier)
            await session.flush()
            unresolved = MessageAttempt(
                message_id=earlier.id, channel="wechat", recipient="oBulkWx00", tries=1
            )
            session.add(unresolved)
        nurse = await add_staff(stack.sessions, StaffRole.NURSE, "cardiology")
        batch_id = await _created_batch(
            stack, nurse, [p.his_patient_id for p in [waiting, *others]]
        )

        async def others_sent() -> bool:
            return len(stack.wechat.sent) >= len(others)

        await eventually(others_sent, within=30, what="the other patients' messages")
        held_back = [s.touser for s in stack.wechat.sent]
        async with transaction(stack.sessions) as session:  # its receipt comes in
            row = await session.get(MessageAttempt, unresolved.id)
            assert row is not None
            row.status, row.provider_message_id = "sent", "7700000000000009"

        async def everyone_sent() -> bool:
            return len(stack.wechat.sent) >= len(others) + 1

        await eventually(everyone_sent, within=60, what="the held-back patient's message")
        await _until_finished(stack, batch_id)

    assert sorted(held_back) == [f"oBulkWx0{n}" for n in range(1, 4)]
    assert sorted(s.touser for s in stack.wechat.sent) == [f"oBulkWx0{n}" for n in range(4)]
    assert stack.twilio.messages == {}
