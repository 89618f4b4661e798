"""Projection of pathway runs into the database (runs, one task row per step occurrence,
answers with scores, alerts, the audit trail of staff adjustments) and the HIS callbacks of
his_callback steps.

Every method is idempotent: rows are created when missing, a closed task never reopens, and an
alert is raised once per task, rule and role.
"""

from __future__ import annotations

from sqlalchemy import inspect as sa_inspect
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity
from temporalio.exceptions import ApplicationError

from contracts.pathway import (
    ACTIVITY_ADJUSTED,
    ACTIVITY_ANSWERS,
    ACTIVITY_HIS_EVENT,
    ACTIVITY_OCCURRENCES,
    ACTIVITY_RUN_CLOSED,
    ACTIVITY_RUN_OPENED,
    AnswersRecorded,
    Occurrence,
    OccurrencesChanged,
    PathwayEvent,
    RunAdjusted,
    RunClosed,
    RunOpened,
)
from contracts.runs import TERMINAL_STATUSES
from core.db import SessionFactory, transaction
from core.logs import get_logger
from core.models import (
    Alert,
    AlertStatus,
    AuditEntry,
    CareTask,
    FormResponse,
    PathwayRun,
    RunStatus,
)
from integrations.his import HisClient, HisRefused
from services import audit

log = get_logger(__name__)

_COPIED = (
    "title",
    "due_at",
    "sent_at",
    "valid_until",
    "lost_at",
    "answered_at",
    "read_at",
    "closed_at",
    "reason",
    "score",
    "risk_level",
    "plan_version",
)


def _apply(task: CareTask, occ: Occurrence, at: object) -> None:
    if task.status in TERMINAL_STATUSES and occ.status != task.status:
        return  # a late or repeated write never reopens a closed task
    task.status = occ.status
    task.step_id = occ.step_id
    task.action_type = occ.action_type
    task.responsible_role = occ.role
    for name in _COPIED:
        setattr(task, name, getattr(occ, name))
    task.updated_at = at  # type: ignore[assignment]


class PathwayRecordActivities:
    def __init__(self, sessions: SessionFactory, his: HisClient) -> None:
        self._sessions = sessions
        self._his = his

    async def _task(
        self,
        session: AsyncSession,
        occ: Occurrence,
        *,
        workflow_id: str,
        patient_id: str,
        department_code: str,
        plan_id: str,
        form_id: str | None,
        article_id: str | None,
    ) -> CareTask:
        task = await session.get(CareTask, occ.task_id, with_for_update=True)
        if task is None:
            task = CareTask(
                id=occ.task_id,
                workflow_id=workflow_id,
                step_id=occ.step_id,
                occurrence=occ.index,
                patient_id=patient_id,
                plan_id=plan_id,
                department_code=department_code,
                title=occ.title,
                form_id=form_id,
                article_id=article_id,
                action_type=occ.action_type,
                plan_version=occ.plan_version,
                responsible_role=occ.role,
                status=occ.status,
                due_at=occ.due_at,
            )
            session.add(task)
        return task

    @activity.defn(name=ACTIVITY_RUN_OPENED)
    async def run_opened(self, opened: RunOpened) -> None:
        run_input = opened.input
        snapshot = run_input.snapshot
        async with transaction(self._sessions) as session:
            started = await session.get(PathwayRun, opened.workflow_id) is None
            if started:
                session.add(
                    PathwayRun(
                        workflow_id=opened.workflow_id,
                        plan_id=snapshot.definition.id,
                        plan_version=snapshot.version,
                        patient_id=run_input.patient_id,
                        encounter_id=run_input.encounter_id,
                        department_code=run_input.department_code,
                        anchor_at=run_input.anchor_at,
                        clock_speedup=run_input.clock_speedup,
                        kind=snapshot.definition.kind,
                        anchor_event=run_input.anchor_event,
                        plan_snapshot=snapshot.model_dump(mode="json"),
                        started_at=opened.started_at,
                    )
                )
                await session.flush()
            for occ in opened.occurrences:
                step = snapshot.definition.step(occ.step_id)
                task = await self._task(
                    session,
                    occ,
                    workflow_id=opened.workflow_id,
                    patient_id=run_input.patient_id,
                    department_code=run_input.department_code,
                    plan_id=snapshot.definition.id,
                    form_id=step.action.form if step else None,
                    article_id=step.action.article if step else None,
                )
                task.updated_at = opened.started_at
            if started:
                # Last in the transaction: the audit chain's lock is held only until commit.
                audit.record(
                    session,
                    actor_type="system",
                    actor_id=None,
                    action="run.started",
                    target_type="pathway_run",
                    target_id=opened.workflow_id,
                    patient_id=run_input.patient_id,
                    plan_id=snapshot.definition.id,
                    plan_version=snapshot.version,
                    department_code=run_input.department_code,
                    anchor_event=run_input.anchor_event,
                )
        log.info(
            "pathway run projected", workflow_id=opened.workflow_id, tasks=len(opened.occurrences)
        )

    @activity.defn(name=ACTIVITY_OCCURRENCES)
    async def occurrences(self, changed: OccurrencesChanged) -> None:
        async with transaction(self._sessions) as session:
            run = await session.get(PathwayRun, changed.workflow_id)
            snapshot = run.plan_snapshot if run else {}
            steps = {s["id"]: s for s in snapshot.get("definition", {}).get("steps", [])}
            changes: list[tuple[CareTask, str | None]] = []
            raised: list[Alert | None] = []
            for occ in changed.occurrences:
                action = steps.get(occ.step_id, {}).get("action", {})
                task = await self._task(
                    session,
                    occ,
                    workflow_id=changed.workflow_id,
                    patient_id=changed.patient_id,
                    department_code=changed.department_code,
                    plan_id=changed.plan_id,
                    form_id=action.get("form"),
                    article_id=action.get("article"),
                )
                before = _status_before(task)
                _apply(task, occ, changed.at)
                changes.append((task, before))
                if changed.alert:
                    await session.flush()
                    raised.append(
                        await _raise(
                            session,
                            task,
                            kind=f"task:{occ.status}",
                            role=occ.role,
                            level="warning",
                            summary=changed.alert,
                            details=[],
                            at=changed.at,
                        )
                    )
            _audit_changes(session, changes, raised)

    @activity.defn(name=ACTIVITY_ANSWERS)
    async def answers(self, recorded: AnswersRecorded) -> None:
        occ = recorded.occurrence
        findings = [f.model_dump() for f in occ.findings]
        async with transaction(self._sessions) as session:
            task = await self._task(
                session,
                occ,
                workflow_id=recorded.workflow_id,
                patient_id=recorded.patient_id,
                department_code=recorded.department_code,
                plan_id=recorded.plan_id,
                form_id=recorded.form_id,
                article_id=None,
            )
            before = _status_before(task)
            _apply(task, occ, recorded.recorded_at)
            await session.flush()
            raised: list[Alert | None] = []
            found = await session.exec(select(FormResponse).where(FormResponse.task_id == task.id))
            if found.first() is None:
                session.add(
                    FormResponse(
                        task_id=task.id,
                        workflow_id=recorded.workflow_id,
                        form_id=recorded.form_id,
                        answers=recorded.answers,
                        abnormal_findings=findings,
                        scores=recorded.scores,
                        submitted_at=recorded.submitted_at,
                    )
                )
            for alert in recorded.alerts:
                for role in alert.roles:
                    raised.append(
                        await _raise(
                            session,
                            task,
                            kind=f"rule:{alert.rule}:{role}",
                            role=role,
                            level=alert.level,
                            summary=alert.message,
                            details=findings,
                            at=recorded.recorded_at,
                        )
                    )
            _audit_changes(session, [(task, before)], raised)

    @activity.defn(name=ACTIVITY_ADJUSTED)
    async def adjusted(self, adjusted: RunAdjusted) -> None:
        change = adjusted.adjustment
        async with transaction(self._sessions) as session:
            run = await session.get(PathwayRun, adjusted.workflow_id, with_for_update=True)
            if run is not None:
                run.paused = adjusted.paused
                run.plan_version = adjusted.plan_version
                if adjusted.snapshot is not None:
                    run.plan_snapshot = adjusted.snapshot.model_dump(mode="json")
            entry_id = f"{adjusted.workflow_id}/{change.action}/{adjusted.at.isoformat()}"
            exists = await session.exec(
                select(AuditEntry.id).where(
                    AuditEntry.target_id == adjusted.workflow_id,
                    AuditEntry.action == f"pathway.{change.action}",
                    AuditEntry.at == adjusted.at,
                )
            )
            if exists.first() is None:
                session.add(
                    AuditEntry(
                        at=adjusted.at,
                        actor_type="staff",
                        actor_id=change.actor,
                        action=f"pathway.{change.action}",
                        target_type="pathway_run",
                        target_id=adjusted.workflow_id,
                        patient_id=run.patient_id if run is not None else None,
                        detail={"reason": change.reason, **change.detail, "ref": entry_id},
                    )
                )

    @activity.defn(name=ACTIVITY_RUN_CLOSED)
    async def run_closed(self, closed: RunClosed) -> None:
        async with transaction(self._sessions) as session:
            run = await session.get(PathwayRun, closed.workflow_id, with_for_update=True)
            if run is None:
                raise LookupError(f"run {closed.workflow_id} has not been projected")
            if run.status == RunStatus.RUNNING:
                run.status = closed.status
                run.finished_at = closed.at
                run.ended_reason = closed.reason
                run.paused = False
                audit.record(
                    session,
                    actor_type="system",
                    actor_id=None,
                    action="run.ended",
                    target_type="pathway_run",
                    target_id=closed.workflow_id,
                    patient_id=run.patient_id,
                    status=closed.status,
                    reason=closed.reason,
                )

    @activity.defn(name=ACTIVITY_HIS_EVENT)
    async def his_event(self, event: PathwayEvent) -> None:
        body = event.model_dump(mode="json", exclude={"idempotency_key"})
        try:
            await self._his.post_pathway_event(body, event.idempotency_key)
        except HisRefused as exc:
            raise ApplicationError(str(exc), type="HisRefused", non_retryable=True) from exc


async def _raise(
    session: AsyncSession,
    task: CareTask,
    *,
    kind: str,
    role: str,
    level: str,
    summary: str,
    details: list[dict[str, str]],
    at: object,
) -> Alert | None:
    existing = await session.exec(select(Alert).where(Alert.task_id == task.id, Alert.kind == kind))
    if existing.first() is not None:
        return None
    alert = Alert(
        kind=kind[:32],
        task_id=task.id,
        workflow_id=task.workflow_id,
        patient_id=task.patient_id,
        department_code=task.department_code,
        role=role,
        level=level,
        summary=summary[:500],
        details=details,
        status=AlertStatus.OPEN,
        raised_at=at,  # type: ignore[arg-type]
    )
    session.add(alert)
    log.warning("alert raised", kind=kind, task_id=task.id, role=role, level=level)
    return alert


def _status_before(task: CareTask) -> str | None:
    """The task's status as stored (None for a task this transaction creates)."""
    return task.status if sa_inspect(task).persistent else None


def _audit_changes(
    session: AsyncSession, changes: list[tuple[CareTask, str | None]], raised: list[Alert | None]
) -> None:
    """System entries for what a person would want in the trail: a task's status changing
    (ids and statuses only) and each alert raised. Added last in the transaction, so the audit
    chain's lock is taken at commit and not held while other rows are locked."""
    for task, before in changes:
        if task.status == before:
            continue
        audit.record(
            session,
            actor_type="system",
            actor_id=None,
            action="task.status_changed",
            target_type="care_task",
            target_id=task.id,
            patient_id=task.patient_id,
            workflow_id=task.workflow_id,
            step_id=task.step_id,
            occurrence=task.occurrence,
            before=before,
            after=task.status,
        )
    for alert in raised:
        if alert is None:
            continue
        audit.record(
            session,
            actor_type="system",
            actor_id=None,
            action="alert.raised",
            target_type="alert",
            target_id=alert.id,
            patient_id=alert.patient_id,
            workflow_id=alert.workflow_id,
            task_id=alert.task_id,
            kind=alert.kind,
            level=alert.level,
            role=alert.role,
        )
