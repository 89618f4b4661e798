"""One patient's numbers over time (FORM-4): every submitted answer to a number or rating
question, and every score, across all their pathway runs, read with the form version each run
was pinned to."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import CareTask, FormResponse, PathwayRun
from pathways.definition import PathwaySnapshot
from pathways.form_definition import FormDefinition
from pathways.trends import Measure, measured, measures


@dataclass(frozen=True)
class TrendPoint:
    at: datetime
    value: float
    abnormal: bool
    task_id: str
    form_id: str


@dataclass(frozen=True)
class Trend:
    measure: Measure
    points: list[TrendPoint]


async def patient_trends(session: AsyncSession, patient_id: str) -> list[Trend]:
    """Each measure the patient has answered at least once, in the order first answered, its
    points oldest first."""
    runs = await session.exec(select(PathwayRun).where(PathwayRun.patient_id == patient_id))
    forms: dict[tuple[str, str], FormDefinition] = {}
    for run in runs.all():
        snapshot = PathwaySnapshot.model_validate(run.plan_snapshot)
        for form_id, form in snapshot.forms.items():
            forms[(run.workflow_id, form_id)] = form
    responses = await session.exec(
        select(FormResponse)
        .join(CareTask, col(CareTask.id) == FormResponse.task_id)
        .where(CareTask.patient_id == patient_id)
        .order_by(col(FormResponse.submitted_at))
    )
    trends: dict[str, Trend] = {}
    for response in responses.all():
        answered = forms.get((response.workflow_id, response.form_id))
        if answered is None:
            continue
        for name, measure in measures(answered).items():
            value = measured(name, response.answers, response.scores)
            if value is None:
                continue
            trend = trends.setdefault(name, Trend(measure, []))
            trend.points.append(
                TrendPoint(
                    at=response.submitted_at,
                    value=value,
                    abnormal=measure.abnormal(value),
                    task_id=response.task_id,
                    form_id=response.form_id,
                )
            )
    return list(trends.values())
