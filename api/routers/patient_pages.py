"""The page a patient opens from the SMS link: a mobile form, submitted to the running workflow.

Every failure is a readable page in Chinese with the right status code, never a stack trace:
a tampered link (404), an expired link or task (410), an incomplete form (422), or our side
being unavailable (503).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request, status
from fastapi.responses import HTMLResponse
from temporalio.service import RPCError, RPCStatusCode

from api.deps import ContainerDep, SessionDep
from api.form_view import form_context
from contracts.pathway import (
    SIGNAL_ANSWERS,
    SIGNAL_ARTICLE_READ,
    SIGNAL_CHECKIN,
    ArticleRead,
    CheckIn,
)
from contracts.runs import AnswerSubmission
from core.links import LinkError, LinkExpired
from core.logs import get_logger
from core.models import CareTask, PathwayRun, TaskStatus, utcnow
from core.validation import Key
from pathways.answers import AnswerError, abnormal_findings, check_answers
from pathways.definition import ArticleDefinition, PathwaySnapshot
from pathways.form_definition import FormDefinition
from services import audit
from services.message_status import mark_read_by_task

router = APIRouter(tags=["patient pages"], include_in_schema=False)
log = get_logger(__name__)

# The token in the URL is a credential: keep it out of caches, referrers and frames.
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
}


@dataclass(frozen=True)
class _OpenTask:
    task: CareTask
    form: FormDefinition | None = None
    article: ArticleDefinition | None = None
    checkin_text: str | None = None


def _page(
    container: ContainerDep, template: str, status_code: int = 200, **context: Any
) -> HTMLResponse:
    settings = container.settings
    html = container.pages.get_template(template).render(
        hospital_name=settings.hospital_name, hospital_phone=settings.hospital_phone, **context
    )
    return HTMLResponse(html, status_code=status_code, headers=PAGE_HEADERS)


def _message(
    container: ContainerDep, status_code: int, heading: str, *lines: str, tone: str = "notice"
) -> HTMLResponse:
    return _page(
        container, "message.html", status_code, heading=heading, lines=list(lines), tone=tone
    )


def _invalid(container: ContainerDep) -> HTMLResponse:
    return _message(
        container,
        status.HTTP_404_NOT_FOUND,
        "链接无效",
        "该链接不完整或已被修改，请检查短信中的链接是否完整打开。",
    )


# What the patient was asked to do, by action, for the page that says its time is over.
_LAPSED = {
    "form": "该问卷的填写时间已过。",
    "article": "该文章的阅读时间已过。",
    "checkin": "该打卡任务的时间已过。",
}


def _expired(container: ContainerDep, task: CareTask | None = None) -> HTMLResponse:
    action = task.action_type if task is not None else None
    return _message(
        container,
        status.HTTP_410_GONE,
        "链接已过期",
        _LAPSED.get(action or "", "该链接的有效时间已过。"),
        "医护人员可能会通过电话与您联系。",
    )


def _done(container: ContainerDep, task: CareTask) -> HTMLResponse | None:
    """The page for a task the patient has already done, or None if it is not done. Shown for
    as long as the link exists, before and after its validity: a patient who submitted is told
    so, not that the link expired."""
    if task.action_type == "checkin" and task.status == TaskStatus.COMPLETED:
        return _message(
            container, status.HTTP_200_OK, "已打卡", "今天的任务已完成，继续加油！", tone="ok"
        )
    if task.action_type == "article" and task.status == TaskStatus.READ:
        return _message(
            container, status.HTTP_200_OK, "已阅读", "您已阅读本文，感谢您的关注。", tone="ok"
        )
    if task.form_id is not None and task.status in (TaskStatus.COMPLETED, TaskStatus.ABNORMAL):
        return _already_answered(container)
    return None


def _already_answered(container: ContainerDep) -> HTMLResponse:
    return _message(
        container, status.HTTP_200_OK, "您已提交", "您已完成本次问卷，感谢您的配合。", tone="ok"
    )


async def _open(
    token: str, container: ContainerDep, session: SessionDep
) -> _OpenTask | HTMLResponse:
    try:
        task_id, expired = container.links.verify(token, utcnow()).task_id, False
    except LinkExpired as exc:
        # Signed by us, only too old: the task still decides what the patient is shown.
        task_id, expired = exc.task_id, True
    except LinkError:
        log.warning("patient link refused", reason="bad token")
        return _invalid(container)
    task = await session.get(CareTask, task_id)
    run = await session.get(PathwayRun, task.workflow_id) if task else None
    if task is None or run is None:
        return _invalid(container)
    done = _done(container, task)
    if done is not None and task.action_type != "article":
        return done
    if expired:
        return done or _expired(container, task)
    snapshot = PathwaySnapshot.model_validate(run.plan_snapshot)
    if task.action_type == "article":
        article = snapshot.articles.get(task.article_id or "")
        if article is None:
            return _invalid(container)
        if task.status not in (TaskStatus.SENT, TaskStatus.READ, TaskStatus.PENDING):
            return _expired(container, task)
        return _OpenTask(task=task, article=article)
    if task.action_type == "checkin":
        step = snapshot.definition.step(task.step_id)
        if task.status not in (TaskStatus.SENT, TaskStatus.PENDING) or step is None:
            return _expired(container, task)
        return _OpenTask(task=task, checkin_text=step.action.text or step.title)
    if task.form_id is None:
        return _invalid(container)
    if task.status not in (TaskStatus.SENT, TaskStatus.PENDING):
        return _expired(container, task)
    form = snapshot.forms.get(task.form_id)
    return _invalid(container) if form is None else _OpenTask(task=task, form=form)


async def _signal(
    container: ContainerDep, task: CareTask, name: str, payload: object
) -> HTMLResponse | None:
    """Delivers the patient's action to the run; a page to show instead when it cannot."""
    try:
        await container.temporal.get_workflow_handle(task.workflow_id).signal(name, payload)
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            # The run has ended (every step closed) since the page was opened.
            return _expired(container, task)
        log.error("patient signal failed", task_id=task.id, signal=name, error=str(exc))
        return _message(
            container,
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "系统繁忙",
            "您的操作暂未提交成功，请稍后重新打开链接再试。",
        )
    return None


def _form_page(
    container: ContainerDep,
    opened: _OpenTask,
    *,
    values: dict[str, list[str]],
    errors: list[AnswerError],
) -> HTMLResponse:
    assert opened.form is not None
    return _page(
        container,
        "form.html",
        status.HTTP_422_UNPROCESSABLE_CONTENT if errors else status.HTTP_200_OK,
        valid_until=opened.task.valid_until,
        **form_context(opened.form, values, errors),
    )


@router.get("/p/{token}", response_class=HTMLResponse)
async def show_form(token: Key, container: ContainerDep, session: SessionDep) -> HTMLResponse:
    opened = await _open(token, container, session)
    if isinstance(opened, HTMLResponse):
        return opened
    task = opened.task
    # Opening the link is the only "read" signal SMS has, and a more reliable one than WeChat's.
    await mark_read_by_task(session, task.id, utcnow())
    await session.commit()
    if opened.article is not None:
        if task.status != TaskStatus.READ:
            read = ArticleRead(step_id=task.step_id, occurrence=task.occurrence, at=utcnow())
            failed = await _signal(container, task, SIGNAL_ARTICLE_READ, read)
            if failed is not None:
                return failed
        return _page(container, "article.html", article=opened.article)
    if opened.checkin_text is not None:
        return _page(
            container,
            "checkin.html",
            title=task.title,
            text=opened.checkin_text,
            valid_until=task.valid_until,
        )
    return _form_page(container, opened, values={}, errors=[])


@router.post("/p/{token}", response_class=HTMLResponse)
async def submit_form(
    token: Key, request: Request, container: ContainerDep, session: SessionDep
) -> HTMLResponse:
    opened = await _open(token, container, session)
    if isinstance(opened, HTMLResponse):
        return opened
    if opened.checkin_text is not None:
        task = opened.task
        check = CheckIn(step_id=task.step_id, occurrence=task.occurrence, at=utcnow())
        failed = await _signal(container, task, SIGNAL_CHECKIN, check)
        if failed is not None:
            return failed
        return _message(
            container, status.HTTP_200_OK, "打卡成功", "今天的任务已完成，继续加油！", tone="ok"
        )
    if opened.form is None:
        return _invalid(container)
    posted = await request.form()
    raw: dict[str, list[str]] = {}
    for key, value in posted.multi_items():
        if isinstance(value, str):
            raw.setdefault(key, []).append(value)
    answers, errors = check_answers(opened.form, raw)
    if errors:
        return _form_page(container, opened, values=raw, errors=errors)

    task = opened.task
    submission = AnswerSubmission(
        step_id=task.step_id, occurrence=task.occurrence, answers=answers, submitted_at=utcnow()
    )
    failed = await _signal(container, task, SIGNAL_ANSWERS, submission)
    if failed is not None:
        return failed
    audit.record(
        session,
        actor_type="patient",
        actor_id=task.patient_id,
        action="followup.answers_submitted",
        target_type="care_task",
        target_id=task.id,
        patient_id=task.patient_id,
    )
    await session.commit()
    if abnormal_findings(opened.form, answers):
        return _message(
            container,
            status.HTTP_200_OK,
            "提交成功",
            "感谢您的配合。",
            "您的回答中有需要关注的情况，护士会尽快与您联系；如症状加重，请立即就医。",
        )
    return _message(
        container, status.HTTP_200_OK, "提交成功", "感谢您的配合，祝您早日康复！", tone="ok"
    )
