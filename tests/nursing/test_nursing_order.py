"""Home-nursing orders (NUR-1..3) on the dev server with the hospital's windows shortened to
seconds, every outside party a simulator on loopback: the real-name check, the visit billed at
the HIS and paid through the payment saga, a nurse taking it and handing it on, the visit, the
patient's signature, the nursing record, the rating; an order nobody can take, escalated to
the head nurse by SMS and cancelled with a full refund; a visit that overruns, and a nurse's
one-press alarm, texted to the head nurse at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import select
from temporalio.testing import WorkflowEnvironment

from core.db import transaction
from core.models import AuditEntry, NursingItem, OutboundMessage, StaffRole
from harness.payments import INSURED
from harness.staff import add_staff
from harness.waiting import eventually
from tests.nursing.conftest import HEAD_PHONE, RECORD, NursingWorld, WorldFactory


async def _step(
    world: NursingWorld, order_id: str, path: str, who: dict[str, str], **body: Any
) -> Any:
    return await world.http.post(f"/api/nursing/orders/{order_id}/{path}", json=body, headers=who)


async def test_an_order_taken_handed_on_served_signed_recorded_and_rated(
    dev_env: WorkflowEnvironment, nursing_world: WorldFactory, record_history: Any
) -> None:
    async with nursing_world(dev_env.client) as world, world.pay.workers():
        wang = await world.nurse("王护士", qualifications=["picc"])
        li = await world.nurse("李护士", qualifications=["picc"])
        zhao = await world.nurse("赵护士", qualifications=[])
        order = await world.place()
        assert order["price_fen"] == 20000
        await world.paid(order["id"])
        oid = order["id"]

        unqualified = await _step(world, oid, "take", zhao.auth)
        assert unqualified.status_code == 409
        assert "资质" in unqualified.json()["detail"]
        taken = await _step(world, oid, "take", wang.auth)
        assert taken.status_code == 200, taken.text
        again = await _step(world, oid, "take", li.auth)
        assert again.status_code == 409
        assert again.json()["detail"] == "该订单已被接单"
        handed = await _step(
            world, oid, "transfer", wang.auth, to_nurse_id=li.id, reason="临时手术"
        )
        assert handed.status_code == 200, handed.text
        assert handed.json()["nurse_id"] == li.id

        out_of_order = await _step(world, oid, "visit/arrive", li.auth)
        assert out_of_order.status_code == 409
        not_theirs = await _step(world, oid, "visit/depart", wang.auth)
        assert not_theirs.json()["detail"] == "只有接单护士可以记录服务过程"
        for step in ("depart", "arrive", "start", "finish"):
            done = await _step(world, oid, f"visit/{step}", li.auth)
            assert done.status_code == 200, (step, done.text)
        late_transfer = await _step(
            world, oid, "transfer", li.auth, to_nurse_id=wang.id, reason="换人"
        )
        assert late_transfer.status_code == 409

        early_record = await _step(world, oid, "assessment", li.auth, answers=RECORD)
        assert early_record.status_code == 409  # the patient signs first
        signed = await _step(world, oid, "signature", world.app, signed_name="张建国")
        assert signed.status_code == 200, signed.text
        incomplete = await _step(
            world, oid, "assessment", li.auth, answers={"temperature": ["36.8"]}
        )
        assert incomplete.status_code == 422
        assert incomplete.json()["detail"][0]["loc"][:2] == ["body", "answers"]
        recorded = await _step(world, oid, "assessment", li.auth, answers=RECORD)
        assert recorded.status_code == 200, recorded.text
        rated = await _step(world, oid, "rating", world.app, stars=5, comment="很专业")
        assert rated.status_code == 200, rated.text
        row = await world.status(oid, "completed")
        await record_history(
            dev_env.client.get_workflow_handle(order["workflow_id"]), "nursing_v1_completed"
        )
        cancel_late = await _step(world, oid, "cancel", world.app, reason="不需要了")
        assert cancel_late.status_code == 409

        stats = await world.http.get(
            "/api/nursing/orders/stats",
            params={"from": "2026-01-01T00:00:00Z", "to": "2099-01-01T00:00:00Z"},
            headers=world.admin,
        )
    kinds = [s["kind"] for s in row.steps]
    assert kinds == [
        "identity_verified",
        "paid",
        "taken",
        "transferred",
        "depart",
        "arrive",
        "start",
        "finish",
        "signed",
        "assessed",
        "rated",
        "completed",
    ]
    assert (row.nurse_id, row.rating, row.rating_comment) == (li.id, 5, "很专业")
    assert row.assessment is not None
    assert row.assessment["performed"] == ["picc"]
    async with world.pay.sessions() as session:
        told = (
            await session.exec(
                select(OutboundMessage).where(OutboundMessage.template == "nursing_status")
            )
        ).all()
        audited = (await session.exec(select(AuditEntry).where(AuditEntry.target_id == oid))).all()
    assert {"护士已接单", "护士已出发，请保持电话畅通", "服务已完成，请确认并签名"} <= {
        m.variables.get("status_text") for m in told
    }
    assert "nursing.transferred" in {e.action for e in audited}
    figures = stats.json()
    assert (figures["by_status"], figures["paid_fen"], figures["mean_rating"]) == (
        {"completed": 1},
        20000,
        5,
    )


async def test_an_order_nobody_can_take_is_escalated_and_cancelled_with_a_full_refund(
    dev_env: WorkflowEnvironment, nursing_world: WorldFactory
) -> None:
    async with nursing_world(dev_env.client) as world, world.pay.workers():
        head = await world.nurse("护士长", qualifications=[], head_nurse=True, phone=HEAD_PHONE)
        order = await world.place()
        await world.paid(order["id"])
        # Nobody takes it within the window, and nobody on duty is qualified to be sent.
        row = await eventually(
            lambda: _escalated(world, order["id"]), within=60, what="the escalation"
        )
        texted = await eventually(
            lambda: _texts(world, HEAD_PHONE), within=60, what="the head nurse's SMS"
        )
        cancelled = await _step(world, order["id"], "cancel", head.auth, reason="无合适护士，致歉")
        assert cancelled.status_code == 200, cancelled.text
        done = await world.status(order["id"], "cancelled")
        payment = await world.pay.order(done.payment_order_id or "")
    assert row.escalated
    assert "无人接单且无可派护士，请护士长派单" in texted[0]
    assert texted[0].startswith("【静安区中心医院】护士长您好，【预警】")
    assert done.refunded_fen == 20000
    assert payment["refunded_fen"] == 20000


async def _escalated(world: NursingWorld, order_id: str) -> Any:
    row = await world.row(order_id)
    return row if row.escalated else None


async def _texts(world: NursingWorld, phone: str) -> list[str] | None:
    return world.texts_to(phone) or None


async def test_an_overrun_visit_and_a_nurses_alarm_text_the_head_nurse(
    dev_env: WorkflowEnvironment, nursing_world: WorldFactory
) -> None:
    async with nursing_world(dev_env.client) as world, world.pay.workers():
        # A visit expected to take no time at all: past the two-second grace, it overruns.
        async with transaction(world.pay.sessions) as session:
            item = await session.get(NursingItem, "picc")
            assert item is not None
            item.expected_minutes = 0
        await world.nurse("护士长", qualifications=[], head_nurse=True, phone=HEAD_PHONE)
        wang = await world.nurse("王护士", qualifications=["picc"])
        order = await world.place()
        await world.paid(order["id"])
        oid = order["id"]
        assert (await _step(world, oid, "take", wang.auth)).status_code == 200
        early_alarm = await _step(world, oid, "alarm", wang.auth)
        assert early_alarm.status_code == 409  # not on a visit yet
        for step in ("depart", "arrive", "start"):
            assert (await _step(world, oid, f"visit/{step}", wang.auth)).status_code == 200
        overrun = await eventually(
            lambda: _texts(world, HEAD_PHONE), within=60, what="the overrun SMS"
        )
        pressed = await _step(world, oid, "alarm", wang.auth, note="患者家属情绪激动")
        assert pressed.status_code == 200, pressed.text

        async def both() -> list[str] | None:
            sent = world.texts_to(HEAD_PHONE)
            return sent if len(sent) >= 2 else None

        texts = await eventually(both, within=60, what="the alarm SMS")
    assert "上门服务超时" in overrun[0]
    assert "【预警】" in overrun[0]
    assert any("【重要】护士一键报警" in t and "患者家属情绪激动" in t for t in texts)


async def test_a_nurse_sees_the_order_she_placed_for_a_patient_with_no_encounter(
    dev_env: WorkflowEnvironment, nursing_world: WorldFactory
) -> None:
    async with nursing_world(dev_env.client) as world:
        token = await add_staff(world.pay.sessions, StaffRole.NURSE, "cardiology", "心内科护士")
        nurse = {"Authorization": f"Bearer {token}"}
        placed = await world.http.post(
            "/api/nursing/orders",
            json={
                "patient_id": INSURED,
                "item_code": "picc",
                "visit_at": (datetime.now(UTC) + timedelta(hours=3)).isoformat(),
                "address": "静安区南京西路1号3室",
                "consent_accepted": True,
                "idempotency_key": "nurse-placed-0001",
            },
            headers=nurse,
        )
        assert placed.status_code == 201, placed.text
        world.pay.workflows.append(placed.json()["workflow_id"])
        seen = await world.http.get(f"/api/nursing/orders/{placed.json()['id']}", headers=nurse)
        elsewhere = await add_staff(world.pay.sessions, StaffRole.NURSE, "orthopedics", "骨科护士")
        hidden = await world.http.get(
            f"/api/nursing/orders/{placed.json()['id']}",
            headers={"Authorization": f"Bearer {elsewhere}"},
        )
    assert seen.status_code == 200
    assert hidden.status_code == 404
