"""A patient's record (CM-5, FU-7): demographics as the role may see them, encounters, runs,
open alerts, trends of numeric answers drawn as charts, messages and their delivery; and one
run's timeline with its tasks, what was answered, who changed what, and its page in the
Temporal UI for operators. Every record opened is audited, as through the API."""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request, status
from fastapi.responses import HTMLResponse
from sqlmodel import col, select

from api.deps import ContainerDep, SessionDep
from api.permissions import Permission
from api.workbench.auth import PageError, Viewer, page_requires, visible_record
from api.workbench.render import AUDIT_ACTION_NAMES, render, staff_label
from api.workbench.run_actions import TASK_KINDS
from core.models import CareTask, PathwayRun, Patient, StaffUser
from core.settings import Settings
from core.validation import Key
from pathways.definition import PathwaySnapshot
from services import audit
from services.disclosure import Identifier, shown
from services.pathway_definitions import versions_of
from services.patient_records import patient_record
from services.scope import patient_in_scope
from services.staff_lists import MessageFilter, list_messages
from services.trends import Trend, patient_trends

router = APIRouter(include_in_schema=False)
RecordPage = Annotated[Viewer, Depends(page_requires(Permission.PATIENTS_READ))]
MESSAGES_SHOWN = 50

RUN_STATUS_NAMES = {"running": "进行中", "completed": "已完成", "ended": "已结束"}
MESSAGE_STATUS_NAMES = {
    "queued": "排队中",
    "scheduled": "待发送",
    "sending": "发送中",
    "sent": "已发送",
    "delivered": "已送达",
    "read": "已读",
    "failed": "发送失败",
    "suppressed": "患者已退订",
}


def temporal_ui(settings: Settings, workflow_id: str) -> str:
    """The run's page in the Temporal UI, for operators."""
    return (
        f"{settings.temporal_ui_url.rstrip('/')}/namespaces/{settings.temporal_namespace}"
        f"/workflows/{quote(workflow_id, safe='')}"
    )


def _trend_chart(trend: Trend) -> str:
    measure = trend.measure
    option: dict[str, Any] = {
        "tooltip": {"trigger": "axis"},
        "grid": {"left": 48, "right": 16, "top": 24, "bottom": 32},
        "xAxis": {"type": "time"},
        "yAxis": {"type": "value", "scale": True, "name": measure.unit or ""},
        "series": [
            {
                "name": measure.label,
                "type": "line",
                "data": [[p.at.isoformat(), p.value] for p in trend.points],
                "markPoint": {
                    "data": [
                        {"coord": [p.at.isoformat(), p.value], "itemStyle": {"color": "#cf1322"}}
                        for p in trend.points
                        if p.abnormal
                    ]
                },
            }
        ],
    }
    return json.dumps(option, ensure_ascii=False)


@router.get("/w/patients/{patient_id}", response_class=HTMLResponse)
async def patient_page(
    patient_id: Key,
    request: Request,
    container: ContainerDep,
    session: SessionDep,
    seen: RecordPage,
) -> HTMLResponse:
    patient = await session.get(Patient, patient_id)
    if patient is None or not await patient_in_scope(session, seen.staff, patient.id):
        raise PageError(status.HTTP_404_NOT_FOUND, "未找到该患者")
    found = await patient_record(session, patient)
    trends = await patient_trends(session, patient.id)
    messages, _ = await list_messages(
        session,
        seen.staff,
        MessageFilter(receiver=patient.id),
        limit=MESSAGES_SHOWN,
        offset=0,
    )
    role = seen.staff.role
    demographics = {
        "姓名": shown(role, Identifier.NAME, patient.name),
        "手机": shown(role, Identifier.PHONE, patient.phone),
        "身份证号": shown(role, Identifier.ID_NUMBER, patient.id_number or ""),
        "住址": shown(role, Identifier.ADDRESS, patient.address or ""),
    }
    audit.record(
        session,
        actor_type="staff",
        actor_id=seen.staff.id,
        action="patient.viewed",
        target_type="patient",
        target_id=patient.id,
        role=role,
        via="workbench",
    )
    await session.commit()
    return render(
        container,
        request,
        "patient.html",
        seen,
        patient=patient,
        demographics=demographics,
        record=found,
        trends=[(trend, _trend_chart(trend)) for trend in trends],
        messages=messages,
        run_status_names=RUN_STATUS_NAMES,
        message_status_names=MESSAGE_STATUS_NAMES,
    )


@router.get("/w/runs/{workflow_id}", response_class=HTMLResponse)
async def run_page(
    workflow_id: str,
    request: Request,
    container: ContainerDep,
    session: SessionDep,
    seen: RecordPage,
) -> HTMLResponse:
    run = await visible_record(session, seen.staff, PathwayRun, workflow_id[:200], "随访计划")
    tasks = (
        await session.exec(
            select(CareTask)
            .where(CareTask.workflow_id == run.workflow_id)
            .order_by(col(CareTask.due_at), col(CareTask.step_id), col(CareTask.occurrence))
        )
    ).all()
    trail = await audit.trail(session, run.workflow_id)
    staff_ids = sorted({e.actor_id for e in trail if e.actor_type == "staff" and e.actor_id})
    people = (
        await session.exec(select(StaffUser).where(col(StaffUser.id).in_(staff_ids)))
        if staff_ids
        else None
    )
    # Who did it, by name and role: "周个案（个案管理师）".
    actors = {u.id: staff_label(u.name, u.role) for u in (people.all() if people else [])}
    patient = await session.get(Patient, run.patient_id)
    assert patient is not None
    newer = [
        v.version
        for v in await versions_of(session, run.plan_id)
        if v.status == "published" and v.version > run.plan_version
    ]
    done = request.query_params.get("done", "")
    return render(
        container,
        request,
        "run.html",
        seen,
        run=run,
        patient_name=shown(seen.staff.role, Identifier.NAME, patient.name),
        tasks=tasks,
        trail=trail,
        actors=actors,
        action_names=AUDIT_ACTION_NAMES,
        plan_name=PathwaySnapshot.model_validate(run.plan_snapshot).definition.name,
        temporal_ui=temporal_ui(container.settings, run.workflow_id),
        run_status_names=RUN_STATUS_NAMES,
        can_operate=seen.can(Permission.RUNS_OPERATE),
        task_kinds=TASK_KINDS,
        newer=newer,
        notice={"task": "已添加人工任务", "migrated": "已迁移到新版本"}.get(done),
    )
