"""The patient form page as HTML, rendered from the template without a server: every question
type has its input, errors sit at their answer key in Chinese, and what was posted is shown
again. The API tests cover the same page through the router and a real run."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any, get_args
from zoneinfo import ZoneInfo

import pytest

from api.form_view import (
    ANSWER_ERROR_TEXT,
    cascade_levels,
    error_texts,
    form_context,
    form_logic,
    kept_uploads,
    question_numbers,
)
from core.templates import TEMPLATES_DIR, page_environment
from pathways.answers import AnswerError, ErrorCode, check_answers
from pathways.expressions import compile_expression, expression_tree
from pathways.form_definition import FormDefinition
from pathways.library import load_forms

FORMS = load_forms()
DEMO = FORMS["all-question-types"]
REF = "upl_" + "A" * 16 + "b-_9" * 4
CJK = re.compile(r"[\u4e00-\u9fff]")


def render(form: FormDefinition, raw: dict[str, list[str]] | None = None) -> str:
    values = raw or {}
    _, errors = check_answers(form, values) if raw is not None else ({}, [])
    env = page_environment(ZoneInfo("Asia/Shanghai"))
    return env.get_template("form.html").render(
        hospital_name="测试医院",
        hospital_phone="0571-00000000",
        valid_until=datetime(2026, 3, 1, 8, tzinfo=UTC),
        **form_context(form, values, errors),
    )


def card(html: str, qid: str) -> str:
    """The HTML of one question's card."""
    start = html.index(f'id="q-{qid}"')
    end = html.find('<div class="card', start)
    return html[start : end if end >= 0 else len(html)]


def test_every_error_code_has_chinese_text() -> None:
    codes = set(get_args(ErrorCode))
    assert codes <= set(ANSWER_ERROR_TEXT)
    for code in codes:
        assert CJK.search(ANSWER_ERROR_TEXT[code]), code


def test_every_question_type_has_its_input() -> None:
    html = render(DEMO)

    assert 'type="radio" name="willing" value="no"' in card(html, "willing")
    assert 'type="radio" name="overall"' in card(html, "overall")
    symptoms = card(html, "symptoms")
    assert 'type="checkbox" name="symptoms" value="none"' in symptoms
    assert 'name="symptoms.other"' in symptoms  # "please specify", under its option
    assert '<select id="i-department" name="department"' in card(html, "department")
    cascade = card(html, "pain_site")
    assert cascade.count('name="pain_site"') == 3  # one select per level
    assert '<optgroup label="四肢 › 上肢">' in cascade
    temperature = card(html, "temperature")
    assert 'type="number"' in temperature
    assert '<span class="unit">℃</span>' in temperature
    date = card(html, "fever_since")
    assert 'type="date"' in date
    assert 'min="2020-01-01"' in date
    assert "pattern=" in date
    assert 'type="time"' in card(html, "medicine_time")
    for qid, low, high in (("pain", 0, 10), ("recommend", 0, 10), ("stars", 1, 5)):
        values = re.findall(rf'type="radio" name="{qid}" value="(\d+)"', card(html, qid))
        assert values == [str(n) for n in range(low, high + 1)], qid
    assert "1星" in card(html, "stars")
    matrix = card(html, "sleep")
    assert "<table" in matrix
    for row in ("falling_asleep", "waking", "daytime"):
        assert matrix.count(f'name="sleep.{row}"') == 3
    assert 'aria-label="入睡：差"' in matrix
    photo = card(html, "wound_photo")
    assert 'accept="image/jpeg,image/png,image/webp" capture="environment"' in photo
    assert re.search(r'<input type="file" id="i-wound_photo-album"[^>]* multiple>', photo)
    signature = card(html, "signature")
    assert '<canvas class="pad-canvas"' in signature
    assert "清除" in signature
    assert 'type="file" id="i-signature" name="signature" accept="image/png"' in signature
    for upload in (photo, signature):
        assert "disabled" not in upload
        assert "即将开放" not in upload
    # Without the script the files post with the form.
    assert 'enctype="multipart/form-data"' in html
    assert 'type="text"' in card(html, "summary")
    assert '<textarea id="i-story" name="story" maxlength="2000"' in card(html, "story")
    section = card(html, "welcome")
    assert "<h2>填写说明</h2>" in section
    assert "<input" not in section
    assert "<select" not in section


def test_sections_take_no_number_and_every_question_one() -> None:
    numbers = question_numbers(DEMO)

    assert "welcome" not in numbers
    assert sorted(numbers.values()) == list(range(1, len(DEMO.questions)))


def test_conditional_questions_carry_a_note_instead_of_a_marker() -> None:
    html = render(DEMO)

    assert "（如适用）" not in html
    for qid in ("temperature", "fever_since", "wound_photo"):
        assert "根据您前面的回答，此题可能无需填写" in card(html, qid)
    assert "此题可能无需填写" not in card(html, "overall")
    # Required when shown: the marker says so.
    assert 'class="req"' in card(html, "temperature")


def test_errors_sit_at_their_key_and_values_are_kept() -> None:
    raw = {
        "willing": ["yes"],
        "overall": ["fair"],
        "symptoms": ["other", "wound"],
        "department": ["surgery"],
        "pain_site": ["limbs", "upper"],
        "has_fever": ["yes"],
        "temperature": ["50"],
        "fever_since": ["2026-02-30"],
        "medicine_time": ["25:00"],
        "pain": ["3"],
        "stars": ["4"],
        "recommend": ["10"],
        "sleep.waking": ["bad"],
        "summary": ["还好"],
        "story": ["第一行\n第二行"],
        "signature": [REF],
    }
    html = render(DEMO, raw)

    assert "有 7 个问题需要修改" in html
    symptoms = card(html, "symptoms")
    assert 'id="err-symptoms.other">请注明其他内容<' in symptoms
    assert 'value="wound" checked' in symptoms
    assert 'value="other" checked' in symptoms
    cascade = card(html, "pain_site")
    assert "请选择到最后一级" in cascade
    assert '<option value="limbs" selected>' in cascade
    assert '<option value="upper" selected>' in cascade
    temperature = card(html, "temperature")
    assert "数值超出允许范围" in temperature
    assert 'value="50"' in temperature
    assert "请按“年-月-日”格式填写日期" in card(html, "fever_since")
    assert 'value="2026-02-30"' in card(html, "fever_since")
    assert "请按“时:分”格式填写时间" in card(html, "medicine_time")
    assert 'value="25:00"' in card(html, "medicine_time")
    assert 'value="3" checked' in card(html, "pain")
    assert 'value="4" checked' in card(html, "stars")
    assert 'value="10" checked' in card(html, "recommend")
    assert '<option value="surgery" selected>' in card(html, "department")
    assert 'value="fair" checked' in card(html, "overall")
    matrix = card(html, "sleep")
    for row, text in (("falling_asleep", "入睡"), ("daytime", "白天精神")):
        row_html = matrix[matrix.index(f'id="r-sleep-{row}"') :]
        row_html = row_html[: row_html.index("</tr>")]
        assert 'class="has-error"' in row_html
        assert f"{text}<div" in row_html
        assert "请回答这一行" in row_html
    waking = matrix[matrix.index('id="r-sleep-waking"') :]
    waking = waking[: waking.index("</tr>")]
    assert "请回答这一行" not in waking
    assert 'value="bad" aria-label="夜间醒来：差" checked' in waking
    assert 'value="还好"' in card(html, "summary")
    assert ">第一行\n第二行</textarea>" in card(html, "story")
    # A good upload reference is posted again; there is no error at the signature.
    signature = card(html, "signature")
    assert f'<input type="checkbox" name="signature" value="{REF}" checked>' in signature
    assert "has-error" not in signature.split(">", 1)[0]
    # Questions without errors are not marked.
    assert 'class="error"' not in card(html, "willing")


def test_a_required_upload_is_asked_for_like_any_question() -> None:
    html = render(DEMO, {"willing": ["yes"], "signature": ["not-a-reference"]})

    signature = card(html, "signature")
    assert "上传的文件无效，请重新上传" in signature
    assert "not-a-reference" not in signature  # a bad reference is not carried over
    html = render(DEMO, {"willing": ["yes"]})
    assert "请回答此题" in card(html, "signature")


def test_a_kept_upload_is_shown_through_its_link() -> None:
    env = page_environment(ZoneInfo("Asia/Shanghai"))
    raw = {"willing": ["yes"], "wound_photo": [REF]}
    _, errors = check_answers(DEMO, raw)
    html = env.get_template("form.html").render(
        hospital_name="测试医院",
        hospital_phone="0571-00000000",
        valid_until=datetime(2026, 3, 1, 8, tzinfo=UTC),
        **form_context(
            DEMO, raw, errors, upload_path="/p/tok/uploads", file_urls={REF: "/files/x?sig=y"}
        ),
    )

    photo = card(html, "wound_photo")
    assert '<img src="/files/x?sig=y" alt="已上传的照片">' in photo
    assert f'value="{REF}" checked' in photo
    assert 'data-upload-path="/p/tok/uploads"' in html


def test_upload_errors_say_the_question_limits() -> None:
    texts = error_texts(
        DEMO,
        [
            AnswerError("wound_photo", "file_too_large"),
            AnswerError("signature", "file_type_not_accepted"),
        ],
    )

    assert texts == {
        "wound_photo": "文件过大，请选择不超过 10 MB 的图片",
        "signature": "不支持此文件格式，请选择 PNG 格式的图片",
    }


def test_stale_keys_are_said_once_at_the_top() -> None:
    html = render(DEMO, {"willing": ["no"], "gone": ["x"]})

    assert "有 1 个问题需要修改" in html
    top = html[html.index('role="alert"') : html.index('id="answers"')]
    assert "提交的内容与问卷不符" in top


def test_matrix_and_upload_error_texts() -> None:
    texts = error_texts(
        DEMO,
        [
            AnswerError("sleep", "required", "waking"),
            AnswerError("sleep", "invalid_option", "daytime"),
            AnswerError("signature", "required"),
            AnswerError("wound_photo", "too_many_files"),
            AnswerError("pain_site", "incomplete"),
            AnswerError("sleep", "incomplete"),
        ],
    )

    assert texts == {
        "sleep.waking": "请回答这一行",
        "sleep.daytime": "请从给出的选项中选择",
        "signature": "请回答此题",
        "wound_photo": "最多上传 3 个文件",
        "pain_site": "请选择到最后一级",
        "sleep": "请回答每一行",
    }


def test_cascade_levels_group_options_by_parent() -> None:
    question = DEMO.question("pain_site")
    assert question is not None
    levels = cascade_levels(question)

    assert [[g.label for g in level] for level in levels] == [
        [None],
        ["头颈部", "躯干", "四肢"],
        ["四肢 › 上肢", "四肢 › 下肢"],
    ]
    upper = levels[2][0]
    assert upper.parents == ("limbs", "upper")
    assert upper.chosen(["limbs", "upper", "hand"], 2) == "hand"
    assert upper.chosen(["limbs", "lower", "knee"], 2) is None
    # The same value under another parent is not this group's choice.
    assert levels[1][0].chosen(["trunk", "head"], 1) is None


def test_kept_uploads_only_for_upload_questions() -> None:
    photo, text = DEMO.question("wound_photo"), DEMO.question("summary")
    assert photo is not None
    assert text is not None

    assert kept_uploads(photo, [REF, "upl_short", "x"]) == [REF]
    assert kept_uploads(text, [REF]) == []


@pytest.mark.parametrize("form_id", sorted(FORMS))
def test_logic_for_the_script_is_strict_json(form_id: str) -> None:
    form = FORMS[form_id]
    logic: dict[str, Any] = json.loads(json.dumps(form_logic(form), allow_nan=False))

    assert [q["id"] for q in logic["questions"]] == [q.id for q in form.questions]
    for entry, question in zip(logic["questions"], form.questions, strict=True):
        for key, source in (("show", question.show_if), ("end", question.end_if)):
            expected = expression_tree(compile_expression(source)) if source else None
            assert entry[key] == expected
        assert entry["ends"] == [o.value for o in question.options if o.ends_form]


def test_the_script_is_included_as_written() -> None:
    # The script is included through Jinja: it must hold nothing Jinja would read as its own.
    script = (TEMPLATES_DIR / "pages" / "form_logic.js").read_text(encoding="utf-8")
    for delimiter in ("{{", "{%", "{#"):
        assert delimiter not in script
    assert script.strip() in render(DEMO)


def test_logic_json_cannot_close_the_script_element() -> None:
    # Cascade labels travel in the JSON the script reads.
    form = FormDefinition.model_validate(
        {
            "id": "f",
            "version": 1,
            "title": "t",
            "questions": [
                {
                    "id": "q",
                    "type": "cascade",
                    "text": "?",
                    "options": [
                        {"value": "a", "label": "</script><b>x", "children": [
                            {"value": "b", "label": "<!--"}
                        ]},
                        {"value": "c", "label": "C"},
                    ],
                }
            ],
        }
    )  # fmt: skip

    html = render(form)

    logic = html[html.index('id="form-logic">') :]
    logic = logic[: logic.index("</script>")]
    assert "</script" not in logic.lower()


@pytest.mark.parametrize("form_id", sorted(FORMS))
def test_every_shipped_form_renders_a_card_per_question(form_id: str) -> None:
    form = FORMS[form_id]

    html = render(form)

    for question in form.questions:
        assert f'id="q-{question.id}"' in html
    assert "（如适用）" not in html
