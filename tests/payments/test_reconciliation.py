"""The daily reconciliation (PAY-8): the provider's trade bill against our ledger, run on demand
through the API and by the Temporal Schedule the worker keeps in place."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any

import pytest
from sqlmodel import select, update
from temporalio.client import (
    ScheduleActionExecutionStartWorkflow,
    ScheduleActionStartWorkflow,
    ScheduleBackfill,
    ScheduleHandle,
)
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from contracts.payment import (
    LEGACY_RECONCILIATION_SCHEDULE_ID,
    out_trade_no,
    reconciliation_schedule_id,
)
from core.db import transaction
from core.models import LedgerEntryRow, Reconciliation, StaffRole
from harness.payments import UNINSURED, PayWorld
from harness.staff import add_staff
from harness.waiting import eventually
from services.reconciliation import ensure_reconciliation_schedule, reconciliation_schedule
from simulators.wechatpay.app import SimTrade
from tests.payments.conftest import WorldFactory

CST = timezone(timedelta(hours=8))


async def settled_self_pay(world: PayWorld, fen: int) -> dict[str, Any]:
    his_no = world.his_order(UNINSURED, self_pay_fen=fen)
    order_id = (await world.create(his_no, patient=UNINSURED)).json()["id"]
    await world.patient_pays(order_id)
    return await world.wait(order_id, status="settled")


async def test_the_bill_is_matched_and_every_kind_of_difference_is_reported(
    dev_env: WorkflowEnvironment, pay_world: WorldFactory
) -> None:
    async with pay_world(dev_env.client) as world, world.workers():
        first = await settled_self_pay(world, 4800)
        second = await settled_self_pay(world, 2600)
        refund = await world.refund(first["id"], 1000)
        await world.wait_refund(refund.json()["id"], "succeeded")
        now = datetime.now(UTC)
        # Every movement on one day, should midnight (Beijing) have passed between them: both
        # sides date a movement by the provider's success time.
        for trade in world.provider.trades.values():
            if trade.success_time is not None:
                trade.success_time = now
        for refund_record in world.provider.refunds.values():
            refund_record.success_time = now
        async with transaction(world.sessions) as session:
            await session.exec(update(LedgerEntryRow).values(at=now))

        # A trade paid at the provider that no saga of ours started (e.g. a cashier's manual
        # order in the merchant console).
        world.provider.trades["MANUAL0001"] = SimTrade(
            out_trade_no="MANUAL0001",
            description="窗口补缴",
            amount_fen=500,
            notify_url="",
            time_expire=now,
            attach="",
            state="SUCCESS",
            transaction_id="4200000000MANUAL",
            success_time=now,
        )
        # The provider's bill disagrees with us about the second payment's amount...
        world.provider.trades[out_trade_no(second["id"])].amount_fen = 2500
        # ...and we recorded a payment the provider has never heard of.
        async with transaction(world.sessions) as session:
            session.add(
                LedgerEntryRow(
                    order_id=second["id"],
                    party="provider",
                    kind="payment",
                    reference="4200000000GHOST",
                    amount_fen=700,
                    at=now,
                )
            )

        admin = await add_staff(world.sessions, StaffRole.ADMIN, None, name="财务科")
        bill_date = now.astimezone(CST).date()
        url = f"/api/payments/reconciliations/{bill_date}"
        refused = await world.http.post(f"{url}/run", headers=world.auth())
        ran = await world.http.post(f"{url}/run", headers=world.auth(admin))
        again = await world.http.post(f"{url}/run", headers=world.auth(admin))
        stored = await world.http.get(url, headers=world.auth(admin))
        listed = await world.http.get("/api/payments/reconciliations", headers=world.auth(admin))

    assert refused.status_code == 403
    assert ran.status_code == 200, ran.text
    report = ran.json()
    assert report["provider_lines"] == 4  # two payments, one refund, the manual trade
    assert report["matched"] == 2  # the first payment and its refund
    assert report["discrepancies"] == 3
    assert report["provider_net_fen"] == 4800 + 2500 + 500 - 1000
    assert report["platform_net_fen"] == 4800 + 2600 + 700 - 1000
    kinds = {f["kind"]: f for f in report["findings"]}
    assert set(kinds) == {"missing_in_platform", "amount_mismatch", "missing_at_provider"}
    assert kinds["missing_in_platform"]["out_trade_no"] == "MANUAL0001"
    assert kinds["missing_in_platform"]["order_id"] is None
    mismatch = kinds["amount_mismatch"]
    assert (mismatch["order_id"], mismatch["provider_fen"], mismatch["platform_fen"]) == (
        second["id"],
        2500,
        2600,
    )
    assert kinds["missing_at_provider"]["reference"] == "4200000000GHOST"
    # A re-run replaces the day's findings rather than adding to them.
    assert again.json()["findings"] == report["findings"]
    assert stored.json()["findings"] == report["findings"]
    assert [r["bill_date"] for r in listed.json()] == [str(bill_date)]


async def test_the_schedule_is_kept_in_place_and_reconciles_yesterday(
    dev_env: WorkflowEnvironment, pay_world: WorldFactory
) -> None:
    async with pay_world(dev_env.client, reconciliation_hour=9) as world, world.workers():
        queue = world.settings.temporal_task_queue
        ids = (reconciliation_schedule_id(queue), LEGACY_RECONCILIATION_SCHEDULE_ID)
        async with _schedules(world, *ids) as (handle, legacy):
            # This deployment's schedule from before schedules were per task queue.
            await world.client.create_schedule(
                LEGACY_RECONCILIATION_SCHEDULE_ID, reconciliation_schedule(world.settings)
            )
            await ensure_reconciliation_schedule(world.client, world.settings)
            # A worker restart with a different hour updates the schedule instead of failing.
            moved = world.settings.model_copy(update={"reconciliation_hour": 7})
            await ensure_reconciliation_schedule(world.client, moved)
            described = await handle.describe()
            run = await _triggered_reconciliation(world, handle)
            with pytest.raises(RPCError) as legacy_gone:
                await legacy.describe()

    spec = described.schedule.spec
    assert [r.start for r in spec.calendars[0].hour] == [7]
    assert spec.time_zone_name == "Asia/Shanghai"
    action = described.schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow)
    assert action.task_queue == queue
    assert run.provider_lines == 0
    assert run.discrepancies == 0
    assert legacy_gone.value.status == RPCStatusCode.NOT_FOUND


async def test_a_run_stuck_where_no_worker_listens_does_not_stop_this_deployments_reconciliation(
    dev_env: WorkflowEnvironment, pay_world: WorldFactory
) -> None:
    async with pay_world(dev_env.client) as world, world.workers():
        # Another deployment in the namespace (or this one before its queue was renamed) whose
        # reconciliation started and has no worker to run it.
        gone = world.settings.model_copy(
            update={"temporal_task_queue": f"{world.settings.temporal_task_queue}.gone"}
        )
        ids = [reconciliation_schedule_id(s.temporal_task_queue) for s in (gone, world.settings)]
        async with _schedules(world, *ids) as (theirs, ours):
            await ensure_reconciliation_schedule(world.client, gone)
            await theirs.trigger()

            async def started() -> bool:
                return bool((await theirs.describe()).info.running_actions)

            await eventually(started, what="the other deployment's run to start")
            await ensure_reconciliation_schedule(world.client, world.settings)
            run = await _triggered_reconciliation(world, ours)

    assert run.provider_lines == 0


async def test_days_the_schedule_missed_are_each_reconciled_as_their_own_day_when_backfilled(
    dev_env: WorkflowEnvironment, pay_world: WorldFactory
) -> None:
    async with pay_world(dev_env.client, reconciliation_hour=10) as world, world.workers():
        schedule_id = reconciliation_schedule_id(world.settings.temporal_task_queue)
        today = datetime.now(CST).date()
        # The schedule's 10:00 three and two days ago, missed (say, the cluster was down): an
        # operator backfills them (`temporal schedule backfill`) and they run now.
        missed = [datetime.combine(today - timedelta(days=d), time(10), CST) for d in (3, 2)]
        async with _schedules(world, schedule_id) as (handle,):
            await ensure_reconciliation_schedule(world.client, world.settings)
            await handle.backfill(
                ScheduleBackfill(
                    start_at=missed[0] - timedelta(minutes=1),
                    end_at=missed[1] + timedelta(minutes=1),
                )
            )

            async def two_days() -> set[date] | None:
                async with world.sessions() as session:
                    runs = (await session.exec(select(Reconciliation))).all()
                found = {run.bill_date for run in runs}
                return found if len(found) >= 2 else None

            days = await eventually(two_days, what="both missed days reconciled")

    # Each the day before its own scheduled time, not the day before today.
    assert days == {today - timedelta(days=4), today - timedelta(days=3)}


@contextlib.asynccontextmanager
async def _schedules(world: PayWorld, *schedule_ids: str) -> AsyncIterator[list[ScheduleHandle]]:
    """Handles on these schedules, deleted at the end with any run still going: both outlive
    the test's worker."""
    handles = [world.client.get_schedule_handle(i) for i in schedule_ids]
    try:
        yield handles
    finally:
        for handle in handles:
            with contextlib.suppress(RPCError):
                for action in (await handle.describe()).info.running_actions:
                    if isinstance(action, ScheduleActionExecutionStartWorkflow):
                        await world.client.get_workflow_handle(action.workflow_id).terminate()
                await handle.delete()


async def _triggered_reconciliation(world: PayWorld, handle: ScheduleHandle) -> Reconciliation:
    """Triggers the schedule and waits for the day it reconciles: yesterday, in the hospital's
    time zone, whichever side of midnight the run started."""
    days = {datetime.now(CST).date() - timedelta(days=1)}
    await handle.trigger()

    async def reconciled() -> Reconciliation | None:
        days.add(datetime.now(CST).date() - timedelta(days=1))
        async with world.sessions() as session:
            for day in days:
                if found := await session.get(Reconciliation, day):
                    return found
        return None

    return await eventually(reconciled, what="yesterday's reconciliation")
