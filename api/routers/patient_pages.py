"""The page a patient opens from the SMS link: a mobile form, submitted to the running workflow.

Every failure is a readable page in Chinese with the right status code, never a stack trace:
a tampered link (404), an expired link or task (410), an incomplete form (422), or our side
being unavailable (503).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request, status
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.datastructures import FormData, UploadFile
from temporalio.service import RPCError, RPCStatusCode

from api.deps import ContainerDep, SessionDep
from api.form_body import BodyTooLarge, MalformedBody, read_form
from api.form_view import error_text, form_context
from api.routers.patient_files import file_url
from contracts.pathway import (
    SIGNAL_ANSWERS,
    SIGNAL_ARTICLE_READ,
    SIGNAL_CHECKIN,
    ArticleRead,
    CheckIn,
)
from contracts.runs import AnswerSubmission
from core.charts import ChartPoint, line_chart
from core.links import LinkError, LinkExpired
from core.logs import get_logger
from core.models import CareTask, Encounter, PathwayRun, Patient, TaskStatus, utcnow
from core.validation import Key
from pathways.answers import (
    UPLOAD_REFERENCE,
    AnswerError,
    ErrorCode,
    abnormal_findings,
    check_answers,
    compute_scores,
)
from pathways.definition import ArticleDefinition, PathwaySnapshot
from pathways.form_definition import UPLOAD_TYPES, FormDefinition, Question
from pathways.trends import measured, measures
from services import audit, uploads
from services.form_drafts import discard_draft, load_draft, save_draft
from services.message_status import mark_read_by_task
from services.trends import patient_trends
from services.uploads import StoredUpload, UploadRefused

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


def render_page(
    container: ContainerDep, template: str, status_code: int = 200, **context: Any
) -> HTMLResponse:
    settings = container.settings
    html = container.pages.get_template(template).render(
        hospital_name=settings.hospital_name, hospital_phone=settings.hospital_phone, **context
    )
    return HTMLResponse(html, status_code=status_code, headers=PAGE_HEADERS)


async def linked_patient(
    token: str, container: ContainerDep, session: SessionDep, *, expired: str
) -> Patient | HTMLResponse:
    """The patient a page's signed link names (their exams, their home-nursing orders); the
    clear page for a link that has expired (``expired`` says what to do) or was altered."""
    try:
        claims = container.links.verify(token, utcnow())
    except LinkExpired:
        return _message(container, status.HTTP_410_GONE, "链接已过期", expired)
    except LinkError:
        return _message(
            container, status.HTTP_404_NOT_FOUND, "链接无效", "该链接不完整或已被修改。"
        )
    patient = await session.get(Patient, claims.task_id)
    if patient is None:
        return _message(container, status.HTTP_404_NOT_FOUND, "链接无效", "未找到该记录。")
    return patient


def _message(
    container: ContainerDep,
    status_code: int,
    heading: str,
    *lines: str,
    tone: str = "notice",
    charts: list[str] | None = None,
) -> HTMLResponse:
    return render_page(
        container,
        "message.html",
        status_code,
        heading=heading,
        lines=list(lines),
        tone=tone,
        charts=charts or [],
    )


async def _own_trends(
    container: ContainerDep,
    session: SessionDep,
    task: CareTask,
    form: FormDefinition,
    answers: dict[str, list[str]],
) -> list[str]:
    """Charts of the numbers this form asks, over the patient's earlier answers and this one
    (FORM-4): only where there is an earlier answer to compare with."""
    now = utcnow()
    scores = compute_scores(form, answers)
    earlier = {t.measure.name: t for t in await patient_trends(session, task.patient_id)}
    charts = []
    for name, measure in measures(form).items():
        value = measured(name, answers, scores)
        before = earlier.get(name)
        if value is None or before is None:
            continue
        points = [ChartPoint(p.at, p.value, p.abnormal) for p in before.points]
        points.append(ChartPoint(now, value, measure.abnormal(value)))
        charts.append(
            line_chart(
                measure.label,
                points,
                tz=container.settings.tz,
                unit=measure.unit,
                limits=measure.limits,
            )
        )
    return charts


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
    if form is None:
        return _invalid(container)
    # SAT-2: only the questions about steps of care the patient's encounter went through.
    encounter = await session.get(Encounter, run.encounter_id) if run.encounter_id else None
    return _OpenTask(
        task=task, form=form.for_care_steps(encounter.care_steps if encounter else None)
    )


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
    token: str,
    *,
    values: dict[str, list[str]],
    errors: list[AnswerError],
    file_urls: dict[str, str] | None = None,
    draft_saved_at: datetime | None = None,
) -> HTMLResponse:
    assert opened.form is not None
    return render_page(
        container,
        "form.html",
        status.HTTP_422_UNPROCESSABLE_CONTENT if errors else status.HTTP_200_OK,
        valid_until=opened.task.valid_until,
        **form_context(
            opened.form,
            values,
            errors,
            upload_path=f"/p/{token}/uploads",
            file_urls=file_urls,
            draft_path=f"/p/{token}/draft",
            draft_saved_at=draft_saved_at,
        ),
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
        return render_page(container, "article.html", article=opened.article)
    if opened.checkin_text is not None:
        return render_page(
            container,
            "checkin.html",
            title=task.title,
            text=opened.checkin_text,
            valid_until=task.valid_until,
        )
    assert opened.form is not None
    draft = await load_draft(session, task.id)
    if draft is None:
        return _form_page(container, opened, token, values={}, errors=[])
    values, file_urls = await _shown_again(container, session, task, opened.form, draft.answers)
    return _form_page(
        container,
        opened,
        token,
        values=values,
        errors=[],
        file_urls=file_urls,
        draft_saved_at=draft.saved_at,
    )


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
    form, task = opened.form, opened.task
    try:
        posted = await read_form(
            request, _submission_limit(form), max_files=_submission_max_files(form)
        )
    except BodyTooLarge:
        return _message(
            container,
            status.HTTP_413_CONTENT_TOO_LARGE,
            "图片过大",
            "提交的图片超过了允许的大小，请选择较小的图片后重新提交。",
        )
    except MalformedBody:
        return _message(
            container,
            status.HTTP_400_BAD_REQUEST,
            "提交失败",
            "提交的内容不完整，请重新打开链接再试。",
        )
    try:
        raw, file_errors = await _posted_answers(container, session, task, form, posted)
    finally:
        await posted.close()
    if raw.pop(DRAFT_ACTION, None) == ["draft"]:
        # The page's "save and finish later" button, for a phone without the page's script.
        saved = await save_draft(session, task.id, form, raw, utcnow())
        await session.commit()
        values, file_urls = await _shown_again(container, session, task, form, saved.answers)
        return _form_page(
            container,
            opened,
            token,
            values=values,
            errors=file_errors,
            file_urls=file_urls,
            draft_saved_at=saved.saved_at,
        )
    answers, errors = check_answers(form, raw)
    errors += await uploads.foreign_references(session, task.id, form, answers)
    # A file refused at a question says why, instead of the question's other problems.
    refused = {e.key for e in file_errors}
    errors = file_errors + [e for e in errors if e.key not in refused]
    if errors:
        values, file_urls = await _shown_again(container, session, task, form, raw)
        return _form_page(
            container, opened, token, values=values, errors=errors, file_urls=file_urls
        )

    task = opened.task
    submission = AnswerSubmission(
        step_id=task.step_id, occurrence=task.occurrence, answers=answers, submitted_at=utcnow()
    )
    failed = await _signal(container, task, SIGNAL_ANSWERS, submission)
    if failed is not None:
        return failed
    await discard_draft(session, task.id)
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
    charts = await _own_trends(container, session, task, form, answers)
    if abnormal_findings(opened.form, answers):
        return _message(
            container,
            status.HTTP_200_OK,
            "提交成功",
            "感谢您的配合。",
            "您的回答中有需要关注的情况，护士会尽快与您联系；如症状加重，请立即就医。",
            charts=charts,
        )
    return _message(
        container,
        status.HTTP_200_OK,
        "提交成功",
        "感谢您的配合，祝您早日康复！",
        tone="ok",
        charts=charts,
    )


# ---- files: uploaded by the page's script, or posted with the form without it ---------------

# Room for the multipart framing, part headers and the form's text answers around the files.
_TEXT_ALLOWANCE = 1024 * 1024
_FILE_FIELD = "file"
# What the script is told when the link no longer opens the form, by the page the form shows.
_LINK_REFUSALS = {
    status.HTTP_404_NOT_FOUND: (
        status.HTTP_404_NOT_FOUND,
        "invalid_link",
        "链接无效，请检查短信中的链接是否完整打开。",
    ),
    status.HTTP_410_GONE: (status.HTTP_410_GONE, "link_expired", "链接已过期，无法继续上传。"),
    status.HTTP_200_OK: (
        status.HTTP_409_CONFLICT,
        "already_done",
        "您已完成本次问卷，无需再上传。",
    ),
}
_UPLOAD_STATUS = {
    "file_too_large": status.HTTP_413_CONTENT_TOO_LARGE,
    "file_type_not_accepted": status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
    "not_an_image": status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
    "file_type_mismatch": status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
    "damaged_image": status.HTTP_422_UNPROCESSABLE_CONTENT,
    "too_many_files": status.HTTP_409_CONFLICT,
}


def _upload_questions(form: FormDefinition) -> list[Question]:
    return [q for q in form.questions if q.type in UPLOAD_TYPES]


def _submission_limit(form: FormDefinition) -> int:
    files = sum((q.max_files or 1) * (q.max_bytes or 0) for q in _upload_questions(form))
    return files + _TEXT_ALLOWANCE


def _submission_max_files(form: FormDefinition) -> int:
    # Photos have two inputs (camera and album), either of which may post.
    return sum(2 * (q.max_files or 1) for q in _upload_questions(form))


def _upload_json(status_code: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(
        {"code": code, "message": message},
        status_code=status_code,
        headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
    )


def _file_refused(question: Question, code: ErrorCode) -> JSONResponse:
    return _upload_json(
        _UPLOAD_STATUS.get(code, status.HTTP_422_UNPROCESSABLE_CONTENT),
        code,
        error_text(question, AnswerError(question.id, code)),
    )


async def _read_file(upload: UploadFile, question: Question) -> bytes:
    # One byte past the limit is enough to know it is too large.
    return await upload.read((question.max_bytes or 0) + 1)


async def _store(
    container: ContainerDep,
    session: SessionDep,
    task: CareTask,
    question: Question,
    upload: UploadFile,
) -> StoredUpload:
    stored = await uploads.store_upload(
        session,
        container.files,
        owner=uploads.UploadOwner.task(task.id),
        question=question,
        data=await _read_file(upload, question),
        declared_type=upload.content_type,
    )
    if stored.created:
        audit.record(
            session,
            actor_type="patient",
            actor_id=task.patient_id,
            action="followup.file_uploaded",
            target_type="upload",
            target_id=stored.reference,
            patient_id=task.patient_id,
            task_id=task.id,
            question_id=question.id,
        )
    return stored


@router.post("/p/{token}/uploads/{question_id}")
async def upload_file(
    token: Key,
    question_id: Key,
    request: Request,
    container: ContainerDep,
    session: SessionDep,
) -> JSONResponse:
    """One photo or signature, sent by the page's script as soon as it is chosen or drawn:
    the reference to answer with and a link to show it."""
    opened = await _open(token, container, session)
    if isinstance(opened, HTMLResponse):
        refusal = _LINK_REFUSALS.get(opened.status_code)
        if refusal is None:
            return _upload_json(opened.status_code, "unavailable", "系统繁忙，请稍后再试。")
        return _upload_json(*refusal)
    question = opened.form.question(question_id) if opened.form is not None else None
    if question is None or question.type not in UPLOAD_TYPES:
        return _upload_json(
            status.HTTP_404_NOT_FOUND,
            "not_an_upload_question",
            "提交的内容与问卷不符，请刷新页面后重新填写。",
        )
    limit = (question.max_bytes or 0) + _TEXT_ALLOWANCE
    try:
        posted = await read_form(request, limit, max_files=1)
    except BodyTooLarge:
        return _file_refused(question, "file_too_large")
    except MalformedBody:
        return _upload_json(status.HTTP_400_BAD_REQUEST, "malformed", "上传失败，请重试。")
    try:
        upload = posted.get(_FILE_FIELD)
        if not isinstance(upload, UploadFile):
            return _upload_json(
                status.HTTP_422_UNPROCESSABLE_CONTENT, "no_file", "请选择要上传的图片。"
            )
        stored = await _store(container, session, opened.task, question, upload)
    except UploadRefused as refused:
        log.info("upload refused", task_id=opened.task.id, question=question.id, code=refused.code)
        return _file_refused(question, refused.code)
    finally:
        await posted.close()
    with uploads.discarded_unless_committed(container.files, [stored]):
        await session.commit()
    return JSONResponse(
        {
            "reference": stored.reference,
            "url": file_url(container, stored.reference),
            "content_type": stored.content_type,
            "size": stored.size,
        },
        status_code=status.HTTP_201_CREATED if stored.created else status.HTTP_200_OK,
        headers={"Cache-Control": "no-store"},
    )


async def _posted_answers(
    container: ContainerDep,
    session: SessionDep,
    task: CareTask,
    form: FormDefinition,
    posted: FormData,
) -> tuple[dict[str, list[str]], list[AnswerError]]:
    """The posted answers as check_answers takes them. Files posted with the form (a page
    without its script) are stored as the script would have sent them, and answer with their
    references; a refused file is an error at its question."""
    raw: dict[str, list[str]] = {}
    new: dict[str, list[str]] = {}
    errors: list[AnswerError] = []
    stored: list[StoredUpload] = []
    for key, value in posted.multi_items():
        if isinstance(value, str):
            raw.setdefault(key, []).append(value)
            continue
        question = form.question(key)
        # A file input left empty still posts a part, without a name or bytes.
        if question is None or question.type not in UPLOAD_TYPES or not value.filename:
            continue
        if any(e.key == key for e in errors):
            continue
        try:
            upload = await _store(container, session, task, question, value)
        except UploadRefused as refused:
            errors.append(AnswerError(key, refused.code))
            continue
        stored.append(upload)
        new.setdefault(key, []).append(upload.reference)
    if stored:
        # Kept whatever else is wrong with the answers: the page shows them again to keep.
        with uploads.discarded_unless_committed(container.files, stored):
            await session.commit()
    for key, references in new.items():
        question = form.question(key)
        limit = (question.max_files if question else None) or 1
        kept = raw.get(key, [])
        if len(references) <= limit:
            # New files replace the oldest kept ones when together they are too many.
            kept = kept[max(0, len(kept) + len(references) - limit) :]
        raw[key] = kept + references
    return raw, errors


async def _shown_again(
    container: ContainerDep,
    session: SessionDep,
    task: CareTask,
    form: FormDefinition,
    raw: dict[str, list[str]],
) -> tuple[dict[str, list[str]], dict[str, str]]:
    """What a page with errors shows again at upload questions: only files uploaded for this
    task and question, each with a fresh link to show it."""
    questions = _upload_questions(form)
    owned = await uploads.owned_references(
        session, task.id, [r for q in questions for r in raw.get(q.id, [])]
    )
    values = dict(raw)
    for q in questions:
        if q.id in values:
            values[q.id] = [r for r in values[q.id] if owned.get(r) == q.id]
    urls = {r: file_url(container, r) for r in owned if UPLOAD_REFERENCE.match(r)}
    return values, urls


# ---- drafts: the page's script saves the answers as the patient goes ---------------------------

# The name of the page's "save and finish later" button; never an answer key (no dot, no slug).
DRAFT_ACTION = "_action"


@router.post("/p/{token}/draft")
async def autosave_draft(
    token: Key, request: Request, container: ContainerDep, session: SessionDep
) -> JSONResponse:
    """The answers so far, posted by the page's script as the patient fills the form in (the
    same encoding as the form; files are uploaded on their own and appear as references)."""
    opened = await _open(token, container, session)
    if isinstance(opened, HTMLResponse):
        refusal = _LINK_REFUSALS.get(opened.status_code)
        if refusal is None:
            return _upload_json(opened.status_code, "unavailable", "系统繁忙，请稍后再试。")
        return _upload_json(*refusal)
    if opened.form is None:
        return _upload_json(*_LINK_REFUSALS[status.HTTP_404_NOT_FOUND])
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        # Anything else would read as no answers at all, and wipe the draft.
        return _upload_json(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, "unsupported", "草稿须以表单格式提交。"
        )
    try:
        posted = await read_form(request, _TEXT_ALLOWANCE, max_files=0)
    except BodyTooLarge:
        return _upload_json(status.HTTP_413_CONTENT_TOO_LARGE, "too_large", "草稿内容过长。")
    except MalformedBody:
        return _upload_json(status.HTTP_400_BAD_REQUEST, "malformed", "草稿内容不完整。")
    raw: dict[str, list[str]] = {}
    for key, value in posted.multi_items():
        if isinstance(value, str):
            raw.setdefault(key, []).append(value)
    await posted.close()
    saved = await save_draft(session, opened.task.id, opened.form, raw, utcnow())
    await session.commit()
    return JSONResponse(
        {"saved_at": saved.saved_at.isoformat()},
        headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
    )
