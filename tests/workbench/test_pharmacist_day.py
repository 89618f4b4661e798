"""A pharmacist's morning in the workbench (RX-3), in Chromium at 1366×768: the review queue with
each prescription's findings and a live countdown to the system's own conclusion; rejecting
the unsafe one (a reason is required) and approving the clean one before their deadlines; a
stale page whose prescription another pharmacist already decided."""

from __future__ import annotations

import re
from pathlib import Path

from openpyxl import load_workbook
from playwright.async_api import expect
from temporalio.testing import WorkflowEnvironment

from api.workbench.reports import REVIEW_COLUMNS
from core.models import StaffRole
from harness.browser import chromium, desktop, sign_in_to_workbench
from harness.prescriptions import UNSAFE_ITEMS, prescription
from harness.staff import add_person
from tests.prescriptions.conftest import RxStackFactory

PASSWORD = "Pharmacy-Desk-2026!"


async def test_a_pharmacist_reviews_the_queue_before_the_deadlines(
    dev_env: WorkflowEnvironment, rx_stack: RxStackFactory, tmp_path: Path
) -> None:
    async with rx_stack(dev_env) as stack, stack.workers():
        pharmacist_id = await add_person(
            stack.sessions,
            stack.settings,
            username="pharmacist-li",
            password=PASSWORD,
            role=StaffRole.PHARMACIST,
            department_code=None,
            name="李药师",
        )
        unsafe, clean, contested = (
            prescription(items=UNSAFE_ITEMS),
            prescription(),
            prescription(),
        )
        ids = {}
        for body in (unsafe, clean, contested):
            accepted = (await stack.submit(body)).json()
            ids[body["prescription_no"]] = accepted["prescription_id"]
            await stack.wait_callbacks(body["prescription_no"], 1)  # "under review" told

        async with chromium() as browser:
            screen = await (await desktop(browser)).new_page()
            await sign_in_to_workbench(screen, stack.url, "pharmacist-li", PASSWORD)
            await expect(screen).to_have_url(f"{stack.url}/w/review")
            cards = screen.locator("section.rx")
            await expect(cards).to_have_count(3)
            unsafe_card = screen.locator(f"#rx-{ids[unsafe['prescription_no']]}")
            await expect(unsafe_card).to_contain_text("十八反")
            countdown = unsafe_card.locator(".countdown")
            await expect(countdown).to_have_text(re.compile(r"剩余 [01]:\d\d"))
            first = await countdown.inner_text()
            await expect(countdown).not_to_have_text(first)  # it counts down on the page
            await screen.screenshot(path=str(tmp_path / "review.png"), full_page=True)

            stale = await screen.context.new_page()
            await stale.goto(f"{stack.url}/w/review")
            decided = await stack.decide(
                ids[contested["prescription_no"]], round=1, outcome="approve"
            )
            assert decided.status_code == 200, decided.text
            # A garbled round on an already decided prescription: told so, never a 500.
            csrf = await screen.locator('input[name="csrf"]').first.get_attribute("value")
            garbled = await screen.request.post(
                f"{stack.url}/w/review/{ids[contested['prescription_no']]}/decision",
                form={"csrf": csrf or "", "round": "第一轮", "outcome": "approve"},
            )
            assert garbled.status == 409

            await unsafe_card.get_by_role("radio", name="驳回").check()
            await unsafe_card.get_by_role("button", name="提交审核").click()
            unsafe_card = screen.locator(f"#rx-{ids[unsafe['prescription_no']]}")
            await expect(unsafe_card.locator(".field-error")).to_have_text("驳回须填写原因")
            await unsafe_card.get_by_label("原因（驳回必填）").fill("附子与半夏相反，请调整处方")
            await unsafe_card.get_by_role("radio", name="驳回").check()
            await unsafe_card.get_by_role("button", name="提交审核").click()
            await expect(screen.locator("#notice")).to_contain_text("已驳回")
            clean_card = screen.locator(f"#rx-{ids[clean['prescription_no']]}")
            await clean_card.get_by_role("radio", name="通过").check()
            await clean_card.get_by_role("button", name="提交审核").click()
            await expect(screen.locator("#notice")).to_have_text("已审核通过")
            await expect(screen.locator("section.rx")).to_have_count(0)

            contested_card = stale.locator(f"#rx-{ids[contested['prescription_no']]}")
            await contested_card.get_by_role("radio", name="通过").check()
            await contested_card.get_by_role("button", name="提交审核").click()
            await expect(stale.locator("#notice")).to_contain_text("未保存")

            # The day's outcomes by department, exported from the reports page.
            await screen.get_by_role("link", name="统计报表").click()
            await expect(screen.locator("#reviews tbody tr")).to_have_count(1)
            async with screen.expect_download() as downloading:
                await screen.locator("a[href^='/w/reports/reviews.xlsx']").click()
            download = await downloading.value
            saved = tmp_path / download.suggested_filename
            await download.save_as(saved)

        rejected = await stack.wait_callbacks(unsafe["prescription_no"], 2)
        approved = await stack.wait_callbacks(clean["prescription_no"], 2)

    assert rejected[-1]["status"] == "returned"  # to the doctor, with the reason
    assert "附子与半夏相反" in str(rejected[-1])
    assert approved[-1]["status"] == "approved"
    # Decided by the pharmacist signed in to the page, not by the system at the deadline.
    assert rejected[-1]["reviewer"] == approved[-1]["reviewer"] == pharmacist_id
    sheet = load_workbook(saved).active
    assert sheet is not None
    cells = [list(r) for r in sheet.iter_rows(values_only=True)]
    header = cells.index([c.header for c in REVIEW_COLUMNS])
    [department] = cells[header + 1 :]
    # Three submitted: the pharmacist approved two (one through the API), returned one.
    assert department[1:7] == [3, 0, 2, 0, 1, 0]
