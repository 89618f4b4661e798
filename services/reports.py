"""Reports for the workbench (STAT-1..3): follow-up workload and completion, education read
rates and satisfaction scores by plan, department, ward or period; and the staff work log.

Each report is one aggregate query over the projections, in the viewer's data scope. Periods
are counted in the hospital's calendar: the query groups by local day and weeks and months are
rolled up here (a year is at most 366 rows), which keeps the SQL the same on PostgreSQL and on
the SQLite of the embedded set-up.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import local_day, plan_for_each_call
from core.models import (
    AuditEntry,
    CareTask,
    DataScope,
    Encounter,
    Pathway,
    PathwayRun,
    StaffUser,
    TaskStatus,
)
from services.scope import record_filter
from services.staff import StaffPrincipal

Grouping = Literal["plan", "department", "ward", "period"]
Period = Literal["day", "week", "month"]
GROUPINGS: dict[Grouping, str] = {
    "plan": "随访计划",
    "department": "科室",
    "ward": "病区",
    "period": "时间",
}
PERIODS: dict[Period, str] = {"day": "按日", "week": "按周", "month": "按月"}
NO_WARD = "（未记录病区）"
# The longest span one report covers: a year of days.
MAX_DAYS = 366


class ReportRefused(ValueError):
    """A filter that cannot be used; ``field`` names it."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name


@dataclass(frozen=True)
class Span:
    """Local dates, both included, in the hospital's zone."""

    first: date
    last: date
    tz: ZoneInfo

    @classmethod
    def checked(cls, first: date, last: date, tz: ZoneInfo) -> Span:
        if last < first:
            raise ReportRefused("to", "结束日期不能早于开始日期")
        if (last - first).days >= MAX_DAYS:
            raise ReportRefused("to", f"一次最多统计{MAX_DAYS}天")
        return cls(first, last, tz)

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, time(), self.tz).astimezone(UTC)

    @property
    def end(self) -> datetime:
        return datetime.combine(self.last + timedelta(days=1), time(), self.tz).astimezone(UTC)


@dataclass
class FollowUpRow:
    key: str
    label: str
    due: int = 0  # due in the span and out to the patient or staff (not pending, not skipped)
    completed: int = 0
    abnormal: int = 0
    lost: int = 0
    not_needed: int = 0
    awaiting: int = 0  # sent or expired, not yet answered
    failed: int = 0
    articles_pushed: int = 0
    articles_read: int = 0
    score_total: float = 0.0
    scored: int = 0

    def add(self, other: FollowUpRow) -> None:
        for f in fields(self):
            if f.name not in ("key", "label"):
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    @property
    def done(self) -> int:
        return self.completed + self.abnormal

    @property
    def completion_rate(self) -> float | None:
        needed = self.due - self.not_needed
        return round(self.done / needed, 3) if needed > 0 else None

    @property
    def read_rate(self) -> float | None:
        pushed = self.articles_pushed
        return round(self.articles_read / pushed, 3) if pushed else None

    @property
    def average_score(self) -> float | None:
        return round(self.score_total / self.scored, 2) if self.scored else None


@dataclass
class FollowUpReport:
    grouping: Grouping
    period: Period
    span: Span
    rows: list[FollowUpRow]
    total: FollowUpRow = field(default_factory=lambda: FollowUpRow("total", "合计"))


def _period_key(day: str, period: Period) -> str:
    if period == "day":
        return day
    parsed = date.fromisoformat(day)
    if period == "week":
        monday = parsed - timedelta(days=parsed.weekday())
        return monday.isoformat()
    return day[:7]


def _period_label(key: str, period: Period) -> str:
    if period == "month":
        year, month = key.split("-")
        return f"{year}年{int(month)}月"
    parsed = date.fromisoformat(key)
    if period == "week":
        return f"{parsed.month}月{parsed.day}日起一周"
    return f"{parsed.month}月{parsed.day}日"


async def follow_up_report(
    session: AsyncSession,
    viewer: StaffPrincipal,
    span: Span,
    *,
    grouping: Grouping,
    period: Period = "day",
    plan_id: str | None = None,
) -> FollowUpReport:
    """STAT-1/2: tasks due in the span, by ``grouping``; for ``period`` grouping, by day,
    week (from Monday) or month of the due date."""
    status, action = col(CareTask.status), col(CareTask.action_type)

    def count_if(condition: Any) -> Any:
        return func.coalesce(func.sum(sa.case((condition, 1), else_=0)), 0)

    article = action == "article"
    figures = [
        count_if(status.notin_(["pending", "skipped"])).label("due"),
        count_if(status == "completed").label("completed"),
        count_if(status == "abnormal").label("abnormal"),
        count_if(status == "lost").label("lost"),
        count_if(status == "not_needed").label("not_needed"),
        count_if(status.in_(["sent", "expired"])).label("awaiting"),
        count_if(status == "failed").label("failed"),
        count_if(article & status.in_(["sent", "read", "expired"])).label("articles_pushed"),
        count_if(article & (status == "read")).label("articles_read"),
        func.coalesce(func.sum(CareTask.score), 0).label("score_total"),
        func.count(col(CareTask.score)).label("scored"),
    ]
    conditions = [
        col(CareTask.due_at) >= span.start,
        col(CareTask.due_at) < span.end,
        record_filter(viewer, CareTask.patient_id, CareTask.department_code),
    ]
    if plan_id:
        conditions.append(col(CareTask.plan_id) == plan_id)
    query: Any
    key: Any
    if grouping == "ward":
        # Counted per run first, then the runs' wards: the join then meets one row per run,
        # not one per task (a year of a hospital's tasks by ward: 0.4 s → well under).
        per_run = (
            sa.select(col(CareTask.workflow_id).label("workflow_id"), *figures)
            .where(*conditions)
            .group_by(col(CareTask.workflow_id))
            .subquery()
        )
        key = col(Encounter.ward).label("key")
        query = (
            sa.select(
                key,
                *(func.sum(per_run.c[f.name]).label(f.name) for f in figures),
            )
            .select_from(per_run)
            .outerjoin(PathwayRun, col(PathwayRun.workflow_id) == per_run.c.workflow_id)
            .outerjoin(Encounter, col(Encounter.id) == col(PathwayRun.encounter_id))
            .group_by(key)
        )
    else:
        keys: dict[Grouping, Any] = {
            "plan": col(CareTask.plan_id),
            "department": col(CareTask.department_code),
            "period": local_day(col(CareTask.due_at), span.tz, session.get_bind().dialect.name),
        }
        key = keys[grouping].label("key")
        query = sa.select(key, *figures).where(*conditions).group_by(key)
    rows: dict[str, FollowUpRow] = {}
    await plan_for_each_call(session)
    for found in (await session.exec(query)).all():
        raw = found.key if found.key is not None else NO_WARD
        group = _period_key(raw, period) if grouping == "period" else raw
        # PostgreSQL sums sums as NUMERIC: back to plain numbers for the page, chart and Excel.
        values: dict[str, Any] = {
            f.name: (float if f.name == "score_total" else int)(getattr(found, f.name) or 0)
            for f in fields(FollowUpRow)
            if f.name not in ("key", "label")
        }
        row = FollowUpRow(key=group, label=group, **values)
        if group in rows:
            rows[group].add(row)
        else:
            rows[group] = row
    await _label(session, grouping, period, rows)
    report = FollowUpReport(grouping, period, span, sorted(rows.values(), key=lambda r: r.key))
    for row in report.rows:
        report.total.add(row)
    return report


async def _label(
    session: AsyncSession, grouping: Grouping, period: Period, rows: dict[str, FollowUpRow]
) -> None:
    if grouping == "period":
        for row in rows.values():
            row.label = _period_label(row.key, period)
    elif grouping == "plan" and rows:
        names = await session.exec(
            select(col(Pathway.id), col(Pathway.name)).where(col(Pathway.id).in_(list(rows)))
        )
        for plan_id, name in names.all():
            rows[plan_id].label = name
    elif grouping == "department" and rows:
        names = await session.exec(
            select(col(Encounter.department_code), func.max(col(Encounter.department_name)))
            .where(col(Encounter.department_code).in_(list(rows)))
            .group_by(col(Encounter.department_code))
        )
        for code, name in names.all():
            rows[code].label = name or code


# STAT-3: what each kind of audited action counts as in the work log.
WORK_KINDS: dict[str, tuple[str, ...]] = {
    "随访登记": ("pathway.complete_task",),
    "干预调整": ("pathway.add_step", "pathway.reschedule", "pathway.skip", "pathway.pause",
                 "pathway.resume", "pathway.end", "pathway.enrolled", "pathway.run_started"),
    "消息推送": ("message.pushed", "message_batch.created"),
    "预警处理": ("alert.acknowledged", "alert.resolved"),
    "审方": ("prescription.decide",),
    "首次评估": ("exam.reviewed",),
    "投诉回复": ("complaint.acknowledged", "complaint.resolved"),
}  # fmt: skip
# Of the follow-ups a staff member recorded, those they found abnormal (needing more care).
ABNORMAL = "其中异常"
# The work log's columns, page and export alike.
_FOLLOW_UPS, *_OTHER_KINDS = WORK_KINDS
WORK_COLUMNS = (_FOLLOW_UPS, ABNORMAL, *_OTHER_KINDS)


@dataclass
class WorkLogRow:
    staff_id: str
    name: str
    role: str
    department_code: str | None
    counts: dict[str, int]
    abnormal: int = 0

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def value(self, column: str) -> int:
        return self.abnormal if column == ABNORMAL else self.counts.get(column, 0)


async def staff_work_log(
    session: AsyncSession, viewer: StaffPrincipal, span: Span
) -> list[WorkLogRow]:
    """STAT-3: per staff member, what they did in the span, from the audit trail; the viewer
    sees their own department's staff (everyone with organisation-wide scope)."""
    kind_of = {action: kind for kind, actions in WORK_KINDS.items() for action in actions}
    outcome = col(AuditEntry.detail)["outcome"].as_string()
    abnormal = func.sum(sa.case((outcome == TaskStatus.ABNORMAL.value, 1), else_=0))
    query: Any = (
        sa.select(col(StaffUser.id), col(StaffUser.name), col(StaffUser.role),
                  col(StaffUser.department_code), col(AuditEntry.action), func.count(),
                  abnormal)
        .join(StaffUser, col(StaffUser.id) == col(AuditEntry.actor_id))
        .where(
            col(AuditEntry.actor_type) == "staff",
            col(AuditEntry.action).in_(list(kind_of)),
            col(AuditEntry.at) >= span.start,
            col(AuditEntry.at) < span.end,
        )
        .group_by(col(StaffUser.id), col(StaffUser.name), col(StaffUser.role),
                  col(StaffUser.department_code), col(AuditEntry.action))
    )  # fmt: skip
    if viewer.department_code is not None and viewer.data_scope != DataScope.ORGANISATION:
        query = query.where(col(StaffUser.department_code) == viewer.department_code)
    rows: dict[str, WorkLogRow] = {}
    counts: dict[str, defaultdict[str, int]] = {}
    await plan_for_each_call(session)
    for staff_id, name, role, department, action, n, flagged in (await session.exec(query)).all():
        if staff_id not in rows:
            counts[staff_id] = defaultdict(int)
            rows[staff_id] = WorkLogRow(staff_id, name, role, department, counts[staff_id])
        counts[staff_id][kind_of[action]] += int(n)
        if action == "pathway.complete_task":
            rows[staff_id].abnormal += int(flagged or 0)
    return sorted(rows.values(), key=lambda r: (-r.total, r.name))
