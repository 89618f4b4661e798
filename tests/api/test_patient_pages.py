"""The patient's form page at /p/{token}: rendering, validation, submission, broken links."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from core.links import LinkSigner
from core.models import Alert, AuditEntry, CareTask, OutboundMessage
from harness.waiting import eventually
from harness.workers import running_worker
from tests.api.conftest import Api, discharge_event
from tests.factories import daytime

DAY = timedelta(days=1)


@dataclass
class SentLink:
    api: Api
    token: str
    task_id: str
    workflow_id: str

    @property
    def path(self) -> str:
        return f"/p/{self.token}"

    async def task(self) -> CareTask:
        async with self.api.sessions() as session:
            task = await session.get(CareTask, self.task_id)
            assert task is not None
            return task


@pytest.fixture
async def sent_link(
    skipping_api: Api, isolated_time_env: WorkflowEnvironment
) -> AsyncIterator[SentLink]:
    """A discharged patient whose day-3 questionnaire has just been sent, with a worker running."""
    api = skipping_api
    now = await isolated_time_env.get_current_time()
    # The time-skipping server's clock runs ahead of the wall clock after earlier tests.
    # A daytime discharge, so that day 3 is outside quiet hours.
    discharged = daytime(min(now, datetime.now(UTC)))
    response = await api.post_event(discharge_event(discharged_at=discharged))
    assert response.status_code == 202, response.text
    workflow_id = next(
        r["workflow_id"] for r in response.json()["runs"] if r["plan_id"] == "inpatient-discharge"
    )
    async with running_worker(
        isolated_time_env.client, api.settings.temporal_task_queue, api.settings, api.sessions
    ):
        await isolated_time_env.sleep(discharged + 3 * DAY + timedelta(minutes=5) - now)

        async def sent() -> OutboundMessage | None:
            async with api.sessions() as session:
                rows = await session.exec(
                    select(OutboundMessage).where(
                        OutboundMessage.workflow_id == workflow_id,
                        OutboundMessage.status == "sent",
                    )
                )
                message = rows.first()
                task = await session.get(CareTask, message.task_id) if message else None
                return message if task is not None and task.status == "sent" else None

        message = await eventually(sent, what="the day-3 message")
        token = message.body.split("/p/")[1].split()[0]
        assert message.task_id is not None
        yield SentLink(api, token, message.task_id, workflow_id)
    # Leave nothing running on the shared time-skipping server for later tests.
    with contextlib.suppress(RPCError):
        await isolated_time_env.client.get_workflow_handle(workflow_id).terminate("test finished")


async def test_form_renders_for_a_phone(sent_link: SentLink) -> None:
    response = await sent_link.api.http.get(sent_link.path)

    assert response.status_code == 200
    html = response.text
    assert '<meta name="viewport"' in html
    assert "出院康复随访问卷" in html
    for label in ("良好", "发热（体温38℃以上）", "以上均无", "已自行停药"):
        assert label in html
    assert 'type="radio" name="overall"' in html
    assert 'type="checkbox" name="symptoms"' in html
    assert '<textarea name="notes"' in html
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"


async def test_incomplete_form_is_shown_again_with_the_problems(sent_link: SentLink) -> None:
    response = await sent_link.api.http.post(
        sent_link.path, data={"overall": "good", "symptoms": ["none", "fever"]}
    )

    assert response.status_code == 422
    html = response.text
    assert "有 2 个问题需要修改" in html
    assert "此选项不能与其他选项同时选择" in html  # "none" combined with "fever"
    assert "请回答此题" in html  # medication left blank
    # What the patient chose is kept, so they only fix what is wrong.
    assert 'value="good" checked' in html
    assert (await sent_link.task()).status == "sent"


async def test_abnormal_answers_are_accepted_and_reach_the_nurse(sent_link: SentLink) -> None:
    api = sent_link.api
    response = await api.http.post(
        sent_link.path,
        data={
            "overall": "poor",
            "symptoms": ["fever"],
            "medication": "on_time",
            "notes": "夜里发热",
        },
    )

    assert response.status_code == 200
    assert "提交成功" in response.text
    assert "护士会尽快与您联系" in response.text

    async def abnormal() -> CareTask | None:
        task = await sent_link.task()
        return task if task.status == "abnormal" else None

    await eventually(abnormal, what="the task to turn abnormal")
    async with api.sessions() as session:
        alert = (await session.exec(select(Alert))).one()
        audit = (
            await session.exec(
                select(AuditEntry).where(AuditEntry.action == "followup.answers_submitted")
            )
        ).one()
    assert alert.role == "nurse"
    assert "较差" in alert.summary
    assert "发热" in alert.summary
    assert audit.target_id == sent_link.task_id
    # Opening the link again says it is done instead of showing the form.
    again = await api.http.get(sent_link.path)
    assert again.status_code == 200
    assert "您已提交" in again.text


async def test_tampered_link_gets_a_clear_page(sent_link: SentLink) -> None:
    token = sent_link.token
    tampered = token[:-3] + ("AAA" if token[-3:] != "AAA" else "BBB")
    for path in (f"/p/{tampered}", "/p/not-a-token", "/p/" + "A" * 50):
        response = await sent_link.api.http.get(path)
        assert response.status_code == 404
        assert "链接无效" in response.text
        assert "Traceback" not in response.text


async def test_expired_link_gets_a_clear_page(sent_link: SentLink) -> None:
    signer = LinkSigner(sent_link.api.settings.link_secret.get_secret_value())
    expired = signer.issue(sent_link.task_id, datetime.now(UTC) - timedelta(minutes=1))
    for method in ("GET", "POST"):
        response = await sent_link.api.http.request(method, f"/p/{expired}")
        assert response.status_code == 410
        assert "链接已过期" in response.text
        assert "该问卷的填写时间已过" in response.text


async def test_a_submitted_form_still_says_so_once_its_link_has_expired(
    sent_link: SentLink,
) -> None:
    api = sent_link.api
    answers = {"overall": "good", "symptoms": ["none"], "medication": "on_time"}
    assert (await api.http.post(sent_link.path, data=answers)).status_code == 200

    async def recorded() -> CareTask | None:
        task = await sent_link.task()
        return task if task.status == "completed" else None

    await eventually(recorded, what="the answers to be recorded")
    signer = LinkSigner(api.settings.link_secret.get_secret_value())
    expired = signer.issue(sent_link.task_id, datetime.now(UTC) - timedelta(minutes=1))
    response = await api.http.get(f"/p/{expired}")

    assert response.status_code == 200
    assert "您已提交" in response.text
    assert "过期" not in response.text


async def test_link_to_a_lost_task_is_expired(
    sent_link: SentLink, isolated_time_env: WorkflowEnvironment
) -> None:
    # Let the whole plan run out: day 3 and day 7 both go unanswered.
    await isolated_time_env.sleep(12 * DAY)

    async def lost() -> CareTask | None:
        task = await sent_link.task()
        return task if task.status == "lost" else None

    await eventually(lost, what="the task to be lost")
    response = await sent_link.api.http.get(sent_link.path)
    assert response.status_code == 410
    assert "链接已过期" in response.text
