"""A care manager on a ward tablet (1024×768): looks at a new draft of a follow-up plan drawn
for a sample discharge date and publishes it; a nurse may look at it but not publish."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from playwright.async_api import expect
from sqlmodel import select
from temporalio.testing import WorkflowEnvironment

from core.models import AuditEntry, PathwayVersion, StaffRole
from harness.browser import chromium, desktop, sign_in_to_workbench, tablet
from harness.servers import serve
from harness.staff import add_person
from tests.pathways.conftest import PathwayStackFactory

PASSWORD = "Case-Manager-2026!"
PLAN = "inpatient-discharge"


async def test_a_care_manager_publishes_a_draft_after_looking_at_its_timeline(
    dev_env: WorkflowEnvironment, pathway_stack: PathwayStackFactory, tmp_path: Path
) -> None:
    async with pathway_stack(dev_env) as stack, stack.workers(), serve(stack.app) as url:
        for username, role in (
            ("cm-zhou", StaffRole.CARE_MANAGER),
            ("nurse-wang", StaffRole.NURSE),
        ):
            await add_person(
                stack.sessions,
                stack.settings,
                username=username,
                password=PASSWORD,
                role=role,
                department_code=None if role == StaffRole.CARE_MANAGER else "cardiology",
                name="周个案" if role == StaffRole.CARE_MANAGER else "王护士",
            )
        # A patient discharged today is on version 1.
        discharged = await stack.discharge(datetime.now(UTC), department="cardiology")
        [run] = [r for r in discharged.json()["runs"] if r["plan_id"] == PLAN]
        await stack.wait_projected(run["workflow_id"])
        # A second version: the day-7 call moves to day 10 (drafted through the designer API).
        [current] = (
            await stack.http.get(
                f"/api/pathways/{PLAN}/versions", headers=stack.auth("care_manager")
            )
        ).json()
        body = current["body"]
        for step in body["steps"]:
            if step["id"] == "day7":
                step["title"] = "出院第10天随访"
                step["schedule"]["offset"] = {"days": 10}
        drafted = await stack.http.post(
            "/api/pathways", json=body, headers=stack.auth("care_manager")
        )
        assert drafted.status_code == 201, drafted.text
        assert drafted.json()["version"] == 2

        async with chromium() as browser:
            screen = await (await tablet(browser)).new_page()
            await sign_in_to_workbench(screen, url, "cm-zhou", PASSWORD)
            await screen.get_by_role("link", name="随访计划").click()
            await screen.locator("#pathways tr", has_text=PLAN).get_by_role("link").click()
            await screen.get_by_role("link", name="第2版 · 草稿").click()
            await screen.get_by_label("示例起始日期（如出院日）").fill("2026-03-02")
            await screen.get_by_role("button", name="查看时间线").click()
            planned = screen.locator("#planned tbody tr")
            await expect(planned.filter(has_text="出院第10天随访")).to_contain_text("2026年3月12日")
            await expect(screen.locator(".chart canvas")).to_have_count(1)
            await screen.screenshot(path=str(tmp_path / "pathway-timeline.png"), full_page=True)
            await screen.get_by_role("button", name="发布第2版").click()
            await expect(screen.locator("#notice")).to_have_text("第2版已发布")
            await expect(screen.locator("#publish")).to_have_count(0)

            # The patient already on version 1: what moving them would change, then the move.
            await screen.goto(f"{url}/w/runs/{run['workflow_id']}")
            await screen.get_by_role("button", name="预览变化").click()
            changes = screen.locator("#changes tbody tr")
            await expect(changes.filter(has_text="day7")).to_contain_text("改期")
            await screen.screenshot(path=str(tmp_path / "migration.png"), full_page=True)
            await screen.get_by_role("button", name="确认迁移到第2版").click()
            await expect(screen.locator("#notice")).to_have_text("已迁移到新版本")
            await screen.get_by_label("任务名称").fill("术后用药电话确认")
            await screen.get_by_label("日期").fill(
                (datetime.now(UTC).date() + timedelta(days=2)).isoformat()
            )
            await screen.get_by_label("原因").fill("患者询问用药剂量")
            await screen.get_by_role("button", name="添加").click()
            await expect(screen.locator("#notice")).to_have_text("已添加人工任务")

            nurse = await (await desktop(browser)).new_page()
            await sign_in_to_workbench(nurse, url, "nurse-wang", PASSWORD)
            await expect(nurse.get_by_role("navigation", name="主导航")).not_to_contain_text(
                "随访计划"
            )
            await nurse.goto(f"{url}/w/pathways/{PLAN}?version=2")
            await expect(nurse.locator("#planned")).to_contain_text("出院第10天随访")
            await expect(nurse.locator("#publish")).to_have_count(0)
            forged = await nurse.request.post(f"{url}/w/pathways/{PLAN}/versions/2/publish")
            assert forged.status == 403

        progress = await stack.progress(run["workflow_id"])
        async with stack.sessions() as session:
            version = (
                await session.exec(
                    select(PathwayVersion).where(
                        PathwayVersion.pathway_id == PLAN, PathwayVersion.version == 2
                    )
                )
            ).one()
            published = (
                await session.exec(
                    select(AuditEntry).where(
                        AuditEntry.action == "pathway.published", AuditEntry.target_id == PLAN
                    )
                )
            ).all()
    assert version.status == "published"
    assert progress.plan_version == 2
    assert any(s.title == "术后用药电话确认" for s in progress.steps)
    assert [e.detail.get("version") for e in published] == [2]
