"""The inpatient follow-up plan under the time-skipping server, against real PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta
from urllib.parse import urlparse

import pytest
from sqlmodel import col, select
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from core.db import SessionFactory
from core.links import LinkExpired, LinkSigner
from core.models import (
    Alert,
    CareTask,
    Encounter,
    FormResponse,
    OutboundMessage,
    PathwayRun,
    Patient,
)
from core.settings import Settings
from pathways.catalog import load_catalog
from tests.factories import add_patient, daytime, eventually, running_worker
from workflows.contracts import (
    QUERY_PROGRESS,
    SIGNAL_SUBMIT_ANSWERS,
    AnswerSubmission,
    FollowUpInput,
    RunProgress,
    RunSummary,
    followup_workflow_id,
)
from workflows.followup import FollowUpWorkflow

PLAN = "inpatient-discharge"
DAY = timedelta(days=1)

NORMAL = {"overall": ["good"], "symptoms": ["none"], "medication": ["on_time"]}
ABNORMAL = {"overall": ["fair"], "symptoms": ["fever", "chest"], "medication": ["on_time"]}


async def start(
    env: WorkflowEnvironment,
    task_queue: str,
    patient: Patient,
    encounter: Encounter,
    anchor: datetime,
) -> WorkflowHandle[FollowUpWorkflow, RunSummary]:
    return await env.client.start_workflow(
        FollowUpWorkflow.run,
        FollowUpInput(
            patient_id=patient.id,
            encounter_id=encounter.id,
            department_code=encounter.department_code,
            anchor_at=anchor,
            snapshot=load_catalog().snapshot(PLAN),
        ),
        id=followup_workflow_id(PLAN, patient.his_patient_id, encounter.his_encounter_id),
        task_queue=task_queue,
    )


def on_schedule(messages: list[OutboundMessage], anchor: datetime, due: list[timedelta]) -> bool:
    """Each message went out at its due offset after the anchor: not before, and within the
    few seconds the timer, the delivery workflow and the channel take (the test server's clock
    runs in real time between skips)."""
    sent = [m.sent_at - anchor for m in messages if m.sent_at is not None]
    return len(sent) == len(due) and all(
        timedelta(0) <= s - d < timedelta(seconds=10) for s, d in zip(sent, due, strict=True)
    )


def near(actual: datetime | None, expected: datetime) -> bool:
    return actual is not None and abs(actual - expected) < timedelta(seconds=1)


async def tasks_of(sessions: SessionFactory, workflow_id: str) -> dict[str, CareTask]:
    async with sessions() as session:
        rows = await session.exec(select(CareTask).where(CareTask.workflow_id == workflow_id))
        return {t.step_id: t for t in rows.all()}


async def messages_of(sessions: SessionFactory, workflow_id: str) -> list[OutboundMessage]:
    async with sessions() as session:
        rows = await session.exec(
            select(OutboundMessage)
            .where(OutboundMessage.workflow_id == workflow_id)
            .order_by(col(OutboundMessage.scheduled_for))
        )
        return list(rows.all())


async def wait_for_step(
    handle: WorkflowHandle[FollowUpWorkflow, RunSummary], step_id: str, status: str
) -> RunProgress:
    async def probe() -> RunProgress | None:
        progress = await handle.query(QUERY_PROGRESS, result_type=RunProgress)
        step = next(s for s in progress.steps if s.step_id == step_id)
        return progress if step.status == status else None

    return await eventually(probe, what=f"{step_id} to become {status}")


def token_of(body: str) -> str:
    link = next(word for word in body.split() if "/p/" in word)
    link = link[link.index("http") :]
    return urlparse(link).path.rsplit("/", 1)[1]


async def test_day3_and_day7_messages_go_out_on_time_with_valid_links(
    time_env: WorkflowEnvironment, task_queue: str, settings: Settings, sessions: SessionFactory
) -> None:
    patient, encounter = await add_patient(sessions)
    anchor = daytime(await time_env.get_current_time())
    async with running_worker(time_env.client, task_queue, settings, sessions):
        handle = await start(time_env, task_queue, patient, encounter, anchor)
        summary = await handle.result()

    # Nobody answered: both tasks end lost, after both messages went out on schedule.
    assert summary.counts == {"lost": 2}
    messages = await messages_of(sessions, handle.id)
    assert on_schedule(messages, anchor, [3 * DAY, 7 * DAY])
    assert all(m.channel == "outbox" and m.status == "sent" for m in messages)
    assert all(m.recipient_phone == "+8613800138001" for m in messages)
    signer = LinkSigner(settings.link_secret.get_secret_value())
    tasks = await tasks_of(sessions, handle.id)
    for message, step in zip(messages, ["day3", "day7"], strict=True):
        assert "张建国您好" in message.body
        assert message.body.count("http://patient.test/p/") == 1
        task = tasks[step]
        assert task.sent_at == message.sent_at
        assert message.sent_at is not None
        assert message.link_expires_at is not None
        assert task.valid_until == message.link_expires_at
        assert near(message.link_expires_at, message.sent_at + 5 * DAY)
        token = token_of(message.body)
        # The link works until the validity window closes, and not a second after.
        claims = signer.verify(token, now=message.link_expires_at - timedelta(seconds=1))
        assert claims.task_id == task.id
        with pytest.raises(LinkExpired):
            signer.verify(token, now=message.link_expires_at)


async def test_unanswered_task_expires_then_is_lost(
    time_env: WorkflowEnvironment, task_queue: str, settings: Settings, sessions: SessionFactory
) -> None:
    patient, encounter = await add_patient(sessions)
    anchor = daytime(await time_env.get_current_time())
    async with running_worker(time_env.client, task_queue, settings, sessions):
        handle = await start(time_env, task_queue, patient, encounter, anchor)
        await time_env.sleep(3 * DAY + 5 * DAY + timedelta(minutes=1))
        progress = await wait_for_step(handle, "day3", "expired")
        day3 = next(s for s in progress.steps if s.step_id == "day3")
        assert near(day3.valid_until, anchor + 8 * DAY)
        assert (await tasks_of(sessions, handle.id))["day3"].status == "expired"
        await handle.result()

    tasks = await tasks_of(sessions, handle.id)
    assert {t.status for t in tasks.values()} == {"lost"}
    assert near(tasks["day3"].closed_at, anchor + 3 * DAY + 7 * DAY)
    assert near(tasks["day7"].closed_at, anchor + 7 * DAY + 7 * DAY)
    async with sessions() as session:
        run = await session.get(PathwayRun, handle.id)
        assert run is not None
        assert run.status == "completed"
        assert near(run.finished_at, anchor + 14 * DAY)


async def test_abnormal_answer_marks_task_abnormal_and_alerts_the_nurse(
    time_env: WorkflowEnvironment, task_queue: str, settings: Settings, sessions: SessionFactory
) -> None:
    patient, encounter = await add_patient(sessions)
    anchor = daytime(await time_env.get_current_time())
    async with running_worker(time_env.client, task_queue, settings, sessions):
        handle = await start(time_env, task_queue, patient, encounter, anchor)
        await time_env.sleep(3 * DAY + timedelta(hours=2))
        await wait_for_step(handle, "day3", "sent")
        submitted_at = await time_env.get_current_time()
        await handle.signal(
            SIGNAL_SUBMIT_ANSWERS,
            AnswerSubmission(step_id="day3", answers=ABNORMAL, submitted_at=submitted_at),
        )
        progress = await wait_for_step(handle, "day3", "abnormal")
        day3 = next(s for s in progress.steps if s.step_id == "day3")
        assert [f.value for f in day3.findings] == ["fever", "chest"]
        # Day 7 goes unanswered and is lost; the run then ends.
        summary = await handle.result()

    assert summary.counts == {"abnormal": 1, "lost": 1}
    tasks = await tasks_of(sessions, handle.id)
    assert tasks["day3"].status == "abnormal"
    assert tasks["day3"].answered_at == submitted_at
    async with sessions() as session:
        alerts = (await session.exec(select(Alert))).all()
        response = (await session.exec(select(FormResponse))).one()
    assert len(alerts) == 1
    alert = alerts[0]
    assert (alert.kind, alert.role, alert.department_code, alert.status) == (
        "abnormal_answer",
        "nurse",
        "cardiology",
        "open",
    )
    assert alert.task_id == tasks["day3"].id
    assert "发热" in alert.summary
    assert "胸闷" in alert.summary
    assert response.answers == ABNORMAL
    assert [f["value"] for f in response.abnormal_findings] == ["fever", "chest"]


async def test_normal_answers_complete_the_run_without_alerts(
    time_env: WorkflowEnvironment, task_queue: str, settings: Settings, sessions: SessionFactory
) -> None:
    patient, encounter = await add_patient(sessions)
    anchor = daytime(await time_env.get_current_time())
    async with running_worker(time_env.client, task_queue, settings, sessions):
        handle = await start(time_env, task_queue, patient, encounter, anchor)
        for step, day in (("day3", 3), ("day7", 7)):
            now = await time_env.get_current_time()
            await time_env.sleep(anchor + day * DAY + timedelta(hours=1) - now)
            await wait_for_step(handle, step, "sent")
            answer = AnswerSubmission(
                step_id=step, answers=NORMAL, submitted_at=await time_env.get_current_time()
            )
            await handle.signal(SIGNAL_SUBMIT_ANSWERS, answer)
            # A double tap on "submit" reaches the workflow twice; only the first counts.
            await handle.signal(SIGNAL_SUBMIT_ANSWERS, answer)
        summary = await handle.result()

    assert summary.counts == {"completed": 2}
    async with sessions() as session:
        assert (await session.exec(select(Alert))).all() == []
        assert len((await session.exec(select(FormResponse))).all()) == 2


async def test_worker_restart_mid_plan_loses_nothing(
    time_env: WorkflowEnvironment, task_queue: str, settings: Settings, sessions: SessionFactory
) -> None:
    patient, encounter = await add_patient(sessions)
    anchor = daytime(await time_env.get_current_time())
    # The Java test server never moves a workflow off a dead worker's sticky queue (the real
    # server does, see tests/integration), so the first worker keeps no cache. The second one
    # therefore rebuilds the run purely from its history, which is what a restart exercises.
    async with running_worker(
        time_env.client, task_queue, settings, sessions, max_cached_workflows=0
    ):
        handle = await start(time_env, task_queue, patient, encounter, anchor)
        await time_env.sleep(3 * DAY + timedelta(hours=1))
        await wait_for_step(handle, "day3", "sent")
    # The worker is gone. The patient answers anyway: the signal waits in the workflow's history.
    await handle.signal(
        SIGNAL_SUBMIT_ANSWERS,
        AnswerSubmission(
            step_id="day3", answers=ABNORMAL, submitted_at=await time_env.get_current_time()
        ),
    )
    async with running_worker(time_env.client, task_queue, settings, sessions):
        summary = await handle.result()

    assert summary.counts == {"abnormal": 1, "lost": 1}
    messages = await messages_of(sessions, handle.id)
    # Exactly one message per step: the restart re-sent nothing.
    assert on_schedule(messages, anchor, [3 * DAY, 7 * DAY])
    async with sessions() as session:
        assert len((await session.exec(select(Alert))).all()) == 1


async def test_steps_whose_window_closed_before_enrolment_are_skipped(
    time_env: WorkflowEnvironment, task_queue: str, settings: Settings, sessions: SessionFactory
) -> None:
    now = await time_env.get_current_time()
    anchor = now - 9 * DAY  # discharged nine days ago, event delivered late
    patient, encounter = await add_patient(sessions, discharged_at=anchor)
    async with running_worker(time_env.client, task_queue, settings, sessions):
        handle = await start(time_env, task_queue, patient, encounter, anchor)
        summary = await handle.result()

    assert summary.counts == {"skipped": 1, "lost": 1}
    tasks = await tasks_of(sessions, handle.id)
    assert tasks["day3"].status == "skipped"
    # Day 7 was still inside its window (due two days ago): sent at once, not back-dated.
    messages = await messages_of(sessions, handle.id)
    assert len(messages) == 1
    assert messages[0].task_id == tasks["day7"].id
    assert messages[0].scheduled_for >= now


async def test_patient_without_a_mobile_number_fails_the_task_and_alerts(
    time_env: WorkflowEnvironment, task_queue: str, settings: Settings, sessions: SessionFactory
) -> None:
    patient, encounter = await add_patient(sessions, phone="010-8888 6666")
    anchor = daytime(await time_env.get_current_time())
    async with running_worker(time_env.client, task_queue, settings, sessions):
        handle = await start(time_env, task_queue, patient, encounter, anchor)
        summary = await handle.result()

    assert summary.counts == {"failed": 2}
    # Nothing went out; the send log keeps both attempts with the reason.
    messages = await messages_of(sessions, handle.id)
    assert [m.status for m in messages] == ["failed", "failed"]
    assert all(m.sent_at is None and "手机号" in (m.failure_reason or "") for m in messages)
    async with sessions() as session:
        alerts = (await session.exec(select(Alert))).all()
    assert sorted(a.kind for a in alerts) == ["send_failed", "send_failed"]
    assert all("手机号" in a.summary for a in alerts)
