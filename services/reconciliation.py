"""The daily reconciliation's schedule and its findings (PAY-8)."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleUpdate,
)
from temporalio.service import RPCError, RPCStatusCode

from contracts.payment import (
    LEGACY_RECONCILIATION_SCHEDULE_ID,
    RECONCILIATION_WORKFLOW,
    ReconcileInput,
    ReconcileSummary,
    reconciliation_schedule_id,
)
from core.models import Discrepancy, Reconciliation
from core.settings import Settings


def reconciliation_schedule(settings: Settings) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            RECONCILIATION_WORKFLOW,
            ReconcileInput(timezone=settings.timezone),
            id=f"payments-reconciliation:{settings.temporal_task_queue}",
            task_queue=settings.temporal_task_queue,
        ),
        spec=ScheduleSpec(
            calendars=[
                ScheduleCalendarSpec(
                    hour=[ScheduleRange(settings.reconciliation_hour)],
                    minute=[ScheduleRange(0)],
                    second=[ScheduleRange(0)],
                )
            ],
            time_zone_name=settings.timezone,
        ),
        # A run missed while the cluster was down still happens when it is back (within a day).
        # Each run reconciles its own day, so one that comes while another is still at it (the
        # workers were down, the provider's bill was late) waits for it rather than being dropped.
        policy=SchedulePolicy(
            overlap=ScheduleOverlapPolicy.BUFFER_ALL, catchup_window=timedelta(days=1)
        ),
    )


async def ensure_reconciliation_schedule(client: Client, settings: Settings) -> None:
    """Creates the daily schedule, or brings an existing one in line with the settings."""
    schedule = reconciliation_schedule(settings)
    schedule_id = reconciliation_schedule_id(settings.temporal_task_queue)
    try:
        await client.create_schedule(schedule_id, schedule)
    except ScheduleAlreadyRunningError:
        handle = client.get_schedule_handle(schedule_id)
        await handle.update(lambda _: ScheduleUpdate(schedule=schedule))
    else:
        # The first start since schedules became per task queue.
        await _retire_legacy_schedule(client, settings)


async def _retire_legacy_schedule(client: Client, settings: Settings) -> None:
    """Deletes this deployment's schedule from before schedules were per task queue, which would
    otherwise reconcile every day a second time."""
    legacy = client.get_schedule_handle(LEGACY_RECONCILIATION_SCHEDULE_ID)
    try:
        action = (await legacy.describe()).schedule.action
        if (
            isinstance(action, ScheduleActionStartWorkflow)
            and action.task_queue == settings.temporal_task_queue
        ):
            await legacy.delete()
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise


async def run_for_day(client: Client, settings: Settings, bill_date: date) -> ReconcileSummary:
    """Reconciles one day now (a re-run after fixing something, or a missed day)."""
    result: ReconcileSummary = await client.execute_workflow(
        RECONCILIATION_WORKFLOW,
        ReconcileInput(bill_date=bill_date, timezone=settings.timezone),
        id=f"payments-reconciliation:{bill_date}:{uuid.uuid4().hex[:8]}",
        task_queue=settings.temporal_task_queue,
        result_type=ReconcileSummary,
    )
    return result


async def runs(session: AsyncSession, limit: int) -> list[Reconciliation]:
    found = await session.exec(
        select(Reconciliation).order_by(col(Reconciliation.bill_date).desc()).limit(limit)
    )
    return list(found.all())


async def findings(
    session: AsyncSession, bill_date: date
) -> tuple[Reconciliation | None, list[Discrepancy]]:
    run = await session.get(Reconciliation, bill_date)
    found = await session.exec(
        select(Discrepancy)
        .where(Discrepancy.bill_date == bill_date)
        .order_by(col(Discrepancy.kind), col(Discrepancy.reference))
    )
    return run, list(found.all())
