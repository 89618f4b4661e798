"""Read-only reports on pathway runs: revisits lost to follow-up (CM-7), each core indicator
compared with its baseline (CM-8), and a run's steps as the projection last saw them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from contracts.runs import FindingRecord, StepProgress
from core.models import CareTask, FormResponse, PathwayRun, Patient
from pathways.definition import PathwaySnapshot
from pathways.timeline import add_offset
from services.scope import record_filter
from services.staff import StaffPrincipal


async def potential_losses(
    session: AsyncSession, staff: StaffPrincipal, pathway_id: str
) -> Sequence[tuple[CareTask, Patient]]:
    """CM-7: the plan's revisits that came due without a registration, oldest first."""
    query: Any = (
        select(CareTask, Patient)
        .join(Patient, col(Patient.id) == CareTask.patient_id)
        .where(
            CareTask.plan_id == pathway_id,
            CareTask.action_type == "revisit",
            CareTask.status == "lost",
        )
        .order_by(col(CareTask.due_at))
    )
    query = query.where(record_filter(staff, CareTask.patient_id, CareTask.department_code))
    rows: Sequence[tuple[CareTask, Patient]] = (await session.exec(query)).all()
    return rows


@dataclass(frozen=True)
class OutcomePoint:
    at: str
    due_at: datetime
    value: float | None
    change: float | None


@dataclass(frozen=True)
class IndicatorOutcome:
    indicator: str
    label: str
    baseline: float | None
    points: list[OutcomePoint]


def _value(response: FormResponse, name: str) -> float | None:
    if name in response.scores:
        found = response.scores[name]
        return float(found) if found is not None else None
    given = response.answers.get(name)
    try:
        return float(given[0]) if given else None
    except ValueError:
        return None


async def outcomes(session: AsyncSession, run: PathwayRun, tz: ZoneInfo) -> list[IndicatorOutcome]:
    """CM-8: each core indicator at the baseline and at its comparison points."""
    snapshot = PathwaySnapshot.model_validate(run.plan_snapshot)
    rows = await session.exec(
        select(CareTask, FormResponse)
        .join(FormResponse, col(FormResponse.task_id) == CareTask.id)
        .where(CareTask.workflow_id == run.workflow_id)
        .order_by(col(CareTask.due_at))
    )
    answered = rows.all()
    result = []
    for outcome in snapshot.definition.outcomes:
        baseline = next(
            (
                _value(r, outcome.indicator)
                for t, r in answered
                if t.step_id == outcome.baseline_step and r.form_id == outcome.form
            ),
            None,
        )
        points = []
        for offset in outcome.at:
            due = add_offset(run.anchor_at, offset, tz)
            # The answer to this form closest to the comparison point.
            candidates = [
                (abs((t.due_at - due).total_seconds()), t, r)
                for t, r in answered
                if r.form_id == outcome.form and t.step_id != outcome.baseline_step
            ]
            nearest = min(candidates, key=lambda c: c[0], default=None)
            found = _value(nearest[2], outcome.indicator) if nearest else None
            label = f"{offset.months}个月" if offset.months else f"{offset.approx().days}天"
            points.append(
                OutcomePoint(
                    at=label,
                    due_at=due,
                    value=found,
                    change=round(found - baseline, 2)
                    if found is not None and baseline is not None
                    else None,
                )
            )
        result.append(
            IndicatorOutcome(
                indicator=outcome.indicator, label=outcome.label, baseline=baseline, points=points
            )
        )
    return result


async def projected_steps(session: AsyncSession, workflow_id: str) -> list[StepProgress]:
    """A run's steps from the task projection, for when the workflow cannot be queried."""
    rows = await session.exec(
        select(CareTask, FormResponse)
        .join(FormResponse, col(FormResponse.task_id) == CareTask.id, isouter=True)
        .where(CareTask.workflow_id == workflow_id)
        .order_by(col(CareTask.due_at))
    )
    return [
        StepProgress(
            step_id=task.step_id,
            occurrence=task.occurrence,
            task_id=task.id,
            title=task.title,
            status=task.status,
            due_at=task.due_at,
            sent_at=task.sent_at,
            valid_until=task.valid_until,
            lost_at=task.lost_at,
            answered_at=task.answered_at,
            findings=[FindingRecord.model_validate(f) for f in response.abnormal_findings]
            if response
            else [],
        )
        for task, response in rows.all()
    ]
