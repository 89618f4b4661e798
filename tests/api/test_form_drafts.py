"""A half-filled form (FORM-3): kept with the page's "暂存" button (no script) or by autosave (the
script), shown again through the same link, encrypted at rest like submitted answers, only ever
what the form could hold, and gone once the form is submitted. The browser test
(tests/integration/test_form_page_browser.py) drives the autosave script itself."""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import select

from core.models import AuditEntry, FormDraft
from tests.api.conftest import FormTask
from tests.api.test_uploads import ANSWERS, SIGNATURE, _card

STORY = "出院后第三天伤口有些渗液，已换药。"


async def _draft(form_task: FormTask) -> FormDraft | None:
    async with form_task.api.sessions() as session:
        return await session.get(FormDraft, form_task.task_id)


async def test_the_save_button_keeps_the_answers_for_the_same_link(form_task: FormTask) -> None:
    http = form_task.api.http
    saved = await http.post(
        form_task.path,
        data={
            "willing": "yes",
            "symptoms": ["wound", "fever"],
            "story": STORY,
            "no_such": "x",
            "_action": "draft",
        },
    )
    # Not checked (it is unfinished): the page again, its answers kept, and a word saying so.
    assert saved.status_code == 200
    assert "可以接着填写" in saved.text
    assert "有 " not in saved.text.split("<form", 1)[0]  # no error summary
    draft = await _draft(form_task)
    assert draft is not None
    assert draft.answers == {"willing": ["yes"], "symptoms": ["wound", "fever"], "story": [STORY]}

    page = await http.get(form_task.path)
    assert page.status_code == 200
    assert "可以接着填写" in page.text
    assert STORY in _card(page.text, "story")
    assert 'value="wound" checked' in _card(page.text, "symptoms")

    # At rest the draft is an SM4 envelope, as submitted answers are.
    async with form_task.api.sessions() as session:
        connection = await session.connection()
        stored = (await connection.execute(sa.text("select answers from form_draft"))).scalar_one()
    assert "伤口" not in stored
    assert "wound" not in stored


async def test_autosave_replaces_the_draft_and_refuses_what_is_not_a_form(
    form_task: FormTask,
) -> None:
    http = form_task.api.http
    first = await http.post(f"{form_task.path}/draft", data={"willing": "yes"})
    assert first.status_code == 200, first.text
    assert "saved_at" in first.json()
    second = await http.post(f"{form_task.path}/draft", data={"willing": "no", "story": STORY})
    assert second.status_code == 200
    draft = await _draft(form_task)
    assert draft is not None
    assert draft.answers == {"willing": ["no"], "story": [STORY]}

    as_json = await http.post(f"{form_task.path}/draft", json={"willing": ["yes"]})
    assert as_json.status_code == 415
    tampered = await http.post(f"{form_task.path[:-3]}xyz/draft", data={"willing": "yes"})
    assert tampered.status_code == 404
    assert tampered.json()["code"] == "invalid_link"
    too_long = await http.post(f"{form_task.path}/draft", data={"story": "字" * 400_000})
    assert too_long.status_code == 413
    kept = await _draft(form_task)
    assert kept is not None
    assert kept.answers == {"willing": ["no"], "story": [STORY]}


async def test_submitting_the_form_removes_its_draft(form_task: FormTask) -> None:
    http = form_task.api.http
    await http.post(f"{form_task.path}/draft", data={"willing": "yes", "story": STORY})
    signature = await form_task.upload("signature", SIGNATURE, "image/png")
    sent = await http.post(
        form_task.path, data={**ANSWERS, "signature": signature.json()["reference"]}
    )
    assert sent.status_code == 200, sent.text
    assert "提交成功" in sent.text
    assert await _draft(form_task) is None
    async with form_task.api.sessions() as session:
        actions = (await session.exec(select(AuditEntry.action))).all()
    assert "followup.answers_submitted" in actions
