"""A doctor's clinic day in the workbench, in Chromium at 1366×768: from a diabetic patient's
record and the timeline of the plan their visit started, the doctor adds a call for today; it
lands in the doctor's queue when due; the doctor records it as abnormal with the next follow-up
date, which the plan then schedules; a nurse's queue never shows the doctor's call."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from playwright.async_api import expect
from temporalio.testing import WorkflowEnvironment

from core.models import StaffRole
from harness.browser import chromium, desktop, sign_in_to_workbench
from harness.servers import serve
from harness.staff import add_person
from tests.factories import BEIJING
from tests.pathways.conftest import DAY, PathwayStackFactory

PASSWORD = "Clinic-Doctor-2026!"


async def test_a_doctor_adds_a_call_and_records_it_from_the_queue(
    isolated_time_env: WorkflowEnvironment, pathway_stack: PathwayStackFactory, tmp_path: Path
) -> None:
    env = isolated_time_env
    async with pathway_stack(env) as stack, stack.workers(), serve(stack.app) as url:
        for username, role in (("dr-qian", StaffRole.DOCTOR), ("nurse-endo", StaffRole.NURSE)):
            await add_person(
                stack.sessions,
                stack.settings,
                username=username,
                password=PASSWORD,
                role=role,
                department_code="endocrinology",
                name="钱医生" if role == StaffRole.DOCTOR else "内分泌护士",
            )
        now = await env.get_current_time()
        visited = await stack.visit(now, department="endocrinology")
        assert visited.status_code == 202, visited.text
        run = next(r for r in visited.json()["runs"] if r["plan_id"] == "outpatient-visit")
        tasks = await stack.wait_projected(run["workflow_id"])
        patient_id = next(iter(tasks.values())).patient_id

        async with chromium() as browser:
            screen = await (await desktop(browser)).new_page()
            await sign_in_to_workbench(screen, url, "dr-qian", PASSWORD)
            await expect(screen).to_have_url(f"{url}/w/queue")
            await expect(screen.locator("main")).to_contain_text("今天没有待办的随访任务")
            await screen.goto(f"{url}/w/patients/{patient_id}")
            await expect(screen.locator("h1")).to_contain_text("张建国")
            await (
                screen.locator("#runs tr", has_text=run["plan_id"])
                .get_by_role("link", name="时间线")
                .click()
            )
            await screen.get_by_label("任务名称").fill("调整胰岛素剂量电话确认")
            await screen.get_by_label("类型").select_option(label="外呼")
            today = now.astimezone(BEIJING).date()
            await screen.get_by_label("日期").fill(today.isoformat())
            await screen.get_by_label("原因").fill("门诊调整胰岛素剂量，次日电话确认血糖")
            await screen.get_by_role("button", name="添加").click()
            await expect(screen.locator("#notice")).to_have_text("已添加人工任务")

            # The call falls due (its time is a minute or so from now) and goes to the queue.
            await env.sleep(timedelta(minutes=5))
            await stack.wait_task(run["workflow_id"], "adhoc-1#0", "sent")
            await screen.get_by_role("link", name="我的待办").click()
            row = screen.locator("#queue tbody tr")
            await expect(row).to_have_count(1)
            await expect(row).to_contain_text("调整胰岛素剂量电话确认")
            await screen.screenshot(path=str(tmp_path / "doctor-queue.png"))
            await row.get_by_role("link", name="登记结果").click()
            await screen.get_by_label("异常，需要跟进").check()
            await screen.get_by_label("随访记录").fill("空腹血糖11.2，嘱明日门诊复诊")
            await screen.get_by_label("下次随访日期（可选）").fill((today + 7 * DAY).isoformat())
            await screen.get_by_role("button", name="保存").click()
            await expect(screen.locator("#notice")).to_have_text("已登记随访结果")
            await expect(screen.locator("main")).to_contain_text("今天没有待办的随访任务")

            nurse = await (await desktop(browser)).new_page()
            await sign_in_to_workbench(nurse, url, "nurse-endo", PASSWORD)
            await nurse.get_by_role("link", name="全部").click()
            await expect(nurse.locator("main")).not_to_contain_text("调整胰岛素剂量电话确认")

        tasks = await stack.tasks(run["workflow_id"])
    assert tasks["adhoc-1#0"].status == "abnormal"
    assert tasks["adhoc-1#0"].responsible_role == "doctor"
    [next_call] = [t for k, t in tasks.items() if k.startswith("adhoc-2")]
    assert next_call.due_at.astimezone(BEIJING).date() == today + 7 * DAY
