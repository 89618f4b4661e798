"""Pathways (CM-1, CM-4): the library, a pathway's versions, a version's whole timeline drawn for
a sample anchor date, and for designers (care managers, administrators) validating a draft and
publishing it after looking at its timeline."""

from __future__ import annotations

import json
from datetime import date, datetime, time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.deps import ContainerDep, SessionDep
from api.permissions import Permission
from api.workbench.auth import PageError, Viewer, page_requires, posted_form
from api.workbench.render import render
from core.models import Pathway, PathwayVersion, utcnow
from core.validation import Key
from pathways.definition import PathwaySnapshot
from pathways.timeline import PlannedStep, planned_steps
from services import audit
from services.pathway_definitions import (
    DefinitionConflict,
    DefinitionRejected,
    Published,
    pathways_with_version_counts,
    publish,
    versions_of,
)

router = APIRouter(include_in_schema=False)
ReaderPage = Annotated[Viewer, Depends(page_requires(Permission.PATHWAYS_READ))]
DesignerPage = Annotated[Viewer, Depends(page_requires(Permission.PATHWAYS_DESIGN))]

KIND_NAMES = {
    "followup": "随访",
    "education": "宣教",
    "satisfaction": "满意度",
    "case_management": "个案管理",
}
ACTION_NAMES = {
    "form": "问卷",
    "survey": "调查",
    "article": "宣教文章",
    "reminder": "提醒",
    "staff_task": "人工任务",
    "his_callback": "HIS 回调",
    "checkin": "打卡",
    "revisit": "复诊",
}
AVAILABILITY_NAMES = {"active": "启用", "suspended": "已暂停", "retired": "已停用"}
VERSION_STATUS_NAMES = {"draft": "草稿", "published": "已发布"}


@router.get("/w/pathways", response_class=HTMLResponse)
async def library(
    request: Request, container: ContainerDep, session: SessionDep, seen: ReaderPage
) -> HTMLResponse:
    return render(
        container,
        request,
        "pathways.html",
        seen,
        pathways=await pathways_with_version_counts(session),
        kinds=KIND_NAMES,
        availability=AVAILABILITY_NAMES,
    )


def _chart(planned: list[PlannedStep], anchor: datetime) -> str:
    """Each occurrence as a point: days after the anchor, one row per step."""
    steps = list(dict.fromkeys(p.title for p in planned))
    option: dict[str, Any] = {
        "tooltip": {"trigger": "item"},
        "grid": {"left": 140, "right": 24, "top": 16, "bottom": 40},
        "xAxis": {"type": "value", "name": "天", "min": 0},
        "yAxis": {"type": "category", "data": steps, "inverse": True},
        "series": [
            {
                "type": "scatter",
                "symbolSize": 12,
                "data": [
                    [round((p.due_at - anchor).total_seconds() / 86400, 2), p.title]
                    for p in planned
                ],
            }
        ],
    }
    return json.dumps(option, ensure_ascii=False)


async def _version_view(
    request: Request,
    container: ContainerDep,
    session: SessionDep,
    seen: Viewer,
    pathway_id: str,
    status_code: int = status.HTTP_200_OK,
    **context: Any,
) -> HTMLResponse:
    pathway = await session.get(Pathway, pathway_id)
    if pathway is None:
        raise PageError(status.HTTP_404_NOT_FOUND, "未找到该随访计划")
    rows = await versions_of(session, pathway_id)
    if not rows:
        raise PageError(status.HTTP_404_NOT_FOUND, "该计划还没有版本")
    wanted = request.query_params.get("version", "")
    chosen = next((r for r in rows if str(r.version) == wanted), rows[-1])
    tz = container.settings.tz
    errors: dict[str, str] = {}
    raw_anchor = request.query_params.get("anchor", "")
    try:
        anchor_day = (
            date.fromisoformat(raw_anchor) if raw_anchor else utcnow().astimezone(tz).date()
        )
    except ValueError:
        errors["anchor"] = "日期格式不正确"
        anchor_day = utcnow().astimezone(tz).date()
    anchor = datetime.combine(anchor_day, time(9, 0), tz)
    problems: list[Any] = []
    planned: list[PlannedStep] = []
    try:
        snapshot = (
            PathwaySnapshot.model_validate(chosen.snapshot)
            if chosen.snapshot is not None
            else container.design.snapshot(
                chosen.body, chosen.version, await Published.load(session)
            )
        )
        planned = planned_steps(snapshot.definition, anchor, tz)
    except DefinitionRejected as rejected:
        problems = list(rejected.problems)
    return render(
        container,
        request,
        "pathway.html",
        seen,
        status_code,
        pathway=pathway,
        versions=rows,
        chosen=chosen,
        anchor_day=anchor_day,
        anchor=anchor,
        planned=planned,
        chart=_chart(planned, anchor) if planned else "",
        problems=problems + list(context.pop("problems", [])),
        errors=errors,
        designer=seen.can(Permission.PATHWAYS_DESIGN),
        actions=ACTION_NAMES,
        version_status=VERSION_STATUS_NAMES,
        **context,
    )


@router.get("/w/pathways/{pathway_id}", response_class=HTMLResponse)
async def pathway_page(
    pathway_id: Key,
    request: Request,
    container: ContainerDep,
    session: SessionDep,
    seen: ReaderPage,
) -> HTMLResponse:
    published = request.query_params.get("published")
    notice = f"第{published}版已发布" if published and published.isdigit() else None
    return await _version_view(request, container, session, seen, pathway_id, notice=notice)


@router.post("/w/pathways/{pathway_id}/versions/{version}/publish")
async def publish_page(
    pathway_id: Key,
    version: int,
    request: Request,
    container: ContainerDep,
    session: SessionDep,
    seen: DesignerPage,
) -> Response:
    await posted_form(request, seen)
    row: PathwayVersion | None = next(
        (r for r in await versions_of(session, pathway_id) if r.version == version), None
    )
    if row is None:
        raise PageError(status.HTTP_404_NOT_FOUND, "未找到该版本")
    try:
        await publish(session, container.design, pathway_id, version, seen.staff.id)
    except DefinitionConflict:
        return await _version_view(
            request,
            container,
            session,
            seen,
            pathway_id,
            status.HTTP_409_CONFLICT,
            notice="未发布：该版本已经发布（可能已由他人发布），请查看最新状态。",
            notice_tone="warn",
        )
    except DefinitionRejected as rejected:
        return await _version_view(
            request,
            container,
            session,
            seen,
            pathway_id,
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            notice="未发布：定义有误，请先修正下列问题",
            notice_tone="error",
            problems=list(rejected.problems),
        )
    audit.record(
        session,
        actor_type="staff",
        actor_id=seen.staff.id,
        action="pathway.published",
        target_type="pathway",
        target_id=pathway_id,
        version=version,
    )
    await session.commit()
    return RedirectResponse(
        f"/w/pathways/{pathway_id}?version={version}&published={version}",
        status.HTTP_303_SEE_OTHER,
    )
