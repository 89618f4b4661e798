"""Projection of follow-up runs into the database: runs, tasks, answers and alerts.

Every method is idempotent, because Temporal may deliver an activity more than once: rows are
created only if missing and a task never leaves a terminal status.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity

from core.db import SessionFactory, transaction
from core.logs import get_logger
from core.models import (
    Alert,
    AlertStatus,
    CareTask,
    FormResponse,
    PathwayRun,
    RunStatus,
    TaskStatus,
)
from workflows.contracts import (
    ACTIVITY_ANSWERS_RECEIVED,
    ACTIVITY_RUN_FINISHED,
    ACTIVITY_RUN_STARTED,
    ACTIVITY_STEP_CHANGED,
    TERMINAL_STATUSES,
    AnswersReceived,
    RunFinished,
    RunStarted,
    StepChanged,
)

log = get_logger(__name__)


class RecordActivities:
    def __init__(self, sessions: SessionFactory) -> None:
        self._sessions = sessions

    @activity.defn(name=ACTIVITY_RUN_STARTED)
    async def run_started(self, event: RunStarted) -> None:
        async with transaction(self._sessions) as session:
            if await session.get(PathwayRun, event.workflow_id) is None:
                session.add(
                    PathwayRun(
                        workflow_id=event.workflow_id,
                        plan_id=event.snapshot.plan.id,
                        plan_version=event.snapshot.plan.version,
                        patient_id=event.patient_id,
                        encounter_id=event.encounter_id,
                        department_code=event.department_code,
                        anchor_at=event.anchor_at,
                        clock_speedup=event.clock_speedup,
                        plan_snapshot=event.snapshot.model_dump(mode="json"),
                        started_at=event.started_at,
                    )
                )
                # Tasks reference the run; flush it first so PostgreSQL sees the parent row.
                await session.flush()
            for task in event.tasks:
                if await session.get(CareTask, task.task_id) is not None:
                    continue
                session.add(
                    CareTask(
                        id=task.task_id,
                        workflow_id=event.workflow_id,
                        step_id=task.step_id,
                        occurrence=task.occurrence,
                        patient_id=event.patient_id,
                        plan_id=event.snapshot.plan.id,
                        department_code=event.department_code,
                        title=task.title,
                        form_id=task.form_id,
                        responsible_role=event.responsible_role,
                        due_at=task.due_at,
                        updated_at=event.started_at,
                    )
                )
        log.info("run projected", workflow_id=event.workflow_id, tasks=len(event.tasks))

    @activity.defn(name=ACTIVITY_STEP_CHANGED)
    async def step_changed(self, change: StepChanged) -> None:
        async with transaction(self._sessions) as session:
            task = await session.get(CareTask, change.task_id, with_for_update=True)
            if task is None:
                raise LookupError(f"task {change.task_id} has not been projected")
            if task.status in TERMINAL_STATUSES:
                return
            task.status = change.status
            task.sent_at = change.sent_at or task.sent_at
            task.valid_until = change.valid_until or task.valid_until
            task.lost_at = change.lost_at or task.lost_at
            task.updated_at = change.at
            if change.status in TERMINAL_STATUSES:
                task.closed_at = change.at
            if change.status == "failed":
                await _raise_alert(
                    session,
                    task,
                    kind="send_failed",
                    summary=f"「{task.title}」未能发送：{change.reason or '原因未知'}",
                    details=[],
                    at=change.at,
                )
        log.info("task changed", task_id=change.task_id, status=change.status)

    @activity.defn(name=ACTIVITY_ANSWERS_RECEIVED)
    async def answers_received(self, received: AnswersReceived) -> None:
        status = TaskStatus.ABNORMAL if received.findings else TaskStatus.COMPLETED
        findings = [f.model_dump() for f in received.findings]
        async with transaction(self._sessions) as session:
            task = await session.get(CareTask, received.task_id, with_for_update=True)
            if task is None:
                raise LookupError(f"task {received.task_id} has not been projected")
            if task.status not in TERMINAL_STATUSES:
                task.status = status
                task.answered_at = received.submitted_at
                task.closed_at = received.recorded_at
                task.updated_at = received.recorded_at
            if await _response_for(session, task.id) is None:
                session.add(
                    FormResponse(
                        task_id=task.id,
                        workflow_id=received.workflow_id,
                        form_id=received.form_id,
                        answers=received.answers,
                        abnormal_findings=findings,
                        submitted_at=received.submitted_at,
                    )
                )
            if received.findings:
                labels = "、".join(f.label for f in received.findings)
                await _raise_alert(
                    session,
                    task,
                    kind="abnormal_answer",
                    summary=f"「{received.step_title}」出现异常回答：{labels}",
                    details=findings,
                    at=received.recorded_at,
                )
        log.info("answers projected", task_id=received.task_id, status=status)

    @activity.defn(name=ACTIVITY_RUN_FINISHED)
    async def run_finished(self, finished: RunFinished) -> None:
        async with transaction(self._sessions) as session:
            run = await session.get(PathwayRun, finished.workflow_id, with_for_update=True)
            if run is None:
                raise LookupError(f"run {finished.workflow_id} has not been projected")
            if run.status != RunStatus.COMPLETED:
                run.status = RunStatus.COMPLETED
                run.finished_at = finished.finished_at


async def _response_for(session: AsyncSession, task_id: str) -> FormResponse | None:
    result = await session.exec(select(FormResponse).where(FormResponse.task_id == task_id))
    return result.first()


async def _raise_alert(
    session: AsyncSession,
    task: CareTask,
    *,
    kind: str,
    summary: str,
    details: list[dict[str, str]],
    at: datetime,
) -> None:
    """One alert per task and kind, for the plan's executor role in the task's department."""
    existing = await session.exec(select(Alert).where(Alert.task_id == task.id, Alert.kind == kind))
    if existing.first() is not None:
        return
    session.add(
        Alert(
            kind=kind,
            task_id=task.id,
            workflow_id=task.workflow_id,
            patient_id=task.patient_id,
            department_code=task.department_code,
            role=task.responsible_role,
            summary=summary[:500],
            details=details,
            status=AlertStatus.OPEN,
            raised_at=at,
        )
    )
    log.warning("alert raised", kind=kind, task_id=task.id, role=task.responsible_role)
