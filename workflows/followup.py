"""Follow-up plan run: pushes each step's questionnaire when due, waits for the answer within the
link's validity, and records the outcome (completed, abnormal, lost). One run per patient, plan
and discharge; the plan itself is data handed in with the input, pinned for the run's life."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from pathways.answers import abnormal_findings
    from pathways.model import FollowUpStep
    from workflows.contracts import (
        ACTIVITY_ANSWERS_RECEIVED,
        ACTIVITY_RUN_FINISHED,
        ACTIVITY_RUN_STARTED,
        ACTIVITY_SEND_INVITE,
        ACTIVITY_STEP_CHANGED,
        QUERY_PROGRESS,
        SIGNAL_SUBMIT_ANSWERS,
        TERMINAL_STATUSES,
        UNDELIVERABLE,
        WORKFLOW_NAME,
        AnswersReceived,
        AnswerSubmission,
        FindingRecord,
        FollowUpInput,
        InviteRequest,
        InviteResult,
        PlannedTask,
        RunFinished,
        RunProgress,
        RunStarted,
        RunSummary,
        StepChanged,
        StepProgress,
        StepStatus,
        task_id_for,
    )
    from workflows.message_contracts import (
        DELIVERY_WORKFLOW,
        DeliveryOutcome,
        LinkSpec,
        MessageRequest,
        delivery_workflow_id,
    )

# Invitations go through the MessageDelivery child workflow (routing, quiet hours, fallback);
# runs recorded before this change keep their single send activity on replay.
PATCH_DELIVERY_WORKFLOW = "message-delivery-workflow"

# Projection writes must eventually land: a database outage delays them, it does not fail a
# patient's plan. Operators see the retrying activity in the Temporal UI.
PROJECTION_TIMEOUT = timedelta(seconds=30)
PROJECTION_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
)
# Sends retry with backoff on transient channel failures; an undeliverable message fails at once.
SEND_TIMEOUT = timedelta(minutes=1)
SEND_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=5),
    maximum_attempts=20,
    non_retryable_error_types=[UNDELIVERABLE],
)


@dataclass
class _Step:
    definition: FollowUpStep
    task_id: str
    due_at: datetime
    status: StepStatus = "pending"
    sent_at: datetime | None = None
    valid_until: datetime | None = None
    lost_at: datetime | None = None
    answer: AnswerSubmission | None = None
    findings: list[FindingRecord] = field(default_factory=list)

    @property
    def accepts_answers(self) -> bool:
        # Open from the moment the send was decided: the activity may still be finishing when a
        # fast patient taps the link.
        return self.sent_at is not None and self.status not in TERMINAL_STATUSES and not self.answer


@workflow.defn(name=WORKFLOW_NAME)
class FollowUpWorkflow:
    @workflow.init
    def __init__(self, input: FollowUpInput) -> None:
        self._input = input
        self._done = False
        info = workflow.info()
        speedup = input.clock_speedup
        self._steps: dict[str, _Step] = {
            step.id: _Step(
                definition=step,
                task_id=task_id_for(info.workflow_id, step.id),
                due_at=input.anchor_at + step.offset.to_timedelta() / speedup,
            )
            for step in input.snapshot.plan.steps
        }

    @workflow.run
    async def run(self, input: FollowUpInput) -> RunSummary:
        info = workflow.info()
        plan = input.snapshot.plan
        await self._project(
            ACTIVITY_RUN_STARTED,
            RunStarted(
                workflow_id=info.workflow_id,
                patient_id=input.patient_id,
                encounter_id=input.encounter_id,
                department_code=input.department_code,
                responsible_role=plan.executor_role,
                snapshot=input.snapshot,
                anchor_at=input.anchor_at,
                clock_speedup=input.clock_speedup,
                started_at=workflow.now(),
                tasks=[
                    PlannedTask(
                        task_id=s.task_id,
                        step_id=s.definition.id,
                        occurrence=0,
                        title=s.definition.title,
                        form_id=s.definition.form,
                        due_at=s.due_at,
                    )
                    for s in self._steps.values()
                ],
            ),
        )
        # Steps overlap (day 3's window is still open when day 7 is due), so each runs on its own.
        await asyncio.gather(*(self._run_step(step) for step in self._steps.values()))
        await self._project(
            ACTIVITY_RUN_FINISHED,
            RunFinished(workflow_id=info.workflow_id, finished_at=workflow.now()),
        )
        self._done = True
        counts: dict[str, int] = {}
        for step in self._steps.values():
            counts[step.status] = counts.get(step.status, 0) + 1
        return RunSummary(counts=counts)

    @workflow.signal(name=SIGNAL_SUBMIT_ANSWERS)
    def submit_answers(self, submission: AnswerSubmission) -> None:
        step = self._steps.get(submission.step_id)
        if step is None or submission.occurrence != 0:
            workflow.logger.warning("answers for an unknown step ignored: %s", submission.step_id)
            return
        if not step.accepts_answers:
            workflow.logger.info(
                "answers for step %s ignored in status %s", submission.step_id, step.status
            )
            return
        step.answer = submission

    @workflow.query(name=QUERY_PROGRESS)
    def progress(self) -> RunProgress:
        plan = self._input.snapshot.plan
        return RunProgress(
            workflow_id=workflow.info().workflow_id,
            plan_id=plan.id,
            plan_version=plan.version,
            status="completed" if self._done else "running",
            anchor_at=self._input.anchor_at,
            clock_speedup=self._input.clock_speedup,
            steps=[
                StepProgress(
                    step_id=s.definition.id,
                    occurrence=0,
                    task_id=s.task_id,
                    title=s.definition.title,
                    status=s.status,
                    due_at=s.due_at,
                    sent_at=s.sent_at,
                    valid_until=s.valid_until,
                    lost_at=s.lost_at,
                    answered_at=s.answer.submitted_at if s.answer else None,
                    findings=s.findings,
                )
                for s in self._steps.values()
            ],
        )

    async def _run_step(self, step: _Step) -> None:
        speedup = self._input.clock_speedup
        definition = step.definition
        await self._sleep_until(step.due_at)

        now = workflow.now()
        link_valid = definition.link_valid.to_timedelta() / speedup
        if now >= step.due_at + link_valid:
            # Enrolled too late for this step (an old discharge replayed from HIS): do not send
            # a link that would already be dead.
            await self._change(step, "skipped")
            return

        step.sent_at = now
        step.valid_until = now + link_valid
        step.lost_at = now + definition.lost_after.to_timedelta() / speedup
        if workflow.patched(PATCH_DELIVERY_WORKFLOW):
            if not await self._deliver_invite(step):
                return
        else:
            try:
                await workflow.execute_activity(
                    ACTIVITY_SEND_INVITE,
                    InviteRequest(
                        task_id=step.task_id,
                        workflow_id=workflow.info().workflow_id,
                        step_id=definition.id,
                        occurrence=0,
                        patient_id=self._input.patient_id,
                        encounter_id=self._input.encounter_id,
                        template=definition.message_template,
                        step_title=definition.title,
                        scheduled_for=now,
                        valid_until=step.valid_until,
                    ),
                    result_type=InviteResult,
                    start_to_close_timeout=SEND_TIMEOUT,
                    retry_policy=SEND_RETRY,
                )
            except ActivityError as err:
                cause = err.cause
                reason = cause.message if isinstance(cause, ApplicationError) else str(err)
                await self._change(step, "failed", reason=reason)
                return
            if step.answer is None:
                step.status = "sent"

        if not await self._answer_before(step, step.valid_until):
            await self._change(step, "expired")
            if not await self._answer_before(step, step.lost_at):
                await self._change(step, "lost")
                return
        await self._record_answer(step)

    async def _deliver_invite(self, step: _Step) -> bool:
        """Sends the step's invitation; False (and the task failed) when it could not go out."""
        info = workflow.info()
        definition = step.definition
        speedup = self._input.clock_speedup
        link_valid = definition.link_valid.to_timedelta() / speedup
        key = f"{info.workflow_id}/{definition.id}/0/invite"
        outcome = await workflow.execute_child_workflow(
            DELIVERY_WORKFLOW,
            MessageRequest(
                key=key,
                template=definition.message_template,
                patient_id=self._input.patient_id,
                variables={"step_title": definition.title, "discharged_at": self._input.anchor_at},
                link=LinkSpec(task_id=step.task_id, valid_for=link_valid),
                department_code=self._input.department_code,
                workflow_id=info.workflow_id,
                task_id=step.task_id,
                # A compressed demo clock has no nights: quiet hours would only stall it.
                urgent=speedup > 1,
            ),
            id=delivery_workflow_id(key),
            result_type=DeliveryOutcome,
        )
        if outcome.status != "sent":
            await self._change(step, "failed", reason=outcome.reason)
            return False
        # Quiet hours may have held the message: the windows count from when it went out.
        sent_at = outcome.sent_at or workflow.now()
        step.sent_at = sent_at
        step.valid_until = outcome.link_expires_at or sent_at + link_valid
        step.lost_at = sent_at + definition.lost_after.to_timedelta() / speedup
        if step.answer is None:
            await self._change(step, "sent")
        return True

    async def _record_answer(self, step: _Step) -> None:
        assert step.answer is not None
        form = self._input.snapshot.forms[step.definition.form]
        step.findings = [
            FindingRecord(
                question_id=f.question_id, question=f.question, value=f.value, label=f.label
            )
            for f in abnormal_findings(form, step.answer.answers)
        ]
        step.status = "abnormal" if step.findings else "completed"
        await self._project(
            ACTIVITY_ANSWERS_RECEIVED,
            AnswersReceived(
                task_id=step.task_id,
                workflow_id=workflow.info().workflow_id,
                form_id=form.id,
                answers=step.answer.answers,
                findings=step.findings,
                submitted_at=step.answer.submitted_at,
                recorded_at=workflow.now(),
                step_title=step.definition.title,
            ),
        )

    async def _answer_before(self, step: _Step, deadline: datetime) -> bool:
        remaining = deadline - workflow.now()
        if step.answer is not None:
            return True
        if remaining <= timedelta(0):
            return False
        try:
            await workflow.wait_condition(lambda: step.answer is not None, timeout=remaining)
        except TimeoutError:
            return False
        return True

    async def _change(self, step: _Step, status: StepStatus, reason: str | None = None) -> None:
        step.status = status
        await self._project(
            ACTIVITY_STEP_CHANGED,
            StepChanged(
                task_id=step.task_id,
                status=status,
                at=workflow.now(),
                sent_at=step.sent_at,
                valid_until=step.valid_until,
                lost_at=step.lost_at,
                reason=reason,
            ),
        )

    async def _project(self, activity: str, payload: object) -> None:
        await workflow.execute_activity(
            activity,
            payload,
            start_to_close_timeout=PROJECTION_TIMEOUT,
            retry_policy=PROJECTION_RETRY,
        )

    @staticmethod
    async def _sleep_until(moment: datetime) -> None:
        delay = moment - workflow.now()
        if delay > timedelta(0):
            await workflow.sleep(delay)
