"""What clinical staff do to one run from its page: add a manual task (a phone follow-up, an
outbound call or a visit) for a date, and move the run to a newer published version after
looking at the dry run's changes (kept, rescheduled, removed, added)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel
from sqlmodel import col, select
from temporalio.client import WorkflowQueryFailedError

from api.deps import ContainerDep, SessionDep
from api.permissions import Permission
from api.workbench.auth import PageError, Viewer, page_requires, posted_form, visible_record
from api.workbench.render import render
from contracts.pathway import (
    QUERY_MIGRATION_PLAN,
    UPDATE_ADD_STEP,
    UPDATE_MIGRATE,
    AdHocStep,
    Migration,
    MigrationPlan,
    Occurrence,
)
from core.models import CareTask, PathwayRun, utcnow
from pathways.definition import Action, PathwaySnapshot
from services.pathway_definitions import DefinitionConflict, published_snapshot
from services.updates import UpdateConflict, run_update

router = APIRouter(include_in_schema=False)
ClinicalPage = Annotated[Viewer, Depends(page_requires(Permission.RUNS_OPERATE))]

TASK_KINDS = {
    "phone_followup": "电话随访",
    "outbound_call": "外呼",
    "offline_visit": "上门/门诊随访",
}
CHANGE_NAMES = {
    "kept_in_progress": "保留（进行中）",
    "rescheduled": "改期",
    "removed": "取消",
    "added": "新增",
}
OPEN = ("pending", "sent", "expired")


async def _run(session: SessionDep, seen: Viewer, workflow_id: str) -> PathwayRun:
    return await visible_record(session, seen.staff, PathwayRun, workflow_id[:200], "随访计划")


async def _update(
    container: ContainerDep,
    run: PathwayRun,
    name: str,
    change: BaseModel,
    result: type[BaseModel],
    *,
    refused: str,
) -> None:
    """One update on the run; a refusal (or a run that has ended) is a page saying why."""
    try:
        await run_update(
            None, container.temporal, run.workflow_id, name, change, result,
            ended="该随访计划已结束",
        )  # fmt: skip
    except UpdateConflict as conflict:
        raise PageError(status.HTTP_409_CONFLICT, refused, str(conflict)) from None


def _back(run: PathwayRun, notice: str) -> RedirectResponse:
    return RedirectResponse(f"/w/runs/{run.workflow_id}?done={notice}", status.HTTP_303_SEE_OTHER)


@router.post("/w/runs/{workflow_id}/steps")
async def add_task(
    workflow_id: str,
    request: Request,
    container: ContainerDep,
    session: SessionDep,
    seen: ClinicalPage,
) -> Response:
    fields = await posted_form(request, seen)
    run = await _run(session, seen, workflow_id)
    tz = container.settings.tz
    today = utcnow().astimezone(tz).date()
    errors: dict[str, str] = {}
    title = fields.get("title", "").strip()
    if not 1 <= len(title) <= 100:
        errors["title"] = "请填写任务名称（100字以内）"
    kind = fields.get("task_kind", "")
    if kind not in TASK_KINDS:
        errors["task_kind"] = "请选择任务类型"
    note = fields.get("note", "").strip()
    if not 1 <= len(note) <= 300:
        errors["note"] = "请填写添加原因（300字以内）"
    try:
        day = date.fromisoformat(fields.get("due_on", ""))
        if not today <= day <= today + timedelta(days=366):
            errors["due_on"] = "日期须在今天到一年之内"
    except ValueError:
        errors["due_on"] = "请选择日期"
    if errors:
        raise PageError(status.HTTP_422_UNPROCESSABLE_CONTENT, "未添加", "；".join(errors.values()))
    due = max(datetime.combine(day, time(9, 0), tz), utcnow() + timedelta(minutes=1))
    change = AdHocStep(
        actor=seen.staff.id,
        reason=note,
        title=title,
        action=Action(type="staff_task", task_kind=kind, role=seen.staff.role.value),
        due_at=due,
    )
    await _update(container, run, UPDATE_ADD_STEP, change, Occurrence, refused="未添加")
    return _back(run, "task")


async def _plan(session: SessionDep, run: PathwayRun, to_version: int, actor: str) -> Migration:
    try:
        target = await published_snapshot(session, run.plan_id, to_version)
    except (LookupError, DefinitionConflict):
        raise PageError(status.HTTP_404_NOT_FOUND, f"第{to_version}版不存在或未发布") from None
    if to_version <= run.plan_version:
        raise PageError(status.HTTP_409_CONFLICT, "只能迁移到更新的版本")
    open_steps = (
        await session.exec(
            select(CareTask.step_id).where(
                CareTask.workflow_id == run.workflow_id, col(CareTask.status).in_(OPEN)
            )
        )
    ).all()
    # A step that the new version still has carries on as itself; any other is closed.
    kept = {s.id for s in target.definition.steps}
    mapping: dict[str, str | None] = {s: (s if s in kept else None) for s in set(open_steps)}
    reason = f"迁移到第{to_version}版"
    return Migration(target=target, mapping=mapping, reason=reason, actor=actor)


@router.get("/w/runs/{workflow_id}/migration", response_class=HTMLResponse)
async def migration_preview(
    workflow_id: str,
    request: Request,
    container: ContainerDep,
    session: SessionDep,
    seen: ClinicalPage,
    to: int = 0,
) -> HTMLResponse:
    run = await _run(session, seen, workflow_id)
    migration = await _plan(session, run, to, seen.staff.id)
    try:
        plan: MigrationPlan = await container.temporal.get_workflow_handle(run.workflow_id).query(
            QUERY_MIGRATION_PLAN, migration, result_type=MigrationPlan
        )
    except WorkflowQueryFailedError as failed:
        raise PageError(status.HTTP_409_CONFLICT, "无法迁移", str(failed.message)) from None
    current = PathwaySnapshot.model_validate(run.plan_snapshot).definition.steps
    return render(
        container,
        request,
        "migration.html",
        seen,
        run=run,
        plan=plan,
        to=to,
        change_names=CHANGE_NAMES,
        old_titles={s.id: s.title for s in current},
        new_titles={s.id: s.title for s in migration.target.definition.steps},
    )


@router.post("/w/runs/{workflow_id}/migration")
async def migrate(
    workflow_id: str,
    request: Request,
    container: ContainerDep,
    session: SessionDep,
    seen: ClinicalPage,
) -> Response:
    fields = await posted_form(request, seen)
    run = await _run(session, seen, workflow_id)
    to = int(fields.get("to", "0")) if fields.get("to", "").isdigit() else 0
    migration = await _plan(session, run, to, seen.staff.id)
    await _update(container, run, UPDATE_MIGRATE, migration, MigrationPlan, refused="未迁移")
    return _back(run, "migrated")
