"""A ward nurse's day in the workbench, in Chromium at 1366×768: signing in, her queue, recording
a phone follow-up with the next date (and a stale page that cannot record it twice), resolving
the alert an abnormal answer raised; what she may not see or do."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from openpyxl import load_workbook
from playwright.async_api import expect
from sqlmodel import select
from temporalio.testing import WorkflowEnvironment

from core.models import Alert, AuditEntry, StaffRole
from harness.browser import chromium, desktop
from harness.servers import serve
from harness.staff import add_person
from tests.factories import BEIJING, daytime
from tests.pathways.conftest import DAY, PathwayStackFactory
from tests.pathways.test_library_followup import POORLY, _skip_to

PASSWORD = "Ward-Nurse-2026!"


async def test_a_nurse_records_a_phone_follow_up_and_resolves_an_alert(
    isolated_time_env: WorkflowEnvironment, pathway_stack: PathwayStackFactory, tmp_path: Path
) -> None:
    env = isolated_time_env
    shots = tmp_path
    async with pathway_stack(env) as stack, stack.workers(), serve(stack.app) as url:
        await add_person(
            stack.sessions,
            stack.settings,
            username="ortho-nurse",
            password=PASSWORD,
            role=StaffRole.NURSE,
            department_code="orthopedics",
            name="骨科护士",
        )
        discharged = daytime(await env.get_current_time(), hour=15)
        [run] = (await stack.discharge(discharged, department="orthopedics")).json()["runs"]
        workflow_id = run["workflow_id"]
        other = (
            await stack.discharge(discharged, patient="P0002", department="cardiology")
        ).json()["runs"][0]
        # Day 3: the patient answers poorly; the nurse is alerted and a call falls due.
        day3 = (discharged.astimezone(BEIJING) + 3 * DAY).replace(hour=10, minute=0)
        await _skip_to(env, day3 + timedelta(minutes=1))
        await stack.wait_step(workflow_id, "day3", ("sent",))
        await stack.answer(workflow_id, "day3", POORLY)
        progress = await stack.wait_step(workflow_id, "nurse-call", ("pending",))
        call = next(s for s in progress.steps if s.step_id == "nurse-call")
        await _skip_to(env, call.due_at + timedelta(minutes=1))
        task = await stack.wait_task(workflow_id, "nurse-call#0", "sent")
        cardiology_task = next(iter((await stack.wait_projected(other["workflow_id"])).values()))

        async with chromium() as browser:
            screen = await (await desktop(browser)).new_page()
            await screen.goto(f"{url}/w")
            await expect(screen).to_have_url(f"{url}/w/sign-in?next=/w")
            await screen.get_by_label("用户名").fill("ortho-nurse")
            await screen.get_by_label("密码").fill("wrong-password")
            await screen.get_by_role("button", name="登录").click()
            await expect(screen.locator("#password-error")).to_have_text("用户名或密码错误")
            await screen.get_by_label("密码").fill(PASSWORD)
            await screen.get_by_role("button", name="登录").click()
            await expect(screen).to_have_url(f"{url}/w/queue")
            await expect(screen.get_by_role("navigation", name="主导航")).to_contain_text("预警")
            await screen.get_by_role("link", name="全部").click()
            row = screen.locator("#queue tbody tr")
            await expect(row).to_have_count(1)
            await expect(row).to_contain_text("护士电话随访")
            await screen.screenshot(path=str(shots / "queue.png"))

            stale = await screen.context.new_page()
            await stale.goto(f"{url}/w/tasks/{task.id}")
            await row.get_by_role("link", name="登记结果").click()
            await screen.get_by_role("button", name="保存").click()
            await expect(screen.locator("#outcome-error")).to_have_text("请选择随访结果")
            await expect(screen.locator("#note-error")).to_have_text("请填写随访记录")
            await screen.screenshot(path=str(shots / "task-errors.png"))
            await screen.get_by_label("已完成（正常）").check()
            await screen.get_by_label("随访记录").fill("患者胸闷已缓解，嘱按时服药，一周后复查")
            next_visit = (discharged.astimezone(BEIJING) + 10 * DAY).date()
            await screen.get_by_label("下次随访日期（可选）").fill(next_visit.isoformat())
            await screen.get_by_role("button", name="保存").click()
            await expect(screen.locator("#notice")).to_have_text("已登记随访结果")

            await stale.get_by_label("异常，需要跟进").check()
            await stale.get_by_label("随访记录").fill("重复登记")
            await stale.get_by_role("button", name="保存").click()
            await expect(stale.locator("#notice")).to_contain_text("已由他人登记结果")

            # The day-3 answers, from the run's timeline on the patient's record.
            await screen.goto(f"{url}/w/patients/{task.patient_id}")
            await screen.locator("#runs").get_by_role("link", name="时间线").first.click()
            await expect(screen.locator("#timeline")).to_contain_text("已完成")
            await screen.locator("#timeline").get_by_role("link", name="出院第3天随访").click()
            await expect(screen.locator("#answers")).to_contain_text("胸")
            await screen.screenshot(path=str(shots / "answers.png"), full_page=True)

            await screen.goto(f"{url}/w/tasks/{cardiology_task.id}")
            await expect(screen.locator("h1")).to_have_text("未找到该任务")
            forged = await screen.request.post(
                f"{url}/w/tasks/{task.id}/complete",
                form={"outcome": "completed", "note": "无令牌"},
            )
            assert forged.status == 403

            await screen.get_by_role("link", name="预警").click()
            alert_row = screen.locator("#alerts tbody tr")
            await expect(alert_row).to_have_count(1)
            await expect(alert_row).to_contain_text("胸闷")
            # She takes it in hand first (the row changes in place), then closes it.
            await alert_row.get_by_role("button", name="确认", exact=True).click()
            await expect(alert_row).to_contain_text("已确认，正在处理")
            await expect(alert_row.get_by_role("button", name="确认", exact=True)).to_have_count(0)
            await alert_row.get_by_role("button", name="处理完毕").click()
            await expect(alert_row.locator(".field-error")).to_have_text(
                "请填写处理情况（2～500字）"
            )
            await alert_row.get_by_label("处理情况").fill("已电话随访，症状缓解")
            await alert_row.get_by_role("button", name="处理完毕").click()
            await expect(alert_row).to_contain_text("已处理完毕")
            await screen.screenshot(path=str(shots / "alerts.png"))
            # The open tab, fetched again as it is every minute: the resolved alert has left.
            assert await screen.evaluate("window.carepathRefresh()") is True
            await expect(screen.locator("#alerts")).to_have_count(0)
            await expect(screen.locator("main")).to_contain_text("没有待处理的预警")
            await screen.get_by_role("link", name="已处理").click()
            await expect(screen.locator("#alerts")).to_contain_text("已电话随访，症状缓解")
            async with screen.expect_download() as downloading:
                await screen.get_by_role("link", name="导出 Excel").click()
            alerts_download = await downloading.value
            alerts_file = shots / alerts_download.suggested_filename
            await alerts_download.save_as(alerts_file)
            alerts_sheet = load_workbook(alerts_file).active
            assert alerts_sheet is not None
            alert_cells = [list(r) for r in alerts_sheet.iter_rows(values_only=True)]

            # The plan's figures for the fortnight after discharge, then the same as Excel.
            await screen.get_by_role("link", name="统计报表").click()
            first_day = discharged.astimezone(BEIJING).date()
            await screen.get_by_label("开始日期").fill(first_day.isoformat())
            await screen.get_by_label("结束日期").fill((first_day + 14 * DAY).isoformat())
            await screen.get_by_role("button", name="查询").click()
            plan_row = screen.locator("#follow-up tbody tr").first
            await expect(plan_row).to_contain_text("出院")
            shown = await plan_row.locator("td").all_inner_texts()
            await expect(screen.locator(".chart canvas")).to_have_count(1)
            await screen.screenshot(path=str(shots / "reports.png"), full_page=True)
            async with screen.expect_download() as downloading:
                await screen.get_by_role("link", name="导出 Excel").first.click()
            download = await downloading.value
            saved = shots / download.suggested_filename
            await download.save_as(saved)
            sheet = load_workbook(saved).active
            assert sheet is not None
            exported = [list(r) for r in sheet.iter_rows(values_only=True)]

        tasks = await stack.tasks(workflow_id)
        async with stack.sessions() as session:
            [alert] = (
                await session.exec(select(Alert).where(Alert.workflow_id == workflow_id))
            ).all()
            exports = len(
                (
                    await session.exec(
                        select(AuditEntry).where(AuditEntry.action == "report.exported")
                    )
                ).all()
            )
            audited = {
                e.action
                for e in (
                    await session.exec(select(AuditEntry).where(AuditEntry.target_id == alert.id))
                ).all()
            }

    assert tasks["nurse-call#0"].status == "completed"
    assert tasks["nurse-call#0"].reason == "患者胸闷已缓解，嘱按时服药，一周后复查"
    follow_ups = [t for k, t in tasks.items() if k.startswith("adhoc")]
    assert [t.due_at.astimezone(BEIJING).date() for t in follow_ups] == [next_visit]
    assert (alert.status, alert.resolution_note) == ("resolved", "已电话随访，症状缓解")
    assert {"alert.acknowledged", "alert.resolved"} <= audited
    # Day 3 (answered abnormal) and the call (recorded) were due; day 7 and 30 are not yet.
    assert shown[1:5] == ["2", "2", "1", "0"]
    header = exported.index(["分组", "应随访", "已随访", "其中异常", "失访", "无需随访", "待处理",
                             "随访率", "宣教推送", "宣教已读", "阅读率", "满意度均分"])  # fmt: skip
    plan, total = exported[header + 1], exported[header + 2]
    assert plan[0] == shown[0]
    assert plan[1:5] == [2, 2, 1, 0]
    assert plan[7] == 1.0
    assert total[0] == "合计"
    assert "骨科护士" in str(exported[2][0])  # who exported it
    assert saved.name.startswith("follow-up-")
    assert exports == 2
    # The alerts as Excel: the name as a nurse sees it, the phone masked, what was done.
    header = alert_cells.index(["时间", "级别", "患者", "病历号", "手机", "内容", "状态",
                                "处理情况", "处理时间"])  # fmt: skip
    [exported_alert] = alert_cells[header + 1 :]
    assert exported_alert[2:5] == ["张建国", "P0001", "138****8001"]
    assert exported_alert[6:8] == ["已处理", "已电话随访，症状缓解"]
    assert alerts_file.name.startswith("alerts-resolved-")
