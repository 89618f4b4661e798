"""Daily reconciliation with the payment provider (PAY-8), started by a Temporal Schedule.

The provider publishes each day's trade bill the next morning; one activity downloads it,
compares it with the money movements our sagas recorded and stores the discrepancies (so the
bill itself never travels through workflow history). The bill may not be ready yet, or the
provider may be down: the activity is retried with a long backoff for most of a day.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts.payment import (
        ACTIVITY_RECONCILE,
        RECONCILIATION_WORKFLOW,
        ReconcileInput,
        ReconcileRequest,
        ReconcileSummary,
    )
    from contracts.search import SCHEDULED_START_TIME
    from pathways.timeline import zone
    from workflows.retries import STATEMENT_GIVE_UP, STATEMENT_RETRY, STATEMENT_TIMEOUT


@workflow.defn(name=RECONCILIATION_WORKFLOW)
class ReconciliationWorkflow:
    @workflow.run
    async def run(self, input: ReconcileInput) -> ReconcileSummary:
        bill_date = input.bill_date
        if bill_date is None:
            # The day before the schedule meant it to run: a run caught up after an outage, or
            # started late because no worker was up, or backfilled, reconciles its own day.
            info = workflow.info()
            meant = info.typed_search_attributes.get(SCHEDULED_START_TIME)
            today = (meant or info.workflow_start_time).astimezone(zone(input.timezone)).date()
            bill_date = today - timedelta(days=1)
        summary: ReconcileSummary = await workflow.execute_activity(
            ACTIVITY_RECONCILE,
            ReconcileRequest(bill_date=bill_date, timezone=input.timezone),
            result_type=ReconcileSummary,
            start_to_close_timeout=STATEMENT_TIMEOUT,
            schedule_to_close_timeout=STATEMENT_GIVE_UP,
            retry_policy=STATEMENT_RETRY,
        )
        return summary
