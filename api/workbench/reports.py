"""Reports (STAT-1..3): follow-up workload and completion, education and satisfaction by plan,
department, ward or period, drawn as a chart and exported to Excel (audited); the staff work
log. Filters travel in the query string, so a report is a link that can be shared."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, status
from fastapi.responses import HTMLResponse, Response

from api.deps import ContainerDep, SessionDep
from api.permissions import Permission
from api.workbench.auth import PageError, Viewer, page_requires
from api.workbench.exports import download, exported
from api.workbench.render import ROLE_NAMES, render
from core.models import StaffRole, utcnow
from services.prescription_queries import statistics as prescription_statistics
from services.reports import (
    GROUPINGS,
    PERIODS,
    WORK_COLUMNS,
    FollowUpReport,
    Grouping,
    Period,
    ReportRefused,
    Span,
    WorkLogRow,
    follow_up_report,
    staff_work_log,
)
from services.spreadsheets import Column, workbook

router = APIRouter(include_in_schema=False)
ReportPage = Annotated[Viewer, Depends(page_requires(Permission.RUNS_READ))]
DEFAULT_DAYS = 30


@dataclass(frozen=True)
class Filters:
    span: Span
    grouping: Grouping
    period: Period
    plan_id: str | None

    def query(self) -> str:
        plan = f"&plan={self.plan_id}" if self.plan_id else ""
        return (
            f"from={self.span.first.isoformat()}&to={self.span.last.isoformat()}"
            f"&group={self.grouping}&period={self.period}{plan}"
        )

    def describe(self) -> str:
        plan = f"，计划 {self.plan_id}" if self.plan_id else ""
        by = GROUPINGS[self.grouping] + (
            f"（{PERIODS[self.period]}）" if self.grouping == "period" else ""
        )
        return f"{self.span.first.isoformat()} 至 {self.span.last.isoformat()}，按{by}{plan}"


def _filters(request: Request, container: ContainerDep) -> tuple[Filters, dict[str, str]]:
    """The filters from the query string, with defaults; and the errors by field (the
    default stands in for a field in error)."""
    tz = container.settings.tz
    today = utcnow().astimezone(tz).date()
    params = request.query_params
    errors: dict[str, str] = {}

    def day(name: str, default: date) -> date:
        raw = params.get(name, "").strip()
        if not raw:
            return default
        try:
            return date.fromisoformat(raw)
        except ValueError:
            errors[name] = "日期格式不正确"
            return default

    first = day("from", today - timedelta(days=DEFAULT_DAYS - 1))
    last = day("to", today)
    try:
        span = Span.checked(first, last, tz)
    except ReportRefused as refused:
        errors[refused.field] = str(refused)
        span = Span(today - timedelta(days=DEFAULT_DAYS - 1), today, tz)
    grouping = params.get("group", "plan")
    if grouping not in GROUPINGS:
        errors["group"] = "请选择统计维度"
        grouping = "plan"
    period = params.get("period", "day")
    if period not in PERIODS:
        errors["period"] = "请选择时间粒度"
        period = "day"
    plan = params.get("plan", "").strip()[:64] or None
    return Filters(span, grouping, period, plan), errors  # type: ignore[arg-type]


def _chart(report: FollowUpReport) -> str:
    """An ECharts option: completed, abnormal, lost and awaiting per group, stacked."""
    labels = [row.label for row in report.rows]
    series = [
        ("正常", "completed", "#389e0d"),
        ("异常", "abnormal", "#d46b08"),
        ("失访", "lost", "#cf1322"),
        ("待处理", "awaiting", "#1677ff"),
    ]
    option: dict[str, Any] = {
        "tooltip": {"trigger": "axis"},
        "legend": {"top": 0},
        "grid": {"left": 48, "right": 16, "top": 36, "bottom": 48},
        "xAxis": {"type": "category", "data": labels, "axisLabel": {"interval": 0, "rotate": 30}},
        "yAxis": {"type": "value", "minInterval": 1},
        "series": [
            {
                "name": name,
                "type": "bar",
                "stack": "tasks",
                "itemStyle": {"color": colour},
                "data": [getattr(row, attribute) for row in report.rows],
            }
            for name, attribute, colour in series
        ],
    }
    return json.dumps(option, ensure_ascii=False)


async def _follow_up(session: SessionDep, seen: Viewer, filters: Filters) -> FollowUpReport:
    return await follow_up_report(
        session,
        seen.staff,
        filters.span,
        grouping=filters.grouping,
        period=filters.period,
        plan_id=filters.plan_id,
    )


async def _reviews(session: SessionDep, seen: Viewer, filters: Filters) -> list[dict[str, Any]]:
    return await prescription_statistics(
        session,
        seen.staff,
        group_by="department",
        submitted_from=filters.span.start,
        submitted_to=filters.span.end,
        tz=filters.span.tz,
    )


@router.get("/w/reports", response_class=HTMLResponse)
async def reports(
    request: Request, container: ContainerDep, session: SessionDep, seen: ReportPage
) -> HTMLResponse:
    filters, errors = _filters(request, container)
    report = await _follow_up(session, seen, filters)
    work_log = await staff_work_log(session, seen.staff, filters.span)
    reviews = (
        await _reviews(session, seen, filters) if seen.can(Permission.PRESCRIPTIONS_READ) else None
    )
    return render(
        container,
        request,
        "reports.html",
        seen,
        status.HTTP_422_UNPROCESSABLE_CONTENT if errors else status.HTTP_200_OK,
        filters=filters,
        errors=errors,
        groupings=GROUPINGS,
        periods=PERIODS,
        report=report,
        chart=_chart(report),
        work_log=work_log,
        work_columns=WORK_COLUMNS,
        reviews=reviews,
    )


FOLLOW_UP_COLUMNS = (
    Column("分组", 22),
    Column("应随访", 10),
    Column("已随访", 10),
    Column("其中异常", 10),
    Column("失访", 8),
    Column("无需随访", 10),
    Column("待处理", 10),
    Column("随访率", 10, "0.0%"),
    Column("宣教推送", 10),
    Column("宣教已读", 10),
    Column("阅读率", 10, "0.0%"),
    Column("满意度均分", 12, "0.00"),
)


def _follow_up_cells(row: Any) -> list[str | int | float | None]:
    return [
        row.label,
        row.due,
        row.done,
        row.abnormal,
        row.lost,
        row.not_needed,
        row.awaiting,
        row.completion_rate,
        row.articles_pushed,
        row.articles_read,
        row.read_rate,
        row.average_score,
    ]


def _export_filters(request: Request, container: ContainerDep) -> Filters:
    filters, errors = _filters(request, container)
    if errors:
        raise PageError(
            status.HTTP_422_UNPROCESSABLE_CONTENT, "无法导出", "；".join(errors.values())
        )
    return filters


@router.get("/w/reports/follow-up.xlsx")
async def follow_up_workbook(
    request: Request, container: ContainerDep, session: SessionDep, seen: ReportPage
) -> Response:
    filters = _export_filters(request, container)
    report = await _follow_up(session, seen, filters)
    stamp = await exported(session, seen, "follow_up", filters.query(), container.settings.tz)
    data = workbook(
        "随访工作量与随访率",
        [filters.describe(), stamp],
        FOLLOW_UP_COLUMNS,
        [_follow_up_cells(row) for row in [*report.rows, report.total]],
    )
    return download(data, f"follow-up-{filters.span.first}-{filters.span.last}.xlsx")


def _work_log_cells(row: WorkLogRow) -> list[str | int | float | None]:
    role = ROLE_NAMES.get(StaffRole(row.role), row.role)
    cells: list[str | int | float | None] = [row.name, role, row.department_code or "全院"]
    return [*cells, *(row.value(column) for column in WORK_COLUMNS), row.total]


@router.get("/w/reports/work-log.xlsx")
async def work_log_workbook(
    request: Request, container: ContainerDep, session: SessionDep, seen: ReportPage
) -> Response:
    filters = _export_filters(request, container)
    rows = await staff_work_log(session, seen.staff, filters.span)
    stamp = await exported(session, seen, "work_log", filters.query(), container.settings.tz)
    columns = [Column("姓名", 12), Column("角色", 10), Column("科室", 14)]
    columns += [Column(column, 10) for column in WORK_COLUMNS] + [Column("合计", 8)]
    data = workbook(
        "工作人员工作量",
        [f"{filters.span.first.isoformat()} 至 {filters.span.last.isoformat()}", stamp],
        columns,
        [_work_log_cells(row) for row in rows],
    )
    return download(data, f"work-log-{filters.span.first}-{filters.span.last}.xlsx")


# Each column of the review outcomes with the statistics' key it shows.
REVIEWS = (
    ("key", Column("科室", 16)),
    ("submitted", Column("提交", 8)),
    ("reviewing", Column("审核中", 8)),
    ("approved_by_pharmacist", Column("药师通过", 10)),
    ("approved_by_system", Column("系统通过", 10)),
    ("returned", Column("退回", 8)),
    ("review_timed_out", Column("超时", 8)),
    ("avg_review_seconds", Column("平均审方用时（秒）", 18)),
)
REVIEW_COLUMNS = tuple(column for _, column in REVIEWS)


@router.get("/w/reports/reviews.xlsx")
async def reviews_workbook(
    request: Request,
    container: ContainerDep,
    session: SessionDep,
    seen: Annotated[Viewer, Depends(page_requires(Permission.PRESCRIPTIONS_READ))],
) -> Response:
    filters = _export_filters(request, container)
    rows = await _reviews(session, seen, filters)
    stamp = await exported(session, seen, "reviews", filters.query(), container.settings.tz)
    data = workbook(
        "审方结果与超时",
        [f"{filters.span.first.isoformat()} 至 {filters.span.last.isoformat()} 提交的处方", stamp],
        REVIEW_COLUMNS,
        [[r[key] for key, _ in REVIEWS] for r in rows],
    )
    return download(data, f"reviews-{filters.span.first}-{filters.span.last}.xlsx")
