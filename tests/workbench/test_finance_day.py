"""A finance clerk in the workbench (PAY-7, PAY-8), in Chromium at 1366×768: the refund the HIS
refused to record, waiting for a person; the day's reconciliation with the provider's bill and
the trade our ledger does not have."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from openpyxl import load_workbook
from playwright.async_api import expect
from temporalio.testing import WorkflowEnvironment

from core.models import StaffRole
from harness.browser import chromium, desktop, sign_in_to_workbench
from harness.payments import UNINSURED
from harness.staff import add_person, add_staff
from simulators.faults import FaultRule
from simulators.wechatpay.app import SimTrade
from tests.factories import BEIJING
from tests.payments.conftest import WorldFactory

PASSWORD = "Finance-Office-2026!"
CHARGING = "/his/api/v1/charging/orders"


async def test_a_finance_clerk_sees_a_failed_refund_and_the_days_reconciliation(
    dev_env: WorkflowEnvironment, pay_world: WorldFactory, tmp_path: Path
) -> None:
    async with pay_world(dev_env.client) as world, world.workers():
        await add_person(
            world.sessions,
            world.settings,
            username="finance-sun",
            password=PASSWORD,
            role=StaffRole.FINANCE,
            department_code=None,
            name="孙会计",
        )
        paid_no = world.his_order(UNINSURED, self_pay_fen=3000)
        paid = (await world.create(paid_no, patient=UNINSURED)).json()["id"]
        await world.patient_pays(paid)
        await world.wait(paid, status="settled")
        world.charging.faults.plan.rules.append(
            FaultRule(path_prefix=f"{CHARGING}/{paid_no}/refunds", status=409)
        )
        refund_id = (await world.refund(paid, 1000)).json()["id"]
        await world.wait_refund(refund_id, "failed")
        now = datetime.now(UTC)
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
        bill_date = now.astimezone(BEIJING).date()
        finance_token = await add_staff(world.sessions, StaffRole.FINANCE, None, name="对账程序")
        ran = await world.http.post(
            f"/api/payments/reconciliations/{bill_date}/run", headers=world.auth(finance_token)
        )
        assert ran.status_code == 200, ran.text

        async with chromium() as browser:
            screen = await (await desktop(browser)).new_page()
            await sign_in_to_workbench(screen, world.api_url, "finance-sun", PASSWORD)
            await expect(screen).to_have_url(f"{world.api_url}/w/finance")
            attention = screen.locator("#attention tbody tr")
            await expect(attention.filter(has_text="退款失败")).to_contain_text("10.00")
            day = screen.locator("#reconciliations tbody tr").filter(has_text=bill_date.isoformat())
            await expect(day).to_contain_text("1")
            await screen.screenshot(path=str(tmp_path / "finance.png"), full_page=True)
            async with screen.expect_download() as downloading:
                await screen.locator("a[href='/w/finance/attention.xlsx']").click()
            listed = await downloading.value
            attention_file = tmp_path / listed.suggested_filename
            await listed.save_as(attention_file)
            await day.get_by_role("link", name=bill_date.isoformat()).click()
            await expect(screen.locator("#findings")).to_contain_text("平台无此笔")
            await expect(screen.locator("#findings")).to_contain_text("5.00")
            async with screen.expect_download() as downloading:
                await screen.get_by_role("link", name="导出 Excel").click()
            download = await downloading.value
            saved = tmp_path / download.suggested_filename
            await download.save_as(saved)
            await screen.goto(f"{world.api_url}/w/queue")
            await expect(screen.locator("h1")).to_have_text("没有权限")

    # The day's findings as Excel: the trade we do not have, its amount as a number.
    sheet = load_workbook(saved).active
    assert sheet is not None
    cells = [list(r) for r in sheet.iter_rows(values_only=True)]
    header = cells.index(
        ["差异", "类型", "流水号", "商户订单号", "渠道（元）", "平台（元）", "状态"]
    )
    [finding] = cells[header + 1 :]
    assert finding[0:2] == ["平台无此笔", "缴费"]
    assert finding[4:] == [5.0, None, "未处理"]
    assert saved.name == f"reconciliation-{bill_date.isoformat()}.xlsx"
    attention_sheet = load_workbook(attention_file).active
    assert attention_sheet is not None
    listed_cells = [list(r) for r in attention_sheet.iter_rows(values_only=True)]
    header = listed_cells.index(["类别", "说明", "金额（元）", "状态", "自", "订单号"])
    failed = [r for r in listed_cells[header + 1 :] if r[0] == "退款失败"]
    assert [r[2] for r in failed] == [10.0]
