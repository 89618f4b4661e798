"""The patient's exam page (PX-8): the invitation's link opens it; the patient accepts the
data-use authorisation (recorded with its version), their exam account is bound, and they ask
for an exam on a date they pick, refused with the tender's 201 message outside the next two
weeks. A tampered or expired link gets the clear page. In Chromium at phone size too."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect
from sqlmodel import select

from core.models import AuditEntry, ExamAccount, ExamBooking, OutboundMessage
from harness.browser import chromium, phone
from tests.api.conftest import link_signer
from tests.exams.conftest import ExamStack, window_refusals


async def _invited_link(stack: ExamStack, patient_id: str) -> str:
    invited = await stack.api.http.post(
        "/api/exams/invitations", json={"patient_id": patient_id}, headers=stack.auth()
    )
    assert invited.status_code == 202, invited.text
    async with stack.api.sessions() as session:
        message = (
            await session.exec(
                select(OutboundMessage).where(OutboundMessage.template == "exam_invite")
            )
        ).one()
    found = re.search(r"/x/([A-Za-z0-9_-]+)", message.body)
    assert found is not None, message.body
    return f"/x/{found.group(1)}"


async def test_the_patient_consents_binds_and_asks_for_an_exam(exam_stack: ExamStack) -> None:
    stack = exam_stack
    zhang = await stack.patient()
    link = await _invited_link(stack, zhang.id)
    http = stack.api.http

    page = await http.get(link)
    assert page.status_code == 200
    assert "数据使用授权协议" in page.text
    assert "PX-2026-1" in page.text
    refused = await http.post(f"{link}/bind", data={"consent_version": "PX-2026-1"})
    assert refused.status_code == 422
    assert "请先阅读并勾选同意" in refused.text
    outdated = await http.post(f"{link}/bind", data={"agree": "yes", "consent_version": "old"})
    assert outdated.status_code == 409
    assert "授权协议已更新" in outdated.text

    bound = await http.post(f"{link}/bind", data={"agree": "yes", "consent_version": "PX-2026-1"})
    assert bound.status_code == 201
    assert "绑定成功" in bound.text
    assert "TJ000101" in bound.text
    async with stack.api.sessions() as session:
        account = await session.get(ExamAccount, zhang.id)
        audited = (
            await session.exec(select(AuditEntry).where(AuditEntry.action == "exam.account_bound"))
        ).one()
    assert account is not None
    assert (account.consent_version, account.consented_by) == ("PX-2026-1", zhang.id)
    assert (audited.actor_type, audited.actor_id) == ("patient", zhang.id)

    today = datetime.now(UTC).astimezone(stack.api.settings.tz).date()
    late = await http.post(
        f"{link}/book", data={"exam_date": (today + timedelta(days=20)).isoformat()}
    )
    assert late.status_code == 422
    assert any(refusal in late.text for refusal in window_refusals(today))
    assert (await http.post(f"{link}/book", data={"exam_date": "明天"})).status_code == 422
    day = today + timedelta(days=4)
    asked = await http.post(f"{link}/book", data={"exam_date": day.isoformat()})
    assert asked.status_code == 201
    assert f"已提交{day.month}月{day.day}日的体检预约" in asked.text
    assert "医生审核体检项目中" in asked.text
    assert "提交预约" not in asked.text  # one exam at a time
    again = await http.post(f"{link}/book", data={"exam_date": day.isoformat()})
    assert again.status_code == 409
    assert "无需重复提交" in again.text
    async with stack.api.sessions() as session:
        booking = (await session.exec(select(ExamBooking))).one()
    assert (booking.exam_date, booking.requested_by, booking.department_code) == (
        day,
        zhang.id,
        "health_management",
    )

    token = link.removeprefix("/x/")
    tampered = await http.get(f"/x/{token[:-2]}{'AA' if token[-2:] != 'AA' else 'BB'}")
    assert tampered.status_code == 404
    assert "链接无效" in tampered.text
    expired = link_signer(stack.api).issue(zhang.id, datetime.now(UTC) - timedelta(minutes=1))
    gone = await http.get(f"/x/{expired}")
    assert gone.status_code == 410
    assert "链接已过期" in gone.text


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched


@pytest.mark.e2e
async def test_the_exam_page_on_a_phone(
    exam_stack: ExamStack, browser: Browser, tmp_path: Path
) -> None:
    stack = exam_stack
    li = await stack.patient(name="李秀英", sex="F", id_number="110101196207180022")
    link = await _invited_link(stack, li.id)
    handset = await phone(browser)
    page = await handset.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(f"{stack.base_url}{link}")
    await page.screenshot(path=str(tmp_path / "exam-consent.png"), full_page=True)
    await page.get_by_role("button", name="同意并绑定").click()
    # The browser itself refuses the form until the box is ticked.
    await expect(page.locator("#consent")).to_be_visible()
    await page.get_by_label("我已阅读并同意以上授权").check()
    await page.get_by_role("button", name="同意并绑定").click()
    await expect(page.locator("#notice")).to_contain_text("绑定成功")
    await expect(page.locator("#account")).to_contain_text("TJ000102")
    day = datetime.now(UTC).astimezone(stack.api.settings.tz).date() + timedelta(days=2)
    await page.locator("#exam_date").fill(day.isoformat())
    await page.get_by_role("button", name="提交预约").click()
    await expect(page.locator("#notice")).to_contain_text("已提交")
    await expect(page.locator("#bookings")).to_contain_text("医生审核体检项目中")
    await page.screenshot(path=str(tmp_path / "exam-booked.png"), full_page=True)
    await handset.close()
    assert errors == []
