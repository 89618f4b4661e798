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
from core.models import Alert, AuditEntry, CareTask, OutboundMessage, PathwayRun
from harness.waiting import eventually
from harness.workers import running_worker
from pathways.library import load_forms
from tests.api.conftest import Api, discharge_event
from tests.factories import daytime
from tests.images import png

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
    # A "text" question is one line; long_text is the box.
    assert '<textarea id="i-notes" name="notes"' in html
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


# ---- every question type (the demo form) ------------------------------------------------------

DEMO = load_forms()["all-question-types"]
SIGNATURE = png(120, 40, (20, 20, 20))


@pytest.fixture
async def demo_link(sent_link: SentLink) -> SentLink:
    """The same sent task, its run pinned to the demo form that holds every question type.

    Only the page reads the form from the run's snapshot: the workflow keeps its own copy and
    records whatever answers the page accepted."""
    task = await sent_link.task()
    async with sent_link.api.sessions() as session:
        run = await session.get(PathwayRun, sent_link.workflow_id)
        assert run is not None
        assert task.form_id is not None
        snapshot = dict(run.plan_snapshot)
        snapshot["forms"] = {
            **snapshot["forms"],
            task.form_id: DEMO.model_dump(mode="json"),
        }
        run.plan_snapshot = snapshot
        session.add(run)
        await session.commit()
    return sent_link


def _card(html: str, qid: str) -> str:
    start = html.index(f'id="q-{qid}"')
    end = html.find('<div class="card', start)
    return html[start : end if end >= 0 else len(html)]


async def test_every_question_type_renders(demo_link: SentLink) -> None:
    response = await demo_link.api.http.get(demo_link.path)

    assert response.status_code == 200
    html = response.text
    assert "问卷题型示例" in html
    expected = {
        "willing": 'type="radio" name="willing"',
        "overall": 'type="radio" name="overall"',
        "symptoms": 'type="checkbox" name="symptoms"',
        "department": '<select id="i-department" name="department"',
        "pain_site": '<select id="i-pain_site-2" name="pain_site"',
        "has_fever": 'type="radio" name="has_fever"',
        "temperature": 'type="number"',
        "fever_since": 'type="date"',
        "medicine_time": 'type="time"',
        "pain": 'type="radio" name="pain" value="10"',
        "stars": 'type="radio" name="stars" value="5"',
        "recommend": 'type="radio" name="recommend" value="0"',
        "sleep": 'type="radio" name="sleep.daytime"',
        "wound_photo": 'type="file"',
        "summary": 'type="text" class="text" id="i-summary"',
        "story": '<textarea id="i-story"',
        "signature": 'type="file"',
    }
    assert set(expected) | {"welcome"} == {q.id for q in DEMO.questions}
    for qid, marker in expected.items():
        assert marker in _card(html, qid), qid
    assert 'name="symptoms.other"' in _card(html, "symptoms")
    welcome = _card(html, "welcome")
    assert "填写说明" in welcome
    assert "<input" not in welcome
    assert "<select" not in welcome
    for qid in ("wound_photo", "signature"):
        assert "即将开放" not in _card(html, qid)
    assert f'data-upload-path="/p/{demo_link.token}/uploads"' in html
    assert "（如适用）" not in html
    assert "根据您前面的回答，此题可能无需填写" in _card(html, "temperature")
    # The script that shows and hides questions comes with the page: nothing from elsewhere.
    assert '<script type="application/json" id="form-logic">' in html
    assert "<script src" not in html


async def test_mistakes_are_shown_where_they_are_and_answers_kept(demo_link: SentLink) -> None:
    response = await demo_link.api.http.post(
        demo_link.path,
        data={
            "willing": "yes",
            "overall": "good",
            "symptoms": ["other"],
            "department": "surgery",
            "pain_site": ["limbs", "lower"],
            "has_fever": "yes",
            "temperature": "45",
            "fever_since": "2026-13-01",
            "medicine_time": "8点",
            "pain": "2",
            "stars": "5",
            "recommend": "9",
            "sleep.falling_asleep": "good",
            "sleep.waking": "fair",
            "summary": "还可以",
            "story": "想问复查时间",
        },
    )

    assert response.status_code == 422
    html = response.text
    assert "有 7 个问题需要修改" in html
    assert "请注明其他内容" in _card(html, "symptoms")
    assert "请选择到最后一级" in _card(html, "pain_site")
    assert "数值超出允许范围" in _card(html, "temperature")
    assert "请按“年-月-日”格式填写日期" in _card(html, "fever_since")
    assert "请按“时:分”格式填写时间" in _card(html, "medicine_time")
    assert "请回答此题" in _card(html, "signature")
    sleep = _card(html, "sleep")
    daytime = sleep[sleep.index('id="r-sleep-daytime"') :]
    assert "请回答这一行" in daytime[: daytime.index("</tr>")]
    assert "请回答这一行" not in sleep[: sleep.index('id="r-sleep-daytime"')]
    # Everything entered is still there.
    assert 'value="other" checked' in _card(html, "symptoms")
    assert '<option value="surgery" selected>' in _card(html, "department")
    assert '<option value="lower" selected>' in _card(html, "pain_site")
    assert 'value="45"' in _card(html, "temperature")
    assert 'value="2026-13-01"' in _card(html, "fever_since")
    assert 'value="8点"' in _card(html, "medicine_time")
    assert 'value="2" checked' in _card(html, "pain")
    assert 'value="fair" aria-label="夜间醒来：一般" checked' in sleep
    assert 'value="还可以"' in _card(html, "summary")
    assert ">想问复查时间</textarea>" in _card(html, "story")
    assert (await demo_link.task()).status == "sent"


async def test_a_complete_demo_form_is_accepted(demo_link: SentLink) -> None:
    uploaded = await demo_link.api.http.post(
        f"/p/{demo_link.token}/uploads/signature",
        files={"file": ("signature.png", SIGNATURE, "image/png")},
    )
    assert uploaded.status_code == 201, uploaded.text
    response = await demo_link.api.http.post(
        demo_link.path,
        data={
            "willing": "yes",
            "overall": "good",
            "symptoms": ["other"],
            "symptoms.other": "有点咳嗽",
            "department": "internal",
            "pain_site": ["limbs", "upper", "hand"],
            # No fever: its temperature and date are not asked, so not required.
            "has_fever": "no",
            "medicine_time": "08:30",
            "pain": "2",
            "stars": "5",
            "recommend": "9",
            "sleep.falling_asleep": "good",
            "sleep.waking": "fair",
            "sleep.daytime": "good",
            "story": "谢谢",
            "signature": uploaded.json()["reference"],
        },
    )

    assert response.status_code == 200, response.text
    assert "提交成功" in response.text


async def test_an_option_that_ends_the_form_needs_nothing_else(demo_link: SentLink) -> None:
    response = await demo_link.api.http.post(demo_link.path, data={"willing": "no"})

    assert response.status_code == 200, response.text
    assert "提交成功" in response.text
