"""My queue (FU-8): a nurse's, doctor's or care manager's phone follow-ups, calls and visits for
today, this week or whenever, the most overdue first; recording one's outcome with the next
follow-up date."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.deps import ContainerDep, SessionDep
from api.permissions import Permission
from api.routers.patient_files import file_url
from api.workbench.auth import (
    Viewer,
    page_requires,
    posted_form,
    visible_record,
)
from api.workbench.exports import EXPORT_LIMIT, download, exported, local_time
from api.workbench.render import render
from contracts.pathway import UPDATE_COMPLETE_TASK, Occurrence, TaskCompletion
from core.models import CareTask, PathwayRun, Patient, TaskStatus, utcnow
from core.validation import Key
from pathways.definition import PathwaySnapshot
from pathways.form_definition import UPLOAD_TYPES
from services.spreadsheets import Column, workbook
from services.staff_lists import due_window, open_work, patient_brief, task_response
from services.updates import UpdateConflict, run_update

router = APIRouter(include_in_schema=False)
ClinicalPage = Annotated[Viewer, Depends(page_requires(Permission.RUNS_OPERATE))]

PAGE_SIZE = 50
WINDOWS = {"today": "今天", "week": "本周", "all": "全部"}
OUTCOMES = {"completed": "已完成（正常）", "abnormal": "异常，需要跟进"}
NOTE_LIMIT = 300
QUEUE_COLUMNS = [
    Column("应随访时间", 18),
    Column("逾期", 6),
    Column("任务", 26),
    Column("随访计划", 22),
    Column("患者", 10),
    Column("病历号", 12),
    Column("手机", 14),
]


@router.get("/w/queue", response_class=HTMLResponse)
async def queue(
    request: Request,
    container: ContainerDep,
    session: SessionDep,
    seen: ClinicalPage,
    due: Literal["today", "week", "all"] = "today",
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> HTMLResponse:
    now = utcnow()
    window = due_window(due, now, container.settings.tz)
    rows, total = await open_work(
        session,
        seen.staff,
        until=window[1] if window else None,
        limit=PAGE_SIZE,
        offset=(page - 1) * PAGE_SIZE,
    )
    return render(
        container,
        request,
        "queue.html",
        seen,
        windows=WINDOWS,
        due=due,
        tasks=[(task, patient_brief(patient, seen.staff.role)) for task, patient in rows],
        total=total,
        page=page,
        pages=max(1, -(-total // PAGE_SIZE)),
        now=now,
        notice=request.query_params.get("done") and "已登记随访结果",
    )


@router.get("/w/queue.xlsx")
async def queue_workbook(
    container: ContainerDep,
    session: SessionDep,
    seen: ClinicalPage,
    due: Literal["today", "week", "all"] = "today",
) -> Response:
    """The queue as Excel, for a ward's paper round or a handover; the patient's name as the
    role sees it (services.disclosure) and the phone masked."""
    now, tz = utcnow(), container.settings.tz
    window = due_window(due, now, tz)
    rows, total = await open_work(
        session, seen.staff, until=window[1] if window else None, limit=EXPORT_LIMIT
    )
    stamp = await exported(session, seen, "queue", f"due={due}", container.settings.tz)
    cut = f"（只导出了最早的 {EXPORT_LIMIT} 条）" if total > EXPORT_LIMIT else ""
    cells: list[list[str | int | float | None]] = []
    for task, patient in rows:
        brief = patient_brief(patient, seen.staff.role)
        cells.append(
            [
                local_time(task.due_at, tz),
                "逾期" if task.due_at < now else "",
                task.title,
                task.plan_id,
                brief["name"],
                brief["his_patient_id"],
                brief["phone_masked"],
            ]
        )
    data = workbook(
        "我的待办",
        [f"{WINDOWS[due]}：共 {total} 条{cut}", stamp],
        QUEUE_COLUMNS,
        cells,
    )
    return download(data, f"queue-{due}-{now.astimezone(tz).date()}.xlsx")


async def _task(session: SessionDep, seen: Viewer, task_id: str) -> tuple[CareTask, Patient]:
    task = await visible_record(session, seen.staff, CareTask, task_id, "任务")
    patient = await session.get(Patient, task.patient_id)
    assert patient is not None
    return task, patient


def _task_page(
    request: Request,
    container: ContainerDep,
    seen: Viewer,
    task: CareTask,
    patient: Patient,
    status_code: int = status.HTTP_200_OK,
    **context: Any,
) -> HTMLResponse:
    tz = container.settings.tz
    return render(
        container,
        request,
        "task.html",
        seen,
        status_code,
        task=task,
        patient=patient_brief(patient, seen.staff.role),
        outcomes=OUTCOMES,
        open=task.status == TaskStatus.SENT and task.action_type == "staff_task",
        earliest=(utcnow().astimezone(tz).date() + timedelta(days=1)).isoformat(),
        errors=context.pop("errors", {}),
        values=context.pop("values", {}),
        answers=context.pop("answers", None),
        **context,
    )


async def _answers(
    container: ContainerDep, session: SessionDep, task: CareTask
) -> list[tuple[str, list[str], list[str]]] | None:
    """The patient's submitted answers, each question's text with the answers as the patient
    saw them (option labels) and links to any photo or signature; None if nothing submitted."""
    response = await task_response(session, task.id)
    run = await session.get(PathwayRun, task.workflow_id)
    if response is None or run is None:
        return None
    form = PathwaySnapshot.model_validate(run.plan_snapshot).forms.get(response.form_id)
    if form is None:
        return [(qid, values, []) for qid, values in response.answers.items()]
    shown: list[tuple[str, list[str], list[str]]] = []
    for question in form.questions:
        values = response.answers.get(question.id)
        if not values:
            continue
        labels = {o.value: o.label for o in question.options}
        if question.type in UPLOAD_TYPES:
            shown.append((question.text, [], [file_url(container, v) for v in values]))
        else:
            unit = f" {question.unit}" if question.unit else ""
            shown.append((question.text, [labels.get(v, v) + unit for v in values], []))
    return shown


@router.get("/w/tasks/{task_id}", response_class=HTMLResponse)
async def task_page(
    task_id: Key, request: Request, container: ContainerDep, session: SessionDep, seen: ClinicalPage
) -> HTMLResponse:
    task, patient = await _task(session, seen, task_id)
    answers = await _answers(container, session, task)
    return _task_page(request, container, seen, task, patient, answers=answers)


def _completion(
    fields: dict[str, str], tz: Any, today: date
) -> tuple[dict[str, str], dict[str, Any]]:
    """The form's errors by field, and the checked values."""
    errors: dict[str, str] = {}
    outcome = fields.get("outcome", "")
    if outcome not in OUTCOMES:
        errors["outcome"] = "请选择随访结果"
    note = fields.get("note", "").strip()
    if not note:
        errors["note"] = "请填写随访记录"
    elif len(note) > NOTE_LIMIT:
        errors["note"] = f"随访记录不能超过{NOTE_LIMIT}字"
    next_at: datetime | None = None
    raw = fields.get("next_followup_on", "").strip()
    if raw:
        try:
            day = date.fromisoformat(raw)
        except ValueError:
            errors["next_followup_on"] = "日期格式不正确"
        else:
            if not today < day <= today + timedelta(days=366):
                errors["next_followup_on"] = "下次随访日期须在明天到一年之内"
            else:
                # Nine in the morning, hospital time: when the call lands in the queue.
                next_at = datetime.combine(day, time(9, 0), tzinfo=tz)
    return errors, {"outcome": outcome, "note": note, "next_at": next_at}


@router.post("/w/tasks/{task_id}/complete", response_class=HTMLResponse)
async def complete(
    task_id: Key, request: Request, container: ContainerDep, session: SessionDep, seen: ClinicalPage
) -> Response:
    fields = dict(await posted_form(request, seen))
    task, patient = await _task(session, seen, task_id)
    tz = container.settings.tz
    errors, values = _completion(fields, tz, utcnow().astimezone(tz).date())
    if errors:
        return _task_page(
            request,
            container,
            seen,
            task,
            patient,
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            errors=errors,
            values=fields,
        )
    change = TaskCompletion(
        key=f"{task.step_id}#{task.occurrence}",
        outcome=values["outcome"],
        reason=values["note"],
        next_followup_at=values["next_at"],
        actor=seen.staff.id,
    )
    try:
        await run_update(
            None,
            container.temporal,
            task.workflow_id,
            UPDATE_COMPLETE_TASK,
            change,
            Occurrence,
            ended="该随访计划已结束",
        )
    except UpdateConflict:
        # Someone else recorded it first (a stale page), or the plan ended meanwhile.
        await session.refresh(task)
        return _task_page(
            request,
            container,
            seen,
            task,
            patient,
            status.HTTP_409_CONFLICT,
            notice="该任务已由他人登记结果或已关闭，本次未重复登记。",
            notice_tone="warn",
        )
    return RedirectResponse("/w/queue?done=1", status.HTTP_303_SEE_OTHER)
