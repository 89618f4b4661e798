"""A care manager on a ward tablet (1024×768) works through the enrolment list of a case-managed
pathway that needs informed consent (CM-2): the patient signs on the tablet and the plan starts;
another patient declines and the reason is kept; a second, stale page enrols nobody twice."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

from openpyxl import load_workbook
from PIL import Image
from playwright.async_api import expect
from sqlmodel import select
from temporalio.testing import WorkflowEnvironment

from api.workbench.enrolment import CANDIDATE_COLUMNS
from core.models import AuditEntry, EnrollmentCandidate, PathwayRun, StaffRole, Upload
from harness.browser import chromium, draw_signature, sign_in_to_workbench, tablet
from harness.servers import serve
from harness.staff import add_person
from tests.factories import BEIJING
from tests.pathways.conftest import PathwayStackFactory

PASSWORD = "Case-Manager-2026!"
PATHWAY = "diabetes-management"


def _jpeg() -> bytes:
    """A photo of the signed paper form, as a phone takes it."""
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (240, 240, 235)).save(out, "JPEG")
    return out.getvalue()


async def test_a_care_manager_enrols_one_patient_with_consent_and_records_another_declining(
    dev_env: WorkflowEnvironment, pathway_stack: PathwayStackFactory, tmp_path: Path
) -> None:
    async with pathway_stack(dev_env) as stack, stack.workers(), serve(stack.app) as url:
        await add_person(
            stack.sessions,
            stack.settings,
            username="cm-zhou",
            password=PASSWORD,
            role=StaffRole.CARE_MANAGER,
            department_code=None,
            name="周个案",
        )
        for patient in ("P0003", "P0002"):
            visited = await stack.visit(datetime.now(UTC), patient=patient)
            assert visited.json()["candidates"] == [PATHWAY], visited.text

        async with chromium() as browser:
            context = await tablet(browser)
            screen = await context.new_page()
            await sign_in_to_workbench(screen, url, "cm-zhou", PASSWORD)
            await screen.get_by_role("link", name="入组管理").click()
            rows = screen.locator("#candidates tbody tr")
            await expect(rows).to_have_count(2)
            await screen.screenshot(path=str(tmp_path / "candidates.png"), full_page=True)
            await rows.filter(has_text="P0003").get_by_role("link", name="办理入组").click()
            await expect(screen.locator("#candidate")).to_contain_text("2型糖尿病")
            candidate_page = screen.url
            # A second tab on the same patient, left open: it will be stale.
            stale = await context.new_page()
            await stale.goto(candidate_page)

            # Without consent nothing is started, and the page says what is missing.
            await screen.get_by_role("button", name="确认入组").click()
            await expect(screen.locator("#method-error")).to_have_text("请选择知情同意方式")
            await screen.get_by_label("患者在本设备上签名").check()
            await screen.get_by_role("button", name="确认入组").click()
            await expect(screen.locator("#signature-error")).to_have_text("请患者在签名区域签名")
            await screen.get_by_label("患者在本设备上签名").check()
            await draw_signature(screen)
            await screen.screenshot(path=str(tmp_path / "consent.png"), full_page=True)
            await screen.get_by_role("button", name="确认入组").click()
            await expect(screen.locator("#notice")).to_have_text("已为患者入组，随访计划已开始")
            decision = screen.locator("#decision")
            await expect(decision).to_contain_text("已入组")
            await expect(decision).to_contain_text("知情同意：患者在本设备上签名")
            signature_src = await decision.get_by_role("img").get_attribute("src")
            assert signature_src is not None
            signature = await screen.request.get(url + signature_src)
            signature_type = signature.headers["content-type"]
            signature_png = await signature.body()
            await screen.screenshot(path=str(tmp_path / "enrolled.png"), full_page=True)
            # The run it started, titled by the pathway, with who started it in the trail.
            await decision.get_by_role("link", name="查看随访计划执行情况").click()
            await expect(screen.locator("h1")).to_have_text("2型糖尿病个案管理 · 王志强")
            started = screen.locator("#trail tbody tr").filter(has_text="手动开始随访计划")
            await expect(started).to_contain_text("周个案（个案管理师）")
            await screen.go_back()

            # The stale tab: a photo of the paper form for the patient already enrolled.
            await stale.get_by_label("上传已签署的纸质知情同意书照片").check()
            await stale.get_by_label("已签署的知情同意书照片").set_input_files(
                {"name": "consent.jpg", "mimeType": "image/jpeg", "buffer": _jpeg()}
            )
            await stale.get_by_role("button", name="确认入组").click()
            await expect(stale.locator("#notice")).to_have_text(
                "该患者已由他人办理（入组或不入组），本次未重复办理。"
            )

            await screen.get_by_role("link", name="返回入组管理").click()
            await rows.filter(has_text="P0002").get_by_role("link", name="办理入组").click()
            await screen.get_by_role("button", name="记录不入组").click()
            await expect(screen.locator("#reason-error")).to_contain_text("请填写不入组的原因")
            await screen.get_by_label("原因（如患者拒绝、不适合该计划）").fill("患者拒绝参加")
            await screen.get_by_role("button", name="记录不入组").click()
            await expect(screen.locator("#notice")).to_have_text("已记录不入组的原因")
            await expect(rows).to_have_count(0)
            await screen.get_by_role("link", name="未入组").click()
            await expect(rows.filter(has_text="P0002")).to_have_count(1)
            async with screen.expect_download() as downloading:
                await screen.get_by_role("link", name="导出 Excel").click()
            download = await downloading.value
            saved = tmp_path / download.suggested_filename
            await download.save_as(saved)

        async with stack.sessions() as session:
            decided = {c.status: c for c in (await session.exec(select(EnrollmentCandidate))).all()}
        enrolled, declined = decided["enrolled"], decided["declined"]
        assert enrolled.workflow_id is not None
        await stack.wait_projected(enrolled.workflow_id)
        async with stack.sessions() as session:
            runs = (
                await session.exec(select(PathwayRun).where(PathwayRun.plan_id == PATHWAY))
            ).all()
            stored = (await session.exec(select(Upload))).all()
            audited = [
                e.action
                for e in (await session.exec(select(AuditEntry))).all()
                if e.action.startswith("pathway.enrol")
            ]
        progress = await stack.progress(enrolled.workflow_id)

    assert enrolled.consent is not None
    assert enrolled.consent["method"] == "e_signature"
    assert [u.reference for u in stored] == [enrolled.consent["reference"]]
    assert stored[0].enrollment_candidate_id == enrolled.id
    assert signature_type == "image/png"
    darkest, _ = Image.open(io.BytesIO(signature_png)).convert("L").getextrema()
    assert isinstance(darkest, int)
    assert darkest < 64  # the patient's ink, not an empty pad
    assert declined.note == "患者拒绝参加"
    assert declined.workflow_id is None
    # One run, for the patient who signed; the stale page started nothing.
    assert [r.workflow_id for r in runs] == [enrolled.workflow_id]
    assert progress.plan_id == PATHWAY
    assert sorted(audited) == ["pathway.enrolled", "pathway.enrolment_declined"]
    sheet = load_workbook(saved).active
    assert sheet is not None
    cells = [list(r) for r in sheet.iter_rows(values_only=True)]
    header = cells.index([c.header for c in CANDIDATE_COLUMNS])
    [row] = cells[header + 1 :]
    assert row[:5] == ["李秀英", "P0002", "139****9002", "2型糖尿病个案管理", "内分泌科"]
    assert row[-1] == "患者拒绝参加"
    # Who exported it, when, in the hospital's time like the table (not UTC).
    stamp = str(cells[2][0])
    assert stamp.startswith("导出：周个案（个案管理师），")
    exported_at = datetime.strptime(stamp.rsplit("，", 1)[1], "%Y-%m-%d %H:%M:%S")
    assert abs(exported_at.replace(tzinfo=BEIJING) - datetime.now(UTC)) < timedelta(minutes=5)
