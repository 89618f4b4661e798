"""One physical exam (PX-8), from the patient's request to the follow-up of its abnormal
results.

Asked for on the platform, the personalised list waits for the doctor's review; past the review
deadline it is booked with its required items only and the department's doctors are alerted.
The booking goes to the vendor (US-K2), retried while the vendor is unreachable; a refusal (202)
ends the process with an alert. The vendor's guide, results and report arrive through the API
(US-H2..H4), which saves them and signals here. After the report, abnormal results open the
exam follow-up plan (a pathway run of its own, left running when this ends) and alert the
doctors; no report within the wait after the exam date alerts them too. A booking made at the
vendor directly starts here at its first push.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, time, timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from contracts.exam import (
        ACTIVITY_APPLY_DICTIONARY,
        ACTIVITY_ASSESS,
        ACTIVITY_BOOK,
        ACTIVITY_RECORD,
        EXAM_DICTIONARY_WORKFLOW,
        EXAM_WORKFLOW,
        QUERY_STATE,
        SIGNAL_PUSHED,
        UPDATE_REVIEW,
        Assessment,
        Booked,
        BookExam,
        DictionaryChange,
        ExamInput,
        ExamRecord,
        ExamRef,
        ExamState,
        ExamStatus,
        ListedItem,
        Pushed,
        Review,
    )
    from contracts.pathway import PATHWAY_WORKFLOW
    from pathways.timeline import zone
    from workflows.retries import (
        DATABASE_RETRY,
        DATABASE_TIMEOUT,
        EXAM_DICTIONARY_RETRY,
        EXAM_VENDOR_GIVE_UP,
        EXAM_VENDOR_RETRY,
        EXAM_VENDOR_TIMEOUT,
    )
    from workflows.updates import UpdateRejected, wait_for


@workflow.defn(name=EXAM_WORKFLOW)
class ExamEpisodeWorkflow:
    @workflow.init
    def __init__(self, input: ExamInput) -> None:
        self._input = input
        self._status: ExamStatus = "reviewing" if input.stage == "reviewing" else "booked"
        self._review: Review | None = None
        self._exam_no: str | None = None
        self._reported = False

    @workflow.run
    async def run(self, input: ExamInput) -> ExamState:
        if input.stage == "reviewing" and not await self._book(await self._reviewed()):
            return self.state()
        exam_day = datetime.combine(input.exam_date, time(0), tzinfo=zone(input.timezone))
        wait = exam_day + timedelta(days=input.report_wait_days) - workflow.now()
        if not await wait_for(lambda: self._reported, wait):
            await self._record(
                "closed",
                alert=f"体检（{input.exam_date:%Y-%m-%d}）已超过{input.report_wait_days}天未收到体检报告，请联系体检中心",
                alert_kind="exam_no_report",
            )
            return self.state()
        await self._assess()
        return self.state()

    async def _reviewed(self) -> list[ListedItem]:
        input = self._input
        within = (input.review_by or workflow.now()) - workflow.now()
        reviewed = await wait_for(lambda: self._review is not None, within)
        ticked = set(self._review.ticked) if self._review is not None else set()
        items = [i for i in input.listed if i.required or i.code in ticked]
        await self._record(
            "booking",
            ticked=sorted(ticked),
            booked_items=items,
            reviewed_by=self._review.by if self._review is not None else "system",
            alert=None if reviewed else "医生未在审核时限内确认个性化体检清单，已按必选项目预约",
            alert_kind=None if reviewed else "exam_review_overdue",
        )
        return items

    async def _book(self, items: list[ListedItem]) -> bool:
        try:
            booked = await workflow.execute_activity(
                ACTIVITY_BOOK,
                BookExam(booking_id=self._input.booking_id, items=items),
                result_type=Booked,
                start_to_close_timeout=EXAM_VENDOR_TIMEOUT,
                schedule_to_close_timeout=EXAM_VENDOR_GIVE_UP,
                retry_policy=EXAM_VENDOR_RETRY,
            )
        except ActivityError:
            booked = Booked(code="202", message="体检机构系统持续不可用")
        if booked.code != "0":
            await self._record(
                "failed",
                last_code=booked.code,
                last_message=booked.message,
                alert=f"体检预约失败：{booked.message}",
                alert_kind="exam_booking_failed",
                alert_level="high",
            )
            return False
        self._exam_no = self._exam_no or booked.exam_no
        await self._record(
            "booked",
            last_code=booked.code,
            last_message=booked.message,
            exam_no=booked.exam_no,
            vendor_booking_no=booked.vendor_booking_no,
        )
        return True

    async def _assess(self) -> None:
        assessment = await workflow.execute_activity(
            ACTIVITY_ASSESS,
            ExamRef(booking_id=self._input.booking_id),
            result_type=Assessment,
            start_to_close_timeout=DATABASE_TIMEOUT,
            retry_policy=DATABASE_RETRY,
        )
        if assessment.followup is not None and assessment.followup_workflow_id is not None:
            # Started once: a replay after a lost start finds the run already going.
            with contextlib.suppress(WorkflowAlreadyStartedError):
                await workflow.start_child_workflow(
                    PATHWAY_WORKFLOW,
                    assessment.followup,
                    id=assessment.followup_workflow_id,
                    search_attributes=workflow.info().typed_search_attributes,
                    parent_close_policy=ParentClosePolicy.ABANDON,
                )
        abnormal = "、".join(assessment.abnormal_items)
        await self._record(
            "closed",
            abnormal_items=assessment.abnormal_items,
            followup_workflow_id=assessment.followup_workflow_id,
            alert=(
                f"体检报告提示异常：{abnormal}"
                + ("，已开启体检异常结果随访" if assessment.followup is not None else "")
                if abnormal
                else None
            ),
            alert_kind="exam_abnormal" if abnormal else None,
            alert_level="high",
        )

    async def _record(self, status: ExamStatus, **changes: object) -> None:
        self._status = status
        await workflow.execute_activity(
            ACTIVITY_RECORD,
            ExamRecord(booking_id=self._input.booking_id, status=status, **changes),
            start_to_close_timeout=DATABASE_TIMEOUT,
            retry_policy=DATABASE_RETRY,
        )

    @workflow.signal(name=SIGNAL_PUSHED)
    def pushed(self, push: Pushed) -> None:
        self._exam_no = push.exam_no or self._exam_no
        if push.kind == "report":
            self._reported = True

    @workflow.update(name=UPDATE_REVIEW)
    def review(self, review: Review) -> ExamState:
        self._review = review
        return self.state()

    @review.validator
    def _check_review(self, review: Review) -> None:
        if self._status != "reviewing" or self._review is not None:
            raise UpdateRejected("该体检清单已审核或已过审核时限")
        optional = {i.code for i in self._input.listed if not i.required}
        unknown = sorted(set(review.ticked) - optional)
        if unknown:
            raise UpdateRejected(f"不是可选项目：{'、'.join(unknown)}")

    @workflow.query(name=QUERY_STATE)
    def state(self) -> ExamState:
        return ExamState(
            status=self._status,
            review_by=self._input.review_by,
            ticked=sorted(self._review.ticked) if self._review else [],
            exam_no=self._exam_no,
        )


@workflow.defn(name=EXAM_DICTIONARY_WORKFLOW)
class ExamDictionaryChangeWorkflow:
    """A vendor dictionary change kept after a failed save (701), applied once it can be."""

    @workflow.run
    async def run(self, change: DictionaryChange) -> None:
        await workflow.execute_activity(
            ACTIVITY_APPLY_DICTIONARY,
            change,
            start_to_close_timeout=DATABASE_TIMEOUT,
            retry_policy=EXAM_DICTIONARY_RETRY,
        )
