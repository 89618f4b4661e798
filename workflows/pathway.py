"""The pathway interpreter (FU-*, ED-*, SAT-*, CM-*): runs any published pathway version for one
patient, pinned to that version until staff migrate it.

Each occurrence of a step runs as its own coroutine once due: it may push a form, an article, a
survey or a check-in (the run sends each message itself, see ``deliver_message``) and wait for
the patient within the validity window, remind them, send a reminder, open a staff task and wait
for its outcome, call the HIS back, or wait for an expected revisit. Answers are scored and
checked against the step's rules, which raise alerts, open complaint or praise cases (each its
own workflow, left running when the run ends), notify the patient and start dormant steps
(branches).

Staff change a running plan through updates with validators, each audited: reschedule or skip
an occurrence, add an ad-hoc step, pause and resume, end, complete a staff task, migrate to a
newer version with an explicit mapping (with a dry-run query). The run continues as new at a
quiet moment once its history grows, so a year-long plan keeps a bounded history.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, time, timedelta
from typing import Literal

from temporalio import workflow
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from contracts.complaint import ACTIVITY_OPEN as ACTIVITY_OPEN_COMPLAINT
    from contracts.complaint import (
        COMPLAINT_WORKFLOW,
        ComplaintInput,
        OpenComplaint,
        complaint_workflow_id,
    )
    from contracts.messages import (
        DELIVERY_WORKFLOW,
        DeliveryOutcome,
        LinkSpec,
        MessageRequest,
        delivery_workflow_id,
    )
    from contracts.pathway import (
        ACTIVITY_ADJUSTED,
        ACTIVITY_ANSWERS,
        ACTIVITY_HIS_EVENT,
        ACTIVITY_OCCURRENCES,
        ACTIVITY_RUN_CLOSED,
        ACTIVITY_RUN_OPENED,
        PATHWAY_WORKFLOW,
        QUERY_MIGRATION_PLAN,
        QUERY_PROGRESS,
        SIGNAL_ANSWERS,
        SIGNAL_ARTICLE_READ,
        SIGNAL_CHECKIN,
        SIGNAL_REGISTRATION,
        UPDATE_ADD_STEP,
        UPDATE_COMPLETE_TASK,
        UPDATE_END,
        UPDATE_MIGRATE,
        UPDATE_PAUSE,
        UPDATE_RESCHEDULE,
        UPDATE_RESUME,
        UPDATE_SKIP,
        AdHocStep,
        Adjustment,
        AnswersRecorded,
        ArticleRead,
        Carried,
        CheckIn,
        End,
        Migration,
        MigrationPlan,
        Occurrence,
        OccurrencesChanged,
        PathwayEvent,
        Pause,
        Registration,
        Reschedule,
        Resume,
        RunAdjusted,
        RunClosed,
        RunInput,
        RunOpened,
        Skip,
        TaskCompletion,
        pathway_task_id,
    )
    from contracts.runs import (
        TERMINAL_STATUSES,
        AnswerSubmission,
        RunProgress,
        StepProgress,
        StepStatus,
    )
    from contracts.search import PATHWAY_VERSION
    from pathways.definition import Action, Offset, PathwaySnapshot, Step
    from pathways.evaluation import CaseOpening, evaluate_answers, merged_values, step_needed
    from pathways.form_definition import FormDefinition
    from pathways.timeline import timeline, zone
    from workflows.local_steps import local_step
    from workflows.message_delivery import deliver_message
    from workflows.pathway_answers import answered_occurrence, fired_alerts
    from workflows.pathway_guards import (
        PUSHED_ACTIONS,
        UpdateRefused,
        accepts_answers,
        check_add_step,
        check_completion,
        check_open,
        check_pause,
        check_pending,
        check_reschedule,
        run_status,
    )
    from workflows.pathway_migration import MigrationRefused, plan_migration
    from workflows.retries import (
        DATABASE_RETRY,
        DATABASE_TIMEOUT,
        HIS_CALLBACK_GIVE_UP,
        HIS_CALLBACK_RETRY,
        HIS_CALLBACK_TIMEOUT,
    )
    from workflows.updates import UpdateRejected, refused_as_rejected, wait_for

# Runs that migrated before search attributes existed replay without the upsert.
PATCH_VERSION_ATTRIBUTE = "upsert-pathway-version-attribute"
# Runs that sent before this started a MessageDelivery child per message, and keep doing so.
MESSAGES_IN_RUN = "messages-in-run"

# Past this many events, continue as new at the next quiet moment (no occurrence in flight).
HISTORY_LIMIT = 2_000
DEFAULT_TEMPLATES = {
    "form": "pathway_form_invite",
    "survey": "satisfaction_survey",
    "article": "education_article",
    "checkin": "checkin_invite",
    "reminder": "reminder_notice",
}


def _span(offset: Offset | None, speedup: float) -> timedelta:
    return (offset.approx() if offset else timedelta(0)) / speedup


@workflow.defn(name=PATHWAY_WORKFLOW)
class PathwayRunWorkflow:
    @workflow.init
    def __init__(self, input: RunInput) -> None:
        self._input = input
        self._snapshot: PathwaySnapshot = input.snapshot
        self._tz = zone(input.timezone)
        carried = input.carried
        self._occ: dict[str, Occurrence] = (
            {o.key: o for o in carried.occurrences} if carried else {}
        )
        self._values: dict[str, dict[str, object]] = dict(carried.values) if carried else {}
        # Steps not in the pinned definition: ad-hoc ones, and those of versions migrated from.
        self._extra_steps: dict[str, Step] = dict(carried.extra_steps) if carried else {}
        self._extra_forms: dict[str, FormDefinition] = dict(carried.extra_forms) if carried else {}
        self._activations: dict[str, int] = dict(carried.activations) if carried else {}
        self._paused = carried.paused if carried else False
        self._seq = carried.seq if carried else 0
        self._generation = carried.generation if carried else 0
        self._ended: str | None = None
        self._finished = False
        self._running: dict[str, asyncio.Task[None]] = {}
        self._answers: dict[str, AnswerSubmission] = {}
        self._reads: dict[str, datetime] = {}
        self._checkins: dict[str, datetime] = {}
        self._completions: dict[str, TaskCompletion] = {}
        self._registrations: list[Registration] = []
        self._wake = False

    # --- the run ----------------------------------------------------------------------------

    @workflow.run
    async def run(self, input: RunInput) -> RunProgress:
        info = workflow.info()
        if input.carried is None:
            for planned in timeline(self._snapshot.definition, input.anchor_at, self._tz):
                step = self._snapshot.definition.step(planned.step_id)
                assert step is not None
                self._add(step, planned.index, self._compress(planned.due_at))
            await local_step(
                ACTIVITY_RUN_OPENED,
                RunOpened(
                    workflow_id=info.workflow_id,
                    input=input,
                    occurrences=list(self._occ.values()),
                    started_at=workflow.now(),
                ),
            )
        while True:
            if self._ended is not None:
                # The end update's handler finishes its projection and audit before the run does.
                await workflow.wait_condition(workflow.all_handlers_finished)
                await self._close("ended", self._ended)
                return self.progress()
            now = workflow.now()
            if not self._paused:
                for occ in sorted(self._occ.values(), key=lambda o: o.due_at):
                    if (
                        occ.status == "pending"
                        and occ.due_at <= now
                        and occ.key not in self._running
                    ):
                        self._running[occ.key] = asyncio.create_task(self._occurrence(occ.key))
            self._running = {k: t for k, t in self._running.items() if not t.done()}
            pending = [o for o in self._occ.values() if o.status == "pending"]
            if not pending and not self._running:
                await workflow.wait_condition(workflow.all_handlers_finished)
                await self._close("completed", None)
                return self.progress()
            if (
                not self._running
                and workflow.all_handlers_finished()
                and (
                    info.get_current_history_length() > HISTORY_LIMIT
                    or info.is_continue_as_new_suggested()
                )
            ):
                workflow.continue_as_new(self._carry())
            # Occurrences already started are not waited for by time: their tasks wake us.
            upcoming = [
                o.due_at for o in pending if not self._paused and o.key not in self._running
            ]
            self._wake = False
            condition = lambda: self._wake or any(t.done() for t in self._running.values())  # noqa: E731
            if upcoming:
                await wait_for(condition, min(upcoming) - workflow.now())
            else:
                await workflow.wait_condition(condition)

    def _carry(self) -> RunInput:
        return self._input.model_copy(
            update={
                "snapshot": self._snapshot,
                "carried": Carried(
                    occurrences=list(self._occ.values()),
                    values=self._values,
                    extra_steps=self._extra_steps,
                    extra_forms=self._extra_forms,
                    activations=self._activations,
                    paused=self._paused,
                    seq=self._seq,
                    generation=self._generation + 1,
                ),
            }
        )

    # --- one occurrence -------------------------------------------------------------------------

    async def _occurrence(self, key: str) -> None:
        occ = self._occ[key]
        step = self._step(occ.step_id)
        if not step_needed(step, merged_values(self._values.values())):
            await self._set(key, status="not_needed", reason="条件不满足", closed_at=workflow.now())
            return
        action = step.action
        if action.type in PUSHED_ACTIONS:
            await self._push(key, step)
        elif action.type == "reminder":
            outcome = await self._message(key, step, n=0)
            if outcome.status == "sent":
                await self._set(
                    key, status="completed", sent_at=outcome.sent_at, closed_at=workflow.now()
                )
            else:
                await self._undelivered(key, outcome)
        elif action.type == "staff_task":
            await self._staff_task(key, step)
        elif action.type == "his_callback":
            await workflow.execute_activity(
                ACTIVITY_HIS_EVENT,
                PathwayEvent(
                    workflow_id=workflow.info().workflow_id,
                    patient_id=self._input.patient_id,
                    event=action.event or step.id,
                    step_id=step.id,
                    at=workflow.now(),
                    idempotency_key=f"{workflow.info().workflow_id}/{key}",
                ),
                start_to_close_timeout=HIS_CALLBACK_TIMEOUT,
                schedule_to_close_timeout=HIS_CALLBACK_GIVE_UP,
                retry_policy=HIS_CALLBACK_RETRY,
            )
            await self._set(key, status="completed", closed_at=workflow.now())
        elif action.type == "revisit":
            await self._revisit(key, step)

    async def _push(self, key: str, step: Step) -> None:
        speedup = self._input.clock_speedup
        validity = _span(step.validity, speedup)
        outcome = await self._message(
            key, step, n=0, link=LinkSpec(task_id=self._occ[key].task_id, valid_for=validity)
        )
        if outcome.status != "sent":
            await self._undelivered(key, outcome)
            return
        sent = outcome.sent_at or workflow.now()
        valid_until = outcome.link_expires_at or sent + validity
        lost_at = sent + (_span(step.lost_after, speedup) if step.lost_after else validity)
        await self._set(key, status="sent", sent_at=sent, valid_until=valid_until, lost_at=lost_at)
        action = step.action
        if action.type == "article":
            await self._await_reading(key, step, sent, valid_until)
        elif action.type == "checkin":
            if await wait_for(lambda: key in self._checkins, valid_until - workflow.now()):
                await self._set(
                    key,
                    status="completed",
                    answered_at=self._checkins[key],
                    closed_at=workflow.now(),
                )
            else:
                await self._set(key, status="expired", reason="未打卡", closed_at=workflow.now())
        else:
            if not await wait_for(lambda: key in self._answers, valid_until - workflow.now()):
                await self._set(key, status="expired")
                if not await wait_for(lambda: key in self._answers, lost_at - workflow.now()):
                    await self._set(key, status="lost", closed_at=workflow.now())
                    return
            await self._answered(key, step)

    async def _await_reading(
        self, key: str, step: Step, sent: datetime, valid_until: datetime
    ) -> None:
        speedup = self._input.clock_speedup
        reread = step.reread
        reminders = 0
        while True:
            check_at = valid_until
            if reread is not None and reminders < reread.max_times:
                check_at = min(valid_until, sent + _span(reread.after, speedup) * (reminders + 1))
            if await wait_for(lambda: key in self._reads, check_at - workflow.now()):
                await self._set(
                    key, status="read", read_at=self._reads[key], closed_at=workflow.now()
                )
                return
            if workflow.now() >= valid_until:
                await self._set(key, status="expired", reason="未读", closed_at=workflow.now())
                return
            reminders += 1  # ED-3: unread past the deadline, remind again
            await self._message(
                key,
                step,
                n=reminders,
                template="education_reread",
                link=LinkSpec(task_id=self._occ[key].task_id, expires_at=valid_until),
            )
            await self._set(key, reminders=reminders)

    async def _answered(self, key: str, step: Step) -> None:
        submission = self._answers[key]
        form = self._form(step.action.form or "")
        evaluation = evaluate_answers(step, form, submission.answers, role=self._role(step))
        self._values[step.id] = evaluation.values
        occ = answered_occurrence(
            self._occ[key],
            evaluation,
            answered_at=submission.submitted_at,
            closed_at=workflow.now(),
        )
        self._occ[key] = occ
        await local_step(
            ACTIVITY_ANSWERS,
            AnswersRecorded(
                workflow_id=workflow.info().workflow_id,
                patient_id=self._input.patient_id,
                department_code=self._input.department_code,
                plan_id=self._snapshot.definition.id,
                occurrence=occ,
                form_id=form.id,
                answers=submission.answers,
                scores=evaluation.scores,
                alerts=fired_alerts(evaluation),
                submitted_at=submission.submitted_at,
                recorded_at=workflow.now(),
            ),
        )
        for case in evaluation.cases:
            await self._open_case(key, step, case)
        for index, rule in evaluation.fired:
            if rule.notify_patient is not None:
                await self._notify(
                    key,
                    index,
                    step,
                    rule.notify_patient.template,
                    dict(rule.notify_patient.variables),
                )
            for target in rule.activate:
                await self._activate(target)

    async def _staff_task(self, key: str, step: Step) -> None:
        speedup = self._input.clock_speedup
        limit = _span(step.lost_after, speedup) if step.lost_after else None
        await self._set(
            key,
            status="sent",
            sent_at=workflow.now(),
            lost_at=workflow.now() + limit if limit else None,
        )
        if limit is None:
            await workflow.wait_condition(lambda: key in self._completions)
        elif not await wait_for(lambda: key in self._completions, limit):
            await self._set(
                key,
                status="lost",
                reason="未在时限内完成",
                closed_at=workflow.now(),
                alert=f"「{step.title}」超时未完成",
            )
            return
        done = self._completions[key]
        await self._set(
            key,
            status=done.outcome,
            answered_at=workflow.now(),
            closed_at=workflow.now(),
            reason=done.reason,
        )
        if done.next_followup_at is not None:
            # FU-8: staff set the next follow-up date: a new phone follow-up then.
            self._add_adhoc(
                AdHocStep(
                    actor=done.actor,
                    reason="下次随访",
                    title=f"{step.title}（复访）",
                    action=step.action,
                    due_at=done.next_followup_at,
                    lost_after=step.lost_after,
                )
            )
            await self._project_all()

    async def _revisit(self, key: str, step: Step) -> None:
        """CM-7: a registration within the grace period satisfies the revisit; none → lost."""
        occ = self._occ[key]
        grace = _span(step.action.grace, self._input.clock_speedup)
        earliest = occ.due_at - grace

        def registered() -> bool:
            return any(
                r.at >= earliest and r.department_code == self._input.department_code
                for r in self._registrations
            )

        await self._set(key, status="sent", sent_at=workflow.now(), lost_at=occ.due_at + grace)
        if await wait_for(registered, occ.due_at + grace - workflow.now()):
            await self._set(
                key, status="completed", answered_at=workflow.now(), closed_at=workflow.now()
            )
        else:
            await self._set(
                key,
                status="lost",
                reason="到期未复诊（潜在失访）",
                closed_at=workflow.now(),
                alert=f"「{step.title}」到期未复诊",
            )

    async def _message(
        self,
        key: str,
        step: Step,
        *,
        n: int,
        template: str | None = None,
        link: LinkSpec | None = None,
    ) -> DeliveryOutcome:
        info = workflow.info()
        occ = self._occ[key]
        action = step.action
        article = self._snapshot.articles.get(action.article or "")
        variables: dict[str, object] = {
            "step_title": step.title,
            "anchor_at": self._input.anchor_at,
            "discharged_at": self._input.anchor_at,
            "visit_date": self._input.anchor_at,
            "due_at": occ.due_at,
            "reminder_text": action.text or step.title,
            "article_title": article.title if article else step.title,
        }
        message_key = f"{info.workflow_id}/{key}/msg/{n}"
        return await self._send(
            MessageRequest(
                key=message_key,
                template=template or action.template or DEFAULT_TEMPLATES[action.type],
                patient_id=self._input.patient_id,
                variables=variables,
                link=link,
                hospital_code=self._input.hospital_code,
                department_code=self._input.department_code,
                workflow_id=info.workflow_id,
                task_id=occ.task_id,
                urgent=step.urgent or self._input.clock_speedup > 1,
                not_after=self._not_after(occ, step, n),
            )
        )

    async def _send(self, request: MessageRequest) -> DeliveryOutcome:
        if workflow.patched(MESSAGES_IN_RUN):
            return await deliver_message(request)
        # Runs from before sent each message from a child workflow of its own.
        outcome: DeliveryOutcome = await workflow.execute_child_workflow(
            DELIVERY_WORKFLOW,
            request,
            id=delivery_workflow_id(request.key),
            search_attributes=workflow.info().typed_search_attributes,
            result_type=DeliveryOutcome,
        )
        return outcome

    def _not_after(self, occ: Occurrence, step: Step, n: int) -> datetime:
        """Until when a message for this occurrence is still of use: a re-reminder within the
        link's validity, a first message within the step's window from its due time, a reminder
        without one within its (local) day."""
        speedup = self._input.clock_speedup
        if n > 0 and occ.valid_until is not None:
            return occ.valid_until
        if step.validity is not None:
            return occ.due_at + _span(step.validity, speedup)
        if speedup > 1:
            return occ.due_at + timedelta(days=1) / speedup
        local = occ.due_at.astimezone(self._tz)
        return datetime.combine(local.date() + timedelta(days=1), time(0), tzinfo=self._tz)

    async def _notify(
        self, key: str, rule: int, step: Step, template: str, variables: dict[str, object]
    ) -> None:
        info = workflow.info()
        message_key = f"{info.workflow_id}/{key}/rule/{rule}"
        await self._send(
            MessageRequest(
                key=message_key,
                template=template,
                patient_id=self._input.patient_id,
                variables={"step_title": step.title, **variables},
                hospital_code=self._input.hospital_code,
                department_code=self._input.department_code,
                workflow_id=info.workflow_id,
                urgent=True,
            )
        )

    async def _open_case(self, key: str, step: Step, case: CaseOpening) -> None:
        info = workflow.info()
        start = await workflow.execute_activity(
            ACTIVITY_OPEN_COMPLAINT,
            OpenComplaint(
                key=f"{info.workflow_id}/{key}/rule/{case.rule}",
                kind=case.kind,
                source="survey" if step.action.type == "survey" else "followup",
                category=case.category,
                summary=case.summary,
                patient_id=self._input.patient_id,
                department_code=self._input.department_code,
                hospital_code=self._input.hospital_code,
                task_id=self._occ[key].task_id,
                opened_at=workflow.now(),
            ),
            result_type=ComplaintInput,
            start_to_close_timeout=DATABASE_TIMEOUT,
            retry_policy=DATABASE_RETRY,
        )
        # Started once: a replay after a lost start finds the case's workflow already running.
        with contextlib.suppress(WorkflowAlreadyStartedError):
            await workflow.start_child_workflow(
                COMPLAINT_WORKFLOW,
                start,
                id=complaint_workflow_id(start.complaint_id),
                search_attributes=workflow.info().typed_search_attributes,
                parent_close_policy=ParentClosePolicy.ABANDON,
            )

    async def _undelivered(self, key: str, outcome: DeliveryOutcome) -> None:
        if outcome.status == "suppressed":
            # Switched off by the patient, or no longer of use by the time it could go out.
            await self._set(
                key,
                status="not_needed",
                reason=outcome.reason or "患者已关闭此类消息",
                closed_at=workflow.now(),
            )
        else:
            why = outcome.reason or "原因未知"
            await self._set(
                key,
                status="failed",
                reason=outcome.reason,
                closed_at=workflow.now(),
                alert=f"「{self._occ[key].title}」未能发送：{why}",
            )

    async def _activate(self, step_id: str) -> None:
        step = self._step(step_id)
        index = self._activations.get(step_id, 0)
        self._activations[step_id] = index + 1
        due = workflow.now() + _span(step.after_activation, self._input.clock_speedup)
        occ = self._add(step, index, due)
        await self._project([occ])

    # --- signals ----------------------------------------------------------------------------

    @workflow.signal(name=SIGNAL_ANSWERS)
    def submit_answers(self, submission: AnswerSubmission) -> None:
        key = f"{submission.step_id}#{submission.occurrence}"
        if not accepts_answers(self._occ, key, running=self._running, answered=self._answers):
            workflow.logger.info("answers for %s ignored", key)
            return
        self._answers[key] = submission

    @workflow.signal(name=SIGNAL_ARTICLE_READ)
    def article_read(self, read: ArticleRead) -> None:
        key = f"{read.step_id}#{read.occurrence}"
        if key in self._occ and key not in self._reads:
            self._reads[key] = read.at

    @workflow.signal(name=SIGNAL_CHECKIN)
    def checkin(self, check: CheckIn) -> None:
        key = f"{check.step_id}#{check.occurrence}"
        if key in self._occ and key not in self._checkins:
            self._checkins[key] = check.at

    @workflow.signal(name=SIGNAL_REGISTRATION)
    def registration(self, registration: Registration) -> None:
        self._registrations.append(registration)

    # --- updates (staff operations, CM-4) -----------------------------------------------------

    def _pending(self, key: str) -> None:
        with refused_as_rejected(UpdateRefused):
            check_pending(self._occ, key, running=self._running, ended=self._ended is not None)

    @workflow.update(name=UPDATE_RESCHEDULE)
    async def reschedule(self, change: Reschedule) -> Occurrence:
        self._check_reschedule(change)
        await self._set(change.key, due_at=change.due_at)
        await self._audit("reschedule", change, key=change.key, due_at=change.due_at.isoformat())
        self._wake = True
        return self._occ[change.key]

    @reschedule.validator
    def _validate_reschedule(self, change: Reschedule) -> None:
        self._check_reschedule(change)

    def _check_reschedule(self, change: Reschedule) -> None:
        with refused_as_rejected(UpdateRefused):
            check_reschedule(
                self._occ,
                change.key,
                change.due_at,
                now=workflow.now(),
                running=self._running,
                ended=self._ended is not None,
            )

    @workflow.update(name=UPDATE_SKIP)
    async def skip(self, change: Skip) -> Occurrence:
        self._pending(change.key)
        await self._set(
            change.key, status="skipped", reason=change.reason, closed_at=workflow.now()
        )
        await self._audit("skip", change, key=change.key)
        self._wake = True
        return self._occ[change.key]

    @skip.validator
    def _validate_skip(self, change: Skip) -> None:
        self._pending(change.key)

    @workflow.update(name=UPDATE_ADD_STEP)
    async def add_step(self, change: AdHocStep) -> Occurrence:
        self._check_open()
        occ = self._add_adhoc(change)
        await self._project([occ])
        await self._audit("add_step", change, key=occ.key, title=change.title)
        self._wake = True
        return occ

    @add_step.validator
    def _validate_add_step(self, change: AdHocStep) -> None:
        with refused_as_rejected(UpdateRefused):
            check_add_step(change, self._snapshot, ended=self._ended is not None)

    def _check_open(self) -> None:
        with refused_as_rejected(UpdateRefused):
            check_open(ended=self._ended is not None)

    @workflow.update(name=UPDATE_PAUSE)
    async def pause(self, change: Pause) -> RunProgress:
        self._check_pause(paused=True)
        self._paused = True
        await self._audit("pause", change)
        return self.progress()

    @pause.validator
    def _validate_pause(self, change: Pause) -> None:  # noqa: ARG002 - fixed signature
        self._check_pause(paused=True)

    @workflow.update(name=UPDATE_RESUME)
    async def resume(self, change: Resume) -> RunProgress:
        self._check_pause(paused=False)
        self._paused = False
        await self._audit("resume", change)
        self._wake = True
        return self.progress()

    @resume.validator
    def _validate_resume(self, change: Resume) -> None:  # noqa: ARG002
        self._check_pause(paused=False)

    def _check_pause(self, *, paused: bool) -> None:
        with refused_as_rejected(UpdateRefused):
            check_pause(pausing=paused, paused=self._paused, ended=self._ended is not None)

    @workflow.update(name=UPDATE_END)
    async def end(self, change: End) -> RunProgress:
        self._check_open()
        self._ended = change.reason
        for task in self._running.values():
            task.cancel()
        now = workflow.now()
        for key, occ in list(self._occ.items()):
            if occ.status not in TERMINAL_STATUSES:
                self._occ[key] = occ.model_copy(
                    update={"status": "not_needed", "reason": change.reason, "closed_at": now}
                )
        await self._project_all()
        await self._audit("end", change)
        self._wake = True
        return self.progress()

    @end.validator
    def _validate_end(self, change: End) -> None:  # noqa: ARG002
        self._check_open()

    @workflow.update(name=UPDATE_COMPLETE_TASK)
    async def complete_task(self, done: TaskCompletion) -> Occurrence:
        self._check_completion(done)
        self._completions[done.key] = done
        await workflow.wait_condition(
            lambda: self._occ[done.key].status in TERMINAL_STATUSES or self._ended is not None
        )
        await self._audit("complete_task", done, key=done.key, outcome=done.outcome)
        return self._occ[done.key]

    @complete_task.validator
    def _validate_complete(self, done: TaskCompletion) -> None:
        self._check_completion(done)

    def _check_completion(self, done: TaskCompletion) -> None:
        with refused_as_rejected(UpdateRefused):
            check_completion(
                self._occ, done.key, completed=self._completions, ended=self._ended is not None
            )

    @workflow.update(name=UPDATE_MIGRATE)
    async def migrate(self, migration: Migration) -> MigrationPlan:
        plan = self._plan(migration)
        old = self._snapshot
        for step in old.definition.steps:
            self._extra_steps.setdefault(step.id, step)  # in-progress ones finish on it
        for form_id, form in old.forms.items():
            self._extra_forms.setdefault(form_id, form)
        self._snapshot = migration.target
        if workflow.patched(PATCH_VERSION_ATTRIBUTE):
            workflow.upsert_search_attributes([PATHWAY_VERSION.value_set(migration.target.version)])
        now = workflow.now()
        changed: list[Occurrence] = []
        for change in plan.changes:
            if change.change == "removed":
                occ = self._occ[change.key].model_copy(
                    update={
                        "status": "not_needed",
                        "closed_at": now,
                        "reason": f"迁移到第{migration.target.version}版后不再需要",
                    }
                )
                self._occ[change.key] = occ
                changed.append(occ)
            elif change.change in ("rescheduled", "added"):
                assert change.new_step_id is not None
                assert change.new_due_at is not None
                if change.change == "rescheduled":
                    self._occ.pop(change.key)
                target_step = migration.target.definition.step(change.new_step_id)
                assert target_step is not None
                index = int(change.key.rsplit("#", 1)[1])
                changed.append(self._add(target_step, index, change.new_due_at))
        await self._project(changed)
        await self._audit(
            "migrate", migration, plan=plan.model_dump(mode="json"), snapshot=migration.target
        )
        self._wake = True
        return plan

    @migrate.validator
    def _validate_migrate(self, migration: Migration) -> None:
        self._plan(migration)

    @workflow.query(name=QUERY_MIGRATION_PLAN)
    def migration_plan(self, migration: Migration) -> MigrationPlan:
        """The dry run: what ``migrate`` would change, changing nothing."""
        return self._plan(migration)

    def _plan(self, migration: Migration) -> MigrationPlan:
        self._check_open()
        try:
            return plan_migration(
                list(self._occ.values()),
                self._snapshot,
                migration.target,
                migration.mapping,
                anchor=self._input.anchor_at,
                tz=self._tz,
                now=workflow.now(),
                compress=self._compress,
            )
        except MigrationRefused as exc:
            raise UpdateRejected(str(exc)) from exc

    @workflow.query(name=QUERY_PROGRESS)
    def progress(self) -> RunProgress:
        status = run_status(
            ended=self._ended is not None, finished=self._finished, paused=self._paused
        )
        return RunProgress(
            workflow_id=workflow.info().workflow_id,
            plan_id=self._snapshot.definition.id,
            plan_version=self._snapshot.version,
            status=status,
            anchor_at=self._input.anchor_at,
            clock_speedup=self._input.clock_speedup,
            steps=[
                StepProgress(
                    step_id=o.step_id,
                    occurrence=o.index,
                    task_id=o.task_id,
                    title=o.title,
                    status=o.status,
                    due_at=o.due_at,
                    sent_at=o.sent_at,
                    valid_until=o.valid_until,
                    lost_at=o.lost_at,
                    answered_at=o.answered_at,
                    findings=o.findings,
                    action_type=o.action_type,
                    read_at=o.read_at,
                    closed_at=o.closed_at,
                    reason=o.reason,
                    score=o.score,
                    risk_level=o.risk_level,
                )
                for o in sorted(self._occ.values(), key=lambda o: (o.due_at, o.key))
            ],
        )

    # --- helpers ------------------------------------------------------------------------------

    def _compress(self, moment: datetime) -> datetime:
        anchor = self._input.anchor_at
        return anchor + (moment - anchor) / self._input.clock_speedup

    def _step(self, step_id: str) -> Step:
        step = self._snapshot.definition.step(step_id) or self._extra_steps.get(step_id)
        if step is None:
            raise ApplicationError(f"step {step_id} is in no version of this run")
        return step

    def _form(self, form_id: str) -> FormDefinition:
        form = self._snapshot.forms.get(form_id) or self._extra_forms.get(form_id)
        if form is None:
            raise ApplicationError(f"form {form_id} is in no version of this run")
        return form

    def _role(self, step: Step) -> str:
        return step.action.role or self._snapshot.definition.executor_role

    def _add(self, step: Step, index: int, due: datetime) -> Occurrence:
        key = f"{step.id}#{index}"
        occ = Occurrence(
            key=key,
            step_id=step.id,
            index=index,
            task_id=pathway_task_id(workflow.info().workflow_id, key),
            title=step.title,
            action_type=step.action.type,
            role=self._role(step),
            due_at=due,
            plan_version=self._snapshot.version,
        )
        self._occ[key] = occ
        return occ

    def _add_adhoc(self, change: AdHocStep) -> Occurrence:
        number = sum(1 for s in self._extra_steps if s.startswith("adhoc-")) + 1
        step = Step(
            id=f"adhoc-{number}",
            title=change.title,
            action=change.action,
            after_activation=Offset(),
            validity=change.validity,
            lost_after=change.lost_after,
        )
        self._extra_steps[step.id] = step
        return self._add(step, 0, change.due_at)

    async def _set(self, key: str, *, alert: str | None = None, **changes: object) -> None:
        self._occ[key] = self._occ[key].model_copy(update=changes)
        await self._project([self._occ[key]], alert=alert)
        self._wake = True

    async def _project(self, occurrences: list[Occurrence], alert: str | None = None) -> None:
        if not occurrences:
            return
        await local_step(
            ACTIVITY_OCCURRENCES,
            OccurrencesChanged(
                workflow_id=workflow.info().workflow_id,
                patient_id=self._input.patient_id,
                department_code=self._input.department_code,
                plan_id=self._snapshot.definition.id,
                occurrences=occurrences,
                at=workflow.now(),
                alert=alert,
            ),
        )

    async def _project_all(self) -> None:
        await self._project(list(self._occ.values()))

    async def _audit(self, action: str, change: object, **detail: object) -> None:
        snapshot = detail.pop("snapshot", None)
        actor = getattr(change, "actor", "system")
        reason = getattr(change, "reason", "")
        self._seq += 1
        await local_step(
            ACTIVITY_ADJUSTED,
            RunAdjusted(
                workflow_id=workflow.info().workflow_id,
                adjustment=Adjustment(action=action, actor=actor, reason=reason, detail=detail),
                at=workflow.now(),
                paused=self._paused,
                plan_version=self._snapshot.version,
                snapshot=snapshot if isinstance(snapshot, PathwaySnapshot) else None,
            ),
        )

    async def _close(self, status: Literal["completed", "ended"], reason: str | None) -> None:
        self._finished = True
        for task in self._running.values():
            if not task.done():
                task.cancel()
        await local_step(
            ACTIVITY_RUN_CLOSED,
            RunClosed(
                workflow_id=workflow.info().workflow_id,
                status=status,
                reason=reason,
                at=workflow.now(),
            ),
        )


__all__ = ["Action", "PathwayRunWorkflow", "StepStatus"]
