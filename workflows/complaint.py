"""One complaint or praise (SAT-3), from opening to the patient's rating of how it was handled.

The department it is assigned to acknowledges it, then resolves it with an outcome the patient
is told. Two timers watch the department: not acknowledged within the hospital's hours (24 by
default), the case is escalated to the department head; not resolved within its working days
(5 by default, counted in the hospital's calendar with its holidays and make-up days) it is
escalated again, to the quality office once the head has it. A reassignment to another
department restarts the acknowledgement window there, never the patient's resolution clock.
Resolved, the patient gets the outcome with a link to rate it; unrated, the case closes when the
rating window ends. Praise is closed once acknowledged. Every step is projected into the
database and audited by the record activity.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from complaints.calendar import add_working_days, zone
    from complaints.lifecycle import (
        ESCALATION_NAMES,
        ComplaintStatus,
        Escalation,
        StepRefused,
        check_acknowledge,
        check_rating,
        check_reassign,
        check_resolve,
        escalated,
    )
    from contracts.complaint import (
        ACTIVITY_RECORD,
        COMPLAINT_WORKFLOW,
        PATIENT,
        QUERY_STATE,
        SYSTEM,
        UPDATE_ACKNOWLEDGE,
        UPDATE_RATE,
        UPDATE_REASSIGN,
        UPDATE_RESOLVE,
        Acknowledgement,
        ComplaintInput,
        ComplaintState,
        Rating,
        Reassignment,
        RecordComplaint,
        Resolution,
        Step,
    )
    from contracts.messages import (
        DELIVERY_WORKFLOW,
        LinkSpec,
        MessageRequest,
        delivery_workflow_id,
    )
    from workflows.retries import DATABASE_RETRY, DATABASE_TIMEOUT
    from workflows.updates import refused_as_rejected, wait_for


@workflow.defn(name=COMPLAINT_WORKFLOW)
class ComplaintWorkflow:
    @workflow.init
    def __init__(self, input: ComplaintInput) -> None:
        self._input = input
        policy = input.policy
        self._status: ComplaintStatus = "open"
        self._escalation: Escalation = "department"
        self._department = input.department_code
        self._acknowledge_by = input.opened_at + timedelta(hours=policy.acknowledge_hours)
        self._resolve_by: datetime | None = (
            add_working_days(
                input.opened_at,
                policy.resolve_working_days,
                zone(input.timezone),
                holidays=policy.holidays,
                workdays=policy.workdays,
            )
            if input.kind == "complaint"
            else None
        )
        # Each timer escalates once: a reassignment opens a new acknowledgement window.
        self._acknowledge_escalated = False
        self._resolve_escalated = False
        self._acknowledged_at: datetime | None = None
        self._resolved_at: datetime | None = None
        self._closed_at: datetime | None = None
        self._outcome: str | None = None
        self._rating: Rating | None = None
        self._steps: list[Step] = []
        self._seq = 0

    @workflow.run
    async def run(self, input: ComplaintInput) -> ComplaintState:
        await self._step(Step(kind="opened", at=input.opened_at, by=input.opened_by))
        while self._status in ("open", "acknowledged"):
            await self._watch_deadlines()
        if self._status == "resolved":
            rating_window = timedelta(days=input.policy.rating_days)
            if not await wait_for(lambda: self._rating is not None, rating_window):
                await self._close("患者未在期限内评价", SYSTEM)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._state()

    async def _watch_deadlines(self) -> None:
        """Waits for the next step (any update changes the deadlines that apply) or the next
        deadline, and escalates at a deadline."""
        deadlines: list[tuple[datetime, str]] = []
        if self._status == "open" and not self._acknowledge_escalated:
            deadlines.append((self._acknowledge_by, "acknowledge"))
        if self._resolve_by is not None and not self._resolve_escalated:
            deadlines.append((self._resolve_by, "resolve"))
        seq = self._seq
        stepped = lambda: self._seq != seq  # noqa: E731 - read at each wake-up
        if not deadlines:
            await workflow.wait_condition(stepped)
            return
        when, which = min(deadlines)
        if await wait_for(stepped, when - workflow.now()):
            return
        if which == "acknowledge":
            self._acknowledge_escalated = True
            hours = self._input.policy.acknowledge_hours
            await self._escalate(f"{hours}小时内未受理")
        else:
            self._resolve_escalated = True
            days = self._input.policy.resolve_working_days
            await self._escalate(f"{days}个工作日内未处理完毕")

    async def _escalate(self, why: str) -> None:
        self._escalation = escalated(self._escalation)
        await self._step(
            Step(
                kind="escalated",
                at=workflow.now(),
                by=SYSTEM,
                note=f"{why}，已升级至{ESCALATION_NAMES[self._escalation]}",
            )
        )

    async def _close(self, note: str, by: str) -> None:
        self._status = "closed"
        self._closed_at = workflow.now()
        await self._step(Step(kind="closed", at=workflow.now(), by=by, note=note))

    # --- updates and the query -------------------------------------------------------------

    @workflow.update(name=UPDATE_ACKNOWLEDGE)
    async def acknowledge(self, acknowledgement: Acknowledgement) -> ComplaintState:
        self._check_acknowledge(acknowledgement)
        self._status = "acknowledged"
        self._acknowledged_at = workflow.now()
        await self._step(
            Step(
                kind="acknowledged",
                at=workflow.now(),
                by=acknowledgement.by,
                note=acknowledgement.note,
            )
        )
        if self._input.kind == "praise":
            await self._close("表扬已转达", acknowledgement.by)
        return self._state()

    @acknowledge.validator
    def _check_acknowledge(self, acknowledgement: Acknowledgement) -> None:  # noqa: ARG002
        with refused_as_rejected(StepRefused):
            check_acknowledge(self._status)

    @workflow.update(name=UPDATE_RESOLVE)
    async def resolve(self, resolution: Resolution) -> ComplaintState:
        self._check_resolve(resolution)
        self._status = "resolved"
        self._resolved_at = workflow.now()
        self._outcome = resolution.outcome
        await self._step(
            Step(kind="resolved", at=workflow.now(), by=resolution.by, note=resolution.outcome)
        )
        await self._notify_outcome()
        return self._state()

    @resolve.validator
    def _check_resolve(self, resolution: Resolution) -> None:  # noqa: ARG002
        with refused_as_rejected(StepRefused):
            check_resolve(self._status, self._input.kind)

    @workflow.update(name=UPDATE_REASSIGN)
    async def reassign(self, reassignment: Reassignment) -> ComplaintState:
        self._check_reassign(reassignment)
        before = self._department
        self._department = reassignment.department_code
        self._status = "open"
        self._acknowledged_at = None
        self._acknowledge_by = workflow.now() + timedelta(
            hours=self._input.policy.acknowledge_hours
        )
        self._acknowledge_escalated = False
        await self._step(
            Step(
                kind="reassigned",
                at=workflow.now(),
                by=reassignment.by,
                note=f"由{before}转至{reassignment.department_code}：{reassignment.reason}",
            )
        )
        return self._state()

    @reassign.validator
    def _check_reassign(self, reassignment: Reassignment) -> None:
        with refused_as_rejected(StepRefused):
            check_reassign(self._status, self._department, reassignment.department_code)

    @workflow.update(name=UPDATE_RATE)
    async def rate(self, rating: Rating) -> ComplaintState:
        self._check_rating(rating)
        self._rating = rating
        await self._step(
            Step(kind="rated", at=workflow.now(), by=PATIENT, note=f"{rating.stars}星")
        )
        await self._close(f"患者评价{rating.stars}星", PATIENT)
        return self._state()

    @rate.validator
    def _check_rating(self, rating: Rating) -> None:  # noqa: ARG002
        with refused_as_rejected(StepRefused):
            check_rating(self._status, self._rating is not None)

    @workflow.query(name=QUERY_STATE)
    def state(self) -> ComplaintState:
        return self._state()

    # --- helpers ---------------------------------------------------------------------------

    def _state(self) -> ComplaintState:
        return ComplaintState(
            status=self._status,
            escalation=self._escalation,
            department_code=self._department,
            acknowledge_by=self._acknowledge_by,
            resolve_by=self._resolve_by,
            acknowledged_at=self._acknowledged_at,
            resolved_at=self._resolved_at,
            closed_at=self._closed_at,
            outcome=self._outcome,
            rating=self._rating,
            steps=list(self._steps),
        )

    async def _step(self, step: Step) -> None:
        self._steps.append(step)
        self._seq += 1
        await workflow.execute_activity(
            ACTIVITY_RECORD,
            RecordComplaint(input=self._input, state=self._state(), seq=self._seq, step=step),
            start_to_close_timeout=DATABASE_TIMEOUT,
            retry_policy=DATABASE_RETRY,
        )

    async def _notify_outcome(self) -> None:
        info = workflow.info()
        key = f"{info.workflow_id}/outcome"
        with contextlib.suppress(WorkflowAlreadyStartedError):
            await workflow.start_child_workflow(
                DELIVERY_WORKFLOW,
                MessageRequest(
                    key=key,
                    template="complaint_outcome",
                    patient_id=self._input.patient_id,
                    variables={
                        "case_no": self._input.case_no,
                        "status_text": f"已处理：{self._outcome}",
                    },
                    link=LinkSpec(
                        task_id=self._input.complaint_id,
                        valid_for=timedelta(days=self._input.policy.rating_days),
                        path="c",
                    ),
                    hospital_code=self._input.hospital_code,
                    department_code=self._department,
                    workflow_id=info.workflow_id,
                ),
                id=delivery_workflow_id(key),
                search_attributes=workflow.info().typed_search_attributes,
                parent_close_policy=ParentClosePolicy.ABANDON,
            )
