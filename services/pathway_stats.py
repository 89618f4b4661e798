"""Per-plan statistics (FU-7, ED-2, SAT, CM-7): one aggregate query on the task projection,
scoped to the caller's department, and the figures derived from it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, get_args

import sqlalchemy as sa
from sqlalchemy import func
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from contracts.runs import StepStatus
from core.db import plan_for_each_call
from core.models import CareTask
from services.scope import record_filter
from services.staff import StaffPrincipal


@dataclass(frozen=True)
class PlanStats:
    """One plan's figures, as the statistics endpoint serves them."""

    pathway_id: str
    runs: int
    by_status: dict[str, int]
    sent: int
    awaiting: int
    completed: int
    abnormal: int
    lost: int
    not_needed: int
    read: int
    unread: int
    read_rate: float | None
    send_failed: int
    average_score: float | None
    revisits_due: int
    revisits_missed: int


async def plan_statistics(
    session: AsyncSession, staff: StaffPrincipal, pathway_id: str, *, since: datetime | None
) -> PlanStats:
    status_col, action_col = col(CareTask.status), col(CareTask.action_type)

    def count_if(condition: Any) -> Any:
        return func.sum(sa.case((condition, 1), else_=0))

    article, revisit = action_col == "article", action_col == "revisit"
    figures = {name: count_if(status_col == name) for name in get_args(StepStatus)}
    query: Any = sa.select(
        func.count(func.distinct(CareTask.workflow_id)).label("runs"),
        *(expression.label(name) for name, expression in figures.items()),
        count_if(article & (status_col == "read")).label("articles_read"),
        count_if(article & status_col.in_(["sent", "read", "expired"])).label("articles_pushed"),
        func.avg(CareTask.score).label("average_score"),
        count_if(revisit & status_col.in_(["completed", "lost"])).label("revisits_due"),
        count_if(revisit & (status_col == "lost")).label("revisits_missed"),
    ).where(col(CareTask.plan_id) == pathway_id)
    query = query.where(record_filter(staff, CareTask.patient_id, CareTask.department_code))
    if since is not None:
        query = query.where(CareTask.due_at >= since)
    await plan_for_each_call(session)
    row = (await session.exec(query)).one()
    counts = {name: int(getattr(row, name) or 0) for name in figures}
    read, pushed = int(row.articles_read or 0), int(row.articles_pushed or 0)
    return PlanStats(
        pathway_id=pathway_id,
        runs=int(row.runs or 0),
        by_status={k: v for k, v in counts.items() if v},
        sent=sum(
            v for k, v in counts.items() if k not in ("pending", "failed", "not_needed", "skipped")
        ),
        awaiting=counts["sent"] + counts["expired"],
        completed=counts["completed"],
        abnormal=counts["abnormal"],
        lost=counts["lost"],
        not_needed=counts["not_needed"],
        read=read,
        unread=pushed - read,
        read_rate=round(read / pushed, 3) if pushed else None,
        send_failed=counts["failed"],
        average_score=round(float(row.average_score), 2) if row.average_score is not None else None,
        revisits_due=int(row.revisits_due or 0),
        revisits_missed=int(row.revisits_missed or 0),
    )
