"""Rendering workbench pages: the Jinja2 environment (templates/workbench), the navigation each
role sees, and the pages for errors and for a missing session."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from fastapi import FastAPI, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.container import Container
from api.permissions import Permission
from api.workbench.auth import (
    PageError,
    PasswordChangeNeeded,
    SignInNeeded,
    Viewer,
    sign_in_location,
)
from core.models import StaffRole, utcnow
from core.templates import TEMPLATES_DIR, date_filters

HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
}

ROLE_NAMES = {
    StaffRole.NURSE: "护士",
    StaffRole.DOCTOR: "医生",
    StaffRole.CARE_MANAGER: "个案管理师",
    StaffRole.PHARMACIST: "药师",
    StaffRole.FINANCE: "财务",
    StaffRole.ADMIN: "管理员",
    StaffRole.INTEGRATION: "系统接口",
}


TASK_STATUS_NAMES = {
    "pending": "未到期",
    "sent": "待处理",
    "read": "已阅读",
    "not_needed": "无需随访",
    "expired": "已过期",
    "completed": "已完成",
    "abnormal": "异常",
    "lost": "失访",
    "skipped": "已跳过",
    "failed": "发送失败",
}


# What the audit trail of a run says, in words (the codes stay in the API and the database).
AUDIT_ACTION_NAMES = {
    "run.started": "随访计划开始",
    "run.ended": "随访计划结束",
    "pathway.run_started": "手动开始随访计划",
    "pathway.enrolled": "办理入组",
    "pathway.enrolment_declined": "记录不入组",
    "pathway.complete_task": "登记随访结果",
    "pathway.add_step": "添加人工任务",
    "pathway.reschedule": "改期",
    "pathway.skip": "跳过",
    "pathway.pause": "暂停",
    "pathway.resume": "恢复",
    "pathway.end": "终止",
    "pathway.migrate": "迁移到新版本",
}


def staff_label(name: str, role: str) -> str:
    """Who someone is on a page or in a workbook: "周个案（个案管理师）"."""
    return f"{name}（{ROLE_NAMES.get(StaffRole(role), role)}）"


@dataclass(frozen=True)
class NavItem:
    label: str
    path: str
    permission: Permission


# In the order of a working day; each shown only to roles that may open it.
NAVIGATION = (
    NavItem("我的待办", "/w/queue", Permission.RUNS_OPERATE),
    NavItem("预警", "/w/alerts", Permission.ALERTS_ACKNOWLEDGE),
    NavItem("入组管理", "/w/enrolment", Permission.RUNS_OPERATE),
    NavItem("审方", "/w/review", Permission.PRESCRIPTIONS_REVIEW),
    NavItem("财务", "/w/finance", Permission.PAYMENTS_RECONCILE),
    NavItem("随访计划", "/w/pathways", Permission.PATHWAYS_DESIGN),
    NavItem("统计报表", "/w/reports", Permission.RUNS_READ),
)


@cache
def environment(tz: ZoneInfo) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR / "workbench"),
        undefined=jinja2.StrictUndefined,
        autoescape=True,
    )
    env.filters.update(date_filters(tz))
    env.globals["role_names"] = ROLE_NAMES
    env.globals["task_status_names"] = TASK_STATUS_NAMES
    return env


def render(
    container: Container,
    request: Request,
    template: str,
    seen: Viewer | None,
    status_code: int = status.HTTP_200_OK,
    **context: Any,
) -> HTMLResponse:
    settings = container.settings
    html = (
        environment(settings.tz)
        .get_template(template)
        .render(
            hospital_name=settings.hospital_name,
            viewer=seen,
            nav=[item for item in NAVIGATION if seen is not None and seen.can(item.permission)],
            here=request.url.path,
            csrf=seen.csrf if seen is not None else "",
            server_now=utcnow().isoformat(),
            **context,
        )
    )
    return HTMLResponse(html, status_code=status_code, headers=HEADERS)


def install(app: FastAPI) -> None:
    """The workbench's exceptions, answered as pages or redirects."""

    async def page_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PageError)
        return render(
            request.app.state.container,
            request,
            "error.html",
            getattr(request.state, "viewer", None),
            exc.status_code,
            heading=exc.heading,
            detail=exc.detail,
        )

    async def sign_in_needed(request: Request, exc: Exception) -> Response:  # noqa: ARG001
        assert isinstance(exc, SignInNeeded)
        return RedirectResponse(
            sign_in_location(exc.next_path, exc.reason), status.HTTP_303_SEE_OTHER
        )

    async def password_change_needed(request: Request, exc: Exception) -> Response:  # noqa: ARG001
        return RedirectResponse("/w/password", status.HTTP_303_SEE_OTHER)

    app.add_exception_handler(PageError, page_error)
    app.add_exception_handler(PasswordChangeNeeded, password_change_needed)
    app.add_exception_handler(SignInNeeded, sign_in_needed)
