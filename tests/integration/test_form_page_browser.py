"""The form page's script in Chromium at phone size: questions appear and disappear as the
patient answers, as the server's check_answers decides them (show_if, an option that ends the
form, end_if), and cascade levels narrow to the choice above them.

The page is rendered from the template exactly as the router renders it and loaded directly:
what is under test is the page and its script, not the server (tests/api covers that). Uploads
need the server: those tests serve the real app on a port and open a task's signed link."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import Browser, Page, expect
from sqlmodel import select

from api.form_view import form_context
from core.models import CareTask, FormDraft, TaskStatus, Upload
from core.templates import page_environment
from harness.browser import chromium, phone
from harness.servers import serve
from harness.waiting import eventually
from pathways.answers import UPLOAD_REFERENCE
from pathways.library import load_forms
from tests.api.conftest import FormTask
from tests.images import png

pytestmark = pytest.mark.e2e

DEMO = load_forms()["all-question-types"]


def _html() -> str:
    env = page_environment(ZoneInfo("Asia/Shanghai"))
    return env.get_template("form.html").render(
        hospital_name="测试医院",
        hospital_phone="0571-00000000",
        valid_until=datetime(2030, 1, 1, tzinfo=UTC),
        **form_context(DEMO, {}, []),
    )


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    handset = await phone(browser)
    page = await handset.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.set_content(_html())
    yield page
    await handset.close()
    assert errors == [], "the page's script failed"


async def test_a_conditional_question_appears_and_disappears(page: Page, tmp_path: Path) -> None:
    temperature = page.locator("#q-temperature")
    fever_since = page.locator("#q-fever_since")
    has_fever = page.locator("#q-has_fever")

    # Hidden until the answer it depends on is given; the no-script note is not shown.
    await expect(temperature).to_be_hidden()
    await expect(fever_since).to_be_hidden()
    await expect(page.get_by_text("此题可能无需填写").first).to_be_hidden()

    await has_fever.get_by_label("是", exact=True).check()
    await expect(temperature).to_be_visible()
    await expect(fever_since).to_be_visible()
    # Numbers follow what is shown: the temperature is the 7th question asked.
    await expect(temperature.locator(".qn")).to_have_text("7")
    await page.screenshot(path=str(tmp_path / "fever-yes.png"), full_page=True)

    await has_fever.get_by_label("否", exact=True).check()
    await expect(temperature).to_be_hidden()
    await expect(fever_since).to_be_hidden()
    await expect(page.locator("#q-medicine_time .qn")).to_have_text("7")


async def test_a_question_on_a_chosen_option_of_a_multiple_choice(page: Page) -> None:
    photo = page.locator("#q-wound_photo")
    symptoms = page.locator("#q-symptoms")

    await expect(photo).to_be_hidden()
    await symptoms.get_by_label("伤口红肿、渗液").check()
    await expect(photo).to_be_visible()
    await expect(photo.get_by_text("从相册选择")).to_be_visible()
    # "None of these" with another option is refused by the server, so nothing is kept and
    # the photo is not asked for.
    await symptoms.get_by_label("以上均无").check()
    await expect(photo).to_be_hidden()
    await symptoms.get_by_label("以上均无").uncheck()
    await expect(photo).to_be_visible()
    await symptoms.get_by_label("伤口红肿、渗液").uncheck()
    await expect(photo).to_be_hidden()


async def test_other_asks_to_specify_only_when_chosen(page: Page) -> None:
    specify = page.get_by_label("其他（请注明）：请注明")

    await expect(specify).to_be_hidden()
    await page.locator("#q-symptoms").get_by_label("其他（请注明）", exact=True).check()
    await expect(specify).to_be_visible()


async def test_skipping_to_the_end(page: Page, tmp_path: Path) -> None:
    end = page.locator("#form-end")
    overall = page.locator("#q-overall")
    willing = page.locator("#q-willing")

    await expect(end).to_be_hidden()
    await willing.get_by_label("不方便，稍后再说").check()
    await expect(end).to_be_visible()
    await expect(overall).to_be_hidden()
    await expect(page.locator("#q-signature")).to_be_hidden()
    await page.screenshot(path=str(tmp_path / "ended.png"), full_page=True)
    await willing.get_by_label("方便", exact=True).check()
    await expect(end).to_be_hidden()
    await expect(overall).to_be_visible()

    # end_if: severe pain ends the form after the pain question.
    pain = page.locator("#q-pain")
    # The radios of a scale are drawn as buttons: the patient taps the number.
    await pain.get_by_text("9", exact=True).click()
    await expect(end).to_be_visible()
    await expect(page.locator("#q-stars")).to_be_hidden()
    await pain.get_by_text("3", exact=True).click()
    await expect(end).to_be_hidden()
    await expect(page.locator("#q-stars")).to_be_visible()


async def test_cascade_levels_follow_the_choice_above(page: Page) -> None:
    cascade = page.locator("#q-pain_site")
    first, second, third = (cascade.locator(f'select[data-level="{n}"]') for n in range(3))

    await expect(second).to_be_hidden()
    await first.select_option(label="四肢")
    await expect(second).to_be_visible()
    await expect(second.locator("option")).to_have_text(["请选择", "上肢", "下肢"])
    await expect(third).to_be_hidden()
    await second.select_option(label="下肢")
    await expect(third.locator("option")).to_have_text(["请选择", "膝部", "足部"])
    await first.select_option(label="没有疼痛")
    await expect(second).to_be_hidden()
    await expect(third).to_be_hidden()


async def test_fits_a_phone_screen(page: Page, tmp_path: Path) -> None:
    await page.locator("#q-has_fever").get_by_label("是", exact=True).check()
    await page.locator("#q-symptoms").get_by_label("伤口红肿、渗液").check()
    # The matrix is stacked: each option carries its own visible label.
    await expect(page.get_by_label("入睡：差")).to_be_visible()
    await expect(page.locator("#r-sleep-falling_asleep .cell-label").first).to_be_visible()
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390
    await page.screenshot(path=str(tmp_path / "phone.png"), full_page=True)


# ---- uploads, against the real app -----------------------------------------------------------


@pytest.fixture
async def served(browser: Browser, form_task: FormTask) -> AsyncIterator[Page]:
    """The patient's phone on the task's signed link, the app served on a loopback port."""
    async with serve(form_task.api.app) as url:
        handset = await phone(browser)
        page = await handset.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(f"{url}{form_task.path}")
        yield page
        await handset.close()
    assert errors == [], "the page's script failed"


async def _answer_the_rest(page: Page) -> None:
    """Everything the demo form requires besides the photo and the signature."""
    for name, value in (
        ("willing", "yes"),
        ("overall", "good"),
        ("has_fever", "no"),
        ("pain", "2"),
        ("stars", "5"),
        ("recommend", "9"),
        ("sleep.falling_asleep", "good"),
        ("sleep.waking", "fair"),
        ("sleep.daytime", "good"),
    ):
        # Scales are radios drawn as buttons: the input itself is not what the patient sees.
        await page.locator(f'input[name="{name}"][value="{value}"]').check(force=True)
    await page.locator("#i-department").select_option("internal")
    for level, value in enumerate(("limbs", "upper", "hand")):
        await page.locator(f"#i-pain_site-{level}").select_option(value)


async def _sign(page: Page) -> None:
    pad = page.locator("#q-signature canvas")
    await pad.scroll_into_view_if_needed()
    box = await pad.bounding_box()
    assert box is not None
    x, y = box["x"], box["y"] + box["height"] / 2
    await page.mouse.move(x + 20, y)
    await page.mouse.down()
    for step in range(1, 13):
        await page.mouse.move(x + 20 + step * 20, y + (15 if step % 2 else -15), steps=3)
    await page.mouse.up()


async def test_a_photo_and_a_signature_are_uploaded_then_the_form_is_sent(
    served: Page, form_task: FormTask, tmp_path: Path
) -> None:
    page = served
    await _answer_the_rest(page)
    await page.locator('#q-symptoms input[value="wound"]').check()
    photo = page.locator("#q-wound_photo")
    await expect(photo).to_be_visible()

    await page.locator("#i-wound_photo-album").set_input_files(
        {"name": "伤口.png", "mimeType": "image/png", "buffer": png(96, 64)}
    )
    thumb = photo.locator("figure.thumb img")
    await expect(thumb).to_be_visible()
    # Drawn through its signed link: the browser really got the image back.
    assert await thumb.evaluate("img => img.complete && img.naturalWidth") == 96
    await expect(photo.locator("input[type=hidden]")).to_have_count(1)

    signature = page.locator("#q-signature")
    await signature.get_by_role("button", name="确认签名").click()
    await expect(signature.locator(".upload-error")).to_have_text("请先在签名区域签名")
    await _sign(page)
    await signature.get_by_role("button", name="确认签名").click()
    await expect(signature.locator("figure.thumb img")).to_be_visible()
    await expect(signature.locator(".upload-error")).to_be_hidden()
    await page.screenshot(path=str(tmp_path / "uploaded.png"), full_page=True)

    await page.get_by_role("button", name="提交").click()
    await expect(page.get_by_role("heading", name="提交成功")).to_be_visible()
    await page.screenshot(path=str(tmp_path / "sent.png"), full_page=True)

    async with form_task.api.sessions() as session:
        uploads = (await session.exec(select(Upload))).all()
        task = await session.get(CareTask, form_task.task_id)
    assert sorted(u.question_id for u in uploads) == ["signature", "wound_photo"]
    assert all(UPLOAD_REFERENCE.match(u.reference) for u in uploads)
    assert {u.content_type for u in uploads} == {"image/png"}
    assert task is not None
    assert task.status == TaskStatus.SENT  # no worker runs: the answers wait in the signal


async def test_a_drawn_signature_is_saved_on_submit_and_a_wrong_file_is_said(
    served: Page, form_task: FormTask, tmp_path: Path
) -> None:
    page = served
    await _answer_the_rest(page)
    await page.locator('#q-symptoms input[value="none"]').check()
    signature = page.locator("#q-signature")

    await page.locator("#i-signature").set_input_files(
        {"name": "签名.png", "mimeType": "image/png", "buffer": b"%PDF-1.7 not an image"}
    )
    await expect(signature.locator(".upload-error")).to_have_text("该文件不是图片，请重新选择")
    await page.screenshot(path=str(tmp_path / "refused.png"), full_page=True)

    # Drawn but never confirmed: submitting saves it first.
    await _sign(page)
    await page.get_by_role("button", name="提交").click()
    await expect(page.get_by_role("heading", name="提交成功")).to_be_visible()
    async with form_task.api.sessions() as session:
        uploads = (await session.exec(select(Upload))).all()
    assert [u.question_id for u in uploads] == ["signature"]


async def test_a_patient_leaves_half_way_comes_back_through_the_link_and_answers_every_type(
    served: Page, form_task: FormTask, tmp_path: Path
) -> None:
    page = served
    await page.locator('input[name="willing"][value="yes"]').check(force=True)
    await page.locator('#q-symptoms input[value="wound"]').check()
    await page.locator("#i-wound_photo-album").set_input_files(
        {"name": "伤口.png", "mimeType": "image/png", "buffer": png(96, 64)}
    )
    await expect(page.locator("#q-wound_photo figure.thumb img")).to_be_visible()
    await page.locator('textarea[name="story"]').fill("出院后第三天伤口有些渗液，已换药。")

    # The status may still say an earlier save's "已自动保存": wait for the one holding
    # everything so far, as stored.
    async def everything_saved() -> FormDraft | None:
        async with form_task.api.sessions() as session:
            draft = await session.get(FormDraft, form_task.task_id)
        answers = draft.answers if draft else {}
        complete = (
            answers.get("symptoms") == ["wound"]
            and bool(answers.get("wound_photo"))
            and answers.get("story") == ["出院后第三天伤口有些渗液，已换药。"]
        )
        return draft if complete else None

    await eventually(everything_saved, what="the draft with every answer so far")
    await expect(page.locator("#draft-status")).to_contain_text("已自动保存")

    # The patient leaves and opens the link from the SMS again.
    await page.goto(page.url)
    await expect(page.locator("#draft-note")).to_contain_text("可以接着填写")
    await expect(page.locator('input[name="willing"][value="yes"]')).to_be_checked()
    await expect(page.locator('#q-symptoms input[value="wound"]')).to_be_checked()
    await expect(page.locator('textarea[name="story"]')).to_have_value(
        "出院后第三天伤口有些渗液，已换药。"
    )
    # The photo question is shown again (its condition holds), with the photo uploaded before.
    await expect(page.locator("#q-wound_photo figure.thumb img")).to_be_visible()
    await page.screenshot(path=str(tmp_path / "draft-restored.png"), full_page=True)

    await _answer_the_rest(page)
    # A fever after all: the questions about it appear, and every remaining type is answered.
    temperature = page.locator("#q-temperature")
    await expect(temperature).to_be_hidden()
    await page.locator('input[name="has_fever"][value="yes"]').check(force=True)
    await expect(temperature).to_be_visible()
    await page.locator("#i-temperature").fill("38.2")
    await page.locator("#i-fever_since").fill("2026-03-01")
    await page.locator("#i-medicine_time").fill("08:30")
    await page.locator("#i-summary").fill("伤口换药后好转")
    await _sign(page)
    await page.locator("#q-signature").get_by_role("button", name="确认签名").click()
    await expect(page.locator("#q-signature figure.thumb img")).to_be_visible()
    await page.screenshot(path=str(tmp_path / "every-type.png"), full_page=True)
    await page.get_by_role("button", name="提交").click()
    await expect(page.get_by_role("heading", name="提交成功")).to_be_visible()
    async with form_task.api.sessions() as session:
        assert await session.get(FormDraft, form_task.task_id) is None
