"""The patient's home-nursing page: the invitation's link opens it; the patient orders a visit
(the consent accepted, a time and an address), pays, follows it, signs at the end, rates it and
complains about it (a complaint case for the order's department); in Chromium at phone size."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from PIL import Image
from playwright.async_api import expect
from sqlmodel import select
from temporalio.testing import WorkflowEnvironment

from core.models import AuditEntry, Complaint, NursingOrder, OutboundMessage
from harness.browser import chromium, draw_signature, phone
from harness.payments import INSURED
from harness.waiting import eventually
from tests.nursing.conftest import RECORD, NursingWorld, WorldFactory


async def _link(world: NursingWorld, nurse: dict[str, str]) -> str:
    invited = await world.http.post(
        "/api/nursing/orders/invitations", json={"patient_id": INSURED}, headers=nurse
    )
    assert invited.status_code == 202, invited.text
    async with world.pay.sessions() as session:
        message = (
            await session.exec(
                select(OutboundMessage).where(OutboundMessage.template == "nursing_invite")
            )
        ).one()
    found = re.search(r"/n/([A-Za-z0-9_-]+)", message.body)
    assert found is not None, message.body
    return f"/n/{found.group(1)}"


async def _only_order(world: NursingWorld) -> NursingOrder:
    async with world.pay.sessions() as session:
        return (await session.exec(select(NursingOrder))).one()


async def test_the_patient_orders_follows_signs_rates_and_complains_on_the_page(
    dev_env: WorkflowEnvironment, nursing_world: WorldFactory, tmp_path: Path
) -> None:
    async with nursing_world(dev_env.client) as world, world.pay.workers():
        wang = await world.nurse("王护士", qualifications=["picc"])
        link = await _link(world, wang.auth)
        http = world.http
        page = await http.get(link)
        assert page.status_code == 200
        assert "PICC导管维护" in page.text
        assert "¥200.00" in page.text
        visit = (datetime.now(UTC) + timedelta(hours=4)).astimezone(world.pay.settings.tz)
        form = {
            "item_code": "picc",
            "visit_at": visit.strftime("%Y-%m-%dT%H:%M"),
            "address": "静安区南京西路1号3室",
            "idempotency_key": "page-order-0001",
        }
        refused = await http.post(f"{link}/order", data=form)
        assert refused.status_code == 422
        assert "知情同意书" in refused.text
        too_soon = await http.post(
            f"{link}/order",
            data={
                **form,
                "consent": "yes",
                "visit_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M"),
            },
        )
        assert too_soon.status_code == 422
        assert "1小时后、14天内" in too_soon.text
        placed = await http.post(f"{link}/order", data={**form, "consent": "yes"})
        assert placed.status_code == 201
        assert "正在核对您的实名信息" in placed.text
        twice = await http.post(f"{link}/order", data={**form, "consent": "yes"})
        assert twice.status_code == 201
        order = await _only_order(world)  # the same key: one order

        async def billed() -> NursingOrder | None:
            row = await world.row(order.id)
            return row if row.payment_order_id else None

        await eventually(billed, within=60, what="the visit billed")
        paying = await http.get(link)
        assert "去支付" in paying.text
        await world.paid(order.id)

        oid = order.id
        assert (
            await http.post(f"/api/nursing/orders/{oid}/take", headers=wang.auth)
        ).status_code == 200
        for step in ("depart", "arrive", "start", "finish"):
            done = await http.post(f"/api/nursing/orders/{oid}/visit/{step}", headers=wang.auth)
            assert done.status_code == 200, done.text
        await world.status(oid, "served")
        nothing = await http.post(f"{link}/orders/{oid}/sign", files={"x": ("x", b"")})
        assert nothing.status_code == 422
        assert "请先在签名区域签名" in nothing.text
        not_png = await http.post(
            f"{link}/orders/{oid}/sign",
            files={"signature": ("signature.png", b"GIF89a not a signature", "image/png")},
        )
        assert not_png.status_code == 422
        assert "该文件不是签名图片" in not_png.text
        assert (await world.row(oid)).patient_signature is None

        async with chromium() as browser:
            handset = await phone(browser)
            screen = await handset.new_page()
            await screen.goto(f"{world.pay.api_url}{link}")
            await expect(screen.locator("#orders")).to_contain_text("服务已完成，请在下方签名确认")
            sign = screen.get_by_role("button", name="确认并签名")
            await sign.click()  # nothing drawn yet
            await expect(screen.locator(".sign-error")).to_have_text("请先在签名区域签名")
            await draw_signature(screen)
            await screen.screenshot(path=str(tmp_path / "nursing-sign.png"), full_page=True)
            await sign.click()
            await expect(screen.locator("#notice")).to_contain_text("已签名确认")
            await expect(screen.locator("#orders")).not_to_contain_text("请在下方签名确认")
            signed_row = await world.status(oid, "signed")
            recorded = await http.post(
                f"/api/nursing/orders/{oid}/assessment", json={"answers": RECORD}, headers=wang.auth
            )
            assert recorded.status_code == 200, recorded.text
            await world.status(oid, "assessed")
            await screen.goto(f"{world.pay.api_url}{link}")
            await expect(screen.locator("#orders")).to_contain_text("待评价")
            await screen.screenshot(path=str(tmp_path / "nursing-rate.png"), full_page=True)
            await screen.locator("label[for$='-4']").first.click()
            await screen.get_by_role("button", name="提交评价").click()
            await expect(screen.locator("#notice")).to_contain_text("感谢您的评价")
            await expect(screen.locator("#orders")).to_contain_text("您的评价：4颗星")
            await screen.screenshot(path=str(tmp_path / "nursing-rated.png"), full_page=True)
            await handset.close()
        detail = (await http.get(f"/api/nursing/orders/{oid}", headers=wang.auth)).json()
        drawn = await http.get(detail["signature_url"])
        completed = await world.status(oid, "completed")

        complained = await http.post(
            f"{link}/orders/{oid}/complain",
            data={"category": "attitude", "summary": "护士态度生硬"},
        )
        assert "已收到您的投诉" in complained.text
        async with world.pay.sessions() as session:
            case = (await session.exec(select(Complaint))).one()
            ordered = (
                await session.exec(select(AuditEntry).where(AuditEntry.action == "nursing.ordered"))
            ).one()
    assert completed.rating == 4
    assert (signed_row.patient_signature or "").startswith("upl_")
    assert detail["signed"] is True
    assert drawn.headers["content-type"] == "image/png"
    darkest, _ = Image.open(io.BytesIO(drawn.content)).convert("L").getextrema()
    assert isinstance(darkest, int)
    assert darkest < 64  # ink on the white ground: what the patient drew
    assert (ordered.actor_type, ordered.detail["consent_version"]) == ("patient", "NUR-2026-1")
    assert (case.source, case.category, case.opened_by) == ("patient", "attitude", "patient")
    assert case.summary == "上门护理订单：护士态度生硬"
