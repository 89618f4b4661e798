"""Alerts (FU-9): open, in hand, resolved; acknowledging one, and resolving it with a note of what
was done. With the page's script a row updates in place; without it the form posts and the page
comes back."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.deps import ContainerDep, SessionDep
from api.permissions import Permission
from api.workbench.auth import (
    PageError,
    Viewer,
    page_requires,
    posted_form,
    visible_record,
)
from api.workbench.exports import EXPORT_LIMIT, download, exported, local_time
from api.workbench.render import render
from core.models import Alert, AlertStatus, Patient, utcnow
from core.validation import Key
from services import alerts
from services.spreadsheets import Column, workbook
from services.staff_lists import list_alerts, patient_brief

router = APIRouter(include_in_schema=False)
AlertPage = Annotated[Viewer, Depends(page_requires(Permission.ALERTS_ACKNOWLEDGE))]

PAGE_SIZE = 50
TABS = {"open": "待处理", "acknowledged": "处理中", "resolved": "已处理"}
LEVEL_NAMES = {"high": "高危", "warning": "预警", "info": "提示"}
NOTE_LIMIT = 500
ALERT_COLUMNS = [
    Column("时间", 18),
    Column("级别", 8),
    Column("患者", 10),
    Column("病历号", 12),
    Column("手机", 14),
    Column("内容", 40),
    Column("状态", 8),
    Column("处理情况", 30),
    Column("处理时间", 18),
]


@router.get("/w/alerts", response_class=HTMLResponse)
async def alert_list(
    request: Request,
    container: ContainerDep,
    session: SessionDep,
    seen: AlertPage,
    state: Literal["open", "acknowledged", "resolved"] = "open",
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> HTMLResponse:
    rows, total = await list_alerts(
        session, seen.staff, status=state, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE
    )
    return render(
        container,
        request,
        "alerts.html",
        seen,
        tabs=TABS,
        state=state,
        alerts=[(alert, patient_brief(patient, seen.staff.role)) for alert, patient in rows],
        total=total,
        page=page,
        pages=max(1, -(-total // PAGE_SIZE)),
        levels=LEVEL_NAMES,
        errors={},
    )


@router.get("/w/alerts.xlsx")
async def alerts_workbook(
    container: ContainerDep,
    session: SessionDep,
    seen: AlertPage,
    state: Literal["open", "acknowledged", "resolved"] = "open",
) -> Response:
    """The tab's alerts as Excel, newest first; names as the role sees them, phones masked."""
    rows, total = await list_alerts(session, seen.staff, status=state, limit=EXPORT_LIMIT, offset=0)
    stamp = await exported(session, seen, "alerts", f"state={state}", container.settings.tz)
    tz = container.settings.tz
    cut = f"（只导出了最近的 {EXPORT_LIMIT} 条）" if total > EXPORT_LIMIT else ""

    cells: list[list[str | int | float | None]] = []
    for alert, patient in rows:
        brief = patient_brief(patient, seen.staff.role)
        cells.append(
            [
                local_time(alert.raised_at, tz),
                LEVEL_NAMES.get(alert.level, alert.level),
                brief["name"],
                brief["his_patient_id"],
                brief["phone_masked"],
                alert.summary,
                TABS[alert.status],
                alert.resolution_note or "",
                local_time(alert.resolved_at, tz),
            ]
        )
    data = workbook(f"预警（{TABS[state]}）", [f"共 {total} 条{cut}", stamp], ALERT_COLUMNS, cells)
    return download(data, f"alerts-{state}-{utcnow().astimezone(tz).date()}.xlsx")


async def _alert(session: SessionDep, seen: Viewer, alert_id: str) -> tuple[Alert, Patient]:
    alert = await visible_record(session, seen.staff, Alert, alert_id, "预警", lock=True)
    patient = await session.get(Patient, alert.patient_id)
    assert patient is not None
    return alert, patient


def _answer(
    request: Request,
    container: ContainerDep,
    seen: Viewer,
    alert: Alert,
    patient: Patient,
    *,
    notice: str,
    error: str | None = None,
) -> Response:
    """The updated row for the page's script; a fresh page (or the page with the error)
    otherwise."""
    if request.headers.get("HX-Request") == "true":
        return render(
            container,
            request,
            "_alert_row.html",
            seen,
            alert=alert,
            patient=patient_brief(patient, seen.staff.role),
            levels=LEVEL_NAMES,
            errors={alert.id: error} if error else {},
            row_notice=notice,
        )
    if error is not None:
        raise PageError(status.HTTP_422_UNPROCESSABLE_CONTENT, "未保存", error)
    return RedirectResponse(f"/w/alerts?state={alert.status}", status.HTTP_303_SEE_OTHER)


@router.post("/w/alerts/{alert_id}/acknowledge")
async def acknowledge(
    alert_id: Key, request: Request, container: ContainerDep, session: SessionDep, seen: AlertPage
) -> Response:
    await posted_form(request, seen)
    alert, patient = await _alert(session, seen, alert_id)
    changed = alerts.acknowledge(session, seen.staff, alert, None, utcnow())
    await session.commit()
    notice = "已确认，正在处理" if changed else "该预警已有人处理"
    return _answer(request, container, seen, alert, patient, notice=notice)


@router.post("/w/alerts/{alert_id}/resolve")
async def resolve(
    alert_id: Key, request: Request, container: ContainerDep, session: SessionDep, seen: AlertPage
) -> Response:
    fields = await posted_form(request, seen)
    alert, patient = await _alert(session, seen, alert_id)
    note = fields.get("note", "").strip()
    if len(note) < 2 or len(note) > NOTE_LIMIT:
        error = "请填写处理情况（2～500字）"
        return _answer(request, container, seen, alert, patient, notice="", error=error)
    if alert.status == AlertStatus.RESOLVED:
        return _answer(request, container, seen, alert, patient, notice="该预警已由他人处理完毕")
    alerts.resolve(session, seen.staff, alert, note, utcnow())
    await session.commit()
    return _answer(request, container, seen, alert, patient, notice="已处理完毕")
