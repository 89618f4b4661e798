"""Home-nursing orders under time skipping, on the hospital's own windows (30 minutes to take an
order, 15 minutes' grace past a visit's expected length, a day to sign, a week to rate): a visit
taken, handed on, overrunning into the head nurse's SMS, served, signed, recorded and rated; an
order nobody takes, escalated and, at the time of the visit, cancelled and refunded in full."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from temporalio.testing import WorkflowEnvironment

from contracts.nursing import NursingState
from core.hospitals import NursingPolicy
from harness.time_skipping import (
    message_deliveries,
    releasing_leaked_locks,
    result_skipping_time,
)
from harness.waiting import eventually
from tests.nursing.conftest import HEAD_PHONE, RECORD, NursingWorld, WorldFactory

HOSPITAL_WINDOWS = NursingPolicy()


async def _step(
    world: NursingWorld, order_id: str, path: str, who: dict[str, str], **body: Any
) -> Any:
    response = await world.http.post(
        f"/api/nursing/orders/{order_id}/{path}", json=body, headers=who
    )
    assert response.status_code == 200, (path, response.text)
    return response.json()


def _at(state: NursingState, kind: str) -> datetime:
    [step] = [s for s in state.steps if s.kind == kind]
    return step.at


async def test_a_visit_taken_handed_on_overrunning_signed_recorded_and_rated_days_later(
    isolated_time_env: WorkflowEnvironment, nursing_world: WorldFactory
) -> None:
    env = isolated_time_env
    async with (
        nursing_world(env.client, policy=HOSPITAL_WINDOWS) as world,
        world.pay.workers(),
        releasing_leaked_locks(env.client, message_deliveries(world.pay.sessions)),
    ):
        await world.nurse("护士长", qualifications=[], head_nurse=True, phone=HEAD_PHONE)
        wang = await world.nurse("王护士", qualifications=["picc"])
        li = await world.nurse("李护士", qualifications=["picc"])
        order = await world.place()
        oid = order["id"]
        await world.paid(oid)
        handle = env.client.get_workflow_handle(order["workflow_id"], result_type=NursingState)

        await env.sleep(timedelta(minutes=20))  # still inside the 30-minute window
        await _step(world, oid, "take", wang.auth)
        await env.sleep(timedelta(minutes=30))  # past the window: taken orders stay taken
        await _step(world, oid, "transfer", wang.auth, to_nurse_id=li.id, reason="临时手术")
        for step in ("depart", "arrive", "start"):
            await _step(world, oid, f"visit/{step}", li.auth)
        # PICC care is expected to take 60 minutes; 15 minutes' grace, then the head nurse.
        await env.sleep(timedelta(minutes=70))
        assert world.texts_to(HEAD_PHONE) == []
        await env.sleep(timedelta(minutes=10))

        async def overrun() -> list[str] | None:
            return world.texts_to(HEAD_PHONE) or None

        [texted] = await eventually(overrun, within=60, what="the overrun SMS")
        await _step(world, oid, "visit/finish", li.auth)
        await env.sleep(timedelta(hours=3))  # the patient signs that evening, within the day
        await _step(world, oid, "signature", world.app, signed_name="张建国")
        await _step(world, oid, "assessment", li.auth, answers=RECORD)
        await env.sleep(timedelta(days=2))
        await _step(world, oid, "rating", world.app, stars=4, comment="准时，操作规范")
        state = await handle.result()
        row = await world.row(oid)

    assert "上门服务超时" in texted
    assert "【预警】" in texted
    assert [s.kind for s in state.steps] == [
        "identity_verified",
        "paid",
        "taken",
        "transferred",
        "depart",
        "arrive",
        "start",
        "alarm_warning",
        "finish",
        "signed",
        "assessed",
        "rated",
        "completed",
    ]
    assert (state.status, state.nurse_id, state.rating) == ("completed", li.id, 4)
    assert not state.escalated
    overran = _at(state, "alarm_warning") - _at(state, "start")
    assert timedelta(minutes=75) <= overran < timedelta(minutes=76)
    assert _at(state, "rated") - _at(state, "assessed") >= timedelta(days=2)
    assert (row.status, row.rating, row.rating_comment) == ("completed", 4, "准时，操作规范")


async def test_an_order_nobody_takes_is_escalated_then_cancelled_and_refunded_at_the_visit_time(
    isolated_time_env: WorkflowEnvironment, nursing_world: WorldFactory
) -> None:
    env = isolated_time_env
    async with (
        nursing_world(env.client, policy=HOSPITAL_WINDOWS) as world,
        world.pay.workers(),
        releasing_leaked_locks(env.client, message_deliveries(world.pay.sessions)),
    ):
        await world.nurse("护士长", qualifications=[], head_nurse=True, phone=HEAD_PHONE)
        await world.nurse("赵护士", qualifications=[])  # on duty, but not qualified for PICC
        order = await world.place()  # the visit three hours from now
        oid = order["id"]
        await world.paid(oid)
        handle = env.client.get_workflow_handle(order["workflow_id"], result_type=NursingState)
        # Nobody takes it, nobody can be sent, the head nurse assigns nobody: the order runs out.
        state = await result_skipping_time(env.client, handle)
        row = await world.row(oid)
        payment = await world.pay.order(row.payment_order_id or "")
        texts = world.texts_to(HEAD_PHONE)

    assert [s.kind for s in state.steps] == [
        "identity_verified",
        "paid",
        "escalated",
        "alarm_warning",
        "cancelled",
    ]
    assert _at(state, "escalated") - _at(state, "paid") >= timedelta(minutes=30)
    assert _at(state, "cancelled") >= datetime.fromisoformat(order["visit_at"])
    assert (state.status, state.escalated, state.refunded_fen) == ("cancelled", True, 20000)
    assert (row.status, row.refunded_fen) == ("cancelled", 20000)
    assert payment["refunded_fen"] == 20000
    assert world.pay.insurance.ledger()["net_fen"] == 0
    [alarm] = texts
    assert "无人接单且无可派护士，请护士长派单" in alarm
