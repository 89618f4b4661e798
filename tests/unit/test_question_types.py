"""Every question type: what a valid answer becomes, the code of each kind of bad answer, the
definitions refused (with their message), show_if and skipping to the end, and the scales
shipped in the library scored as published."""

from __future__ import annotations

import base64
import contextlib
import json
from pathlib import Path
from typing import Any, get_args

import pytest
from pydantic import ValidationError

from pathways.answers import (
    AnswerError,
    abnormal_findings,
    answer_keys,
    answer_values,
    check_answers,
    compute_scores,
)
from pathways.form_definition import FormDefinition, QuestionType
from pathways.library import LIBRARY_ROOT, load_forms

FORMS = load_forms()
DEMO = FORMS["all-question-types"]
REF = "upl_" + "A" * 16 + "b-_9" * 4
REF2 = "upl_" + "z" * 32
THREE = [{"value": v, "label": v.upper()} for v in ("a", "b", "c")]


def form(*questions: dict[str, Any], **extra: Any) -> FormDefinition:
    return FormDefinition.model_validate(
        {"id": "f", "version": 1, "title": "t", "questions": list(questions), **extra}
    )


def question(kind: str, qid: str = "q", **fields: Any) -> dict[str, Any]:
    return {"id": qid, "type": kind, "text": "?", **fields}


def codes(f: FormDefinition, raw: dict[str, list[str]]) -> list[tuple[str, str]]:
    _, errors = check_answers(f, raw)
    return [(e.key, e.code) for e in errors]


def refused(match: str, *questions: dict[str, Any], **extra: Any) -> None:
    with pytest.raises(ValidationError, match=match):
        form(*questions, **extra)


# ---- the shipped library ----------------------------------------------------------------------


def test_every_shipped_form_loads() -> None:
    files = sorted((LIBRARY_ROOT / "forms").glob("*.yaml"))
    assert len(FORMS) == len(files)
    assert {"phq-9", "gad-7", "pain-nrs", "all-question-types"} <= set(FORMS)


def test_the_demonstration_form_uses_every_type() -> None:
    types = {q.type for q in DEMO.questions}
    assert types == set(get_args(QuestionType))
    assert any(q.show_if for q in DEMO.questions)
    assert any(q.end_if for q in DEMO.questions)
    assert any(o.ends_form for q in DEMO.questions for o in q.options)
    assert any(o.other for q in DEMO.questions for o in q.options)


def _recorded_forms() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    def scan(node: Any) -> None:
        if isinstance(node, dict):
            if {"id", "version", "questions"} <= node.keys():
                found.append(node)
            data = node.get("data")
            if isinstance(data, str):
                with contextlib.suppress(ValueError):
                    scan(json.loads(base64.b64decode(data)))
            for value in node.values():
                scan(value)
        elif isinstance(node, list):
            for value in node:
                scan(value)

    histories = Path(__file__).parents[1] / "workflows" / "histories"
    for path in sorted(histories.glob("*.json")):
        scan(json.loads(path.read_text()))
    return found


def _restrict(new: Any, old: Any) -> Any:
    if isinstance(old, dict):
        return {k: _restrict(new[k], v) for k, v in old.items()}
    if isinstance(old, list):
        return [_restrict(n, o) for n, o in zip(new, old, strict=True)]
    return new


def test_forms_in_recorded_histories_load_unchanged() -> None:
    recorded = _recorded_forms()
    assert recorded
    for data in recorded:
        dumped = FormDefinition.model_validate(data).model_dump(mode="json")
        assert _restrict(dumped, data) == data  # the fields added since only add defaults


# ---- choices: single, dropdown, yes_no, multiple with other --------------------------------


def test_dropdown_is_a_single_choice() -> None:
    f = form(question("dropdown", options=THREE))
    assert check_answers(f, {"q": [" b "]}) == ({"q": ["b"]}, [])
    assert codes(f, {"q": ["a", "b"]}) == [("q", "single_only")]
    assert codes(f, {"q": ["x"]}) == [("q", "invalid_option")]
    assert codes(f, {}) == [("q", "required")]


def test_yes_no_defaults_and_abnormal_answer() -> None:
    plain = form(question("yes_no"))
    assert [(o.value, o.label) for o in plain.questions[0].options] == [("yes", "是"), ("no", "否")]
    assert check_answers(plain, {"q": ["no"]}) == ({"q": ["no"]}, [])
    assert codes(plain, {"q": ["maybe"]}) == [("q", "invalid_option")]
    assert codes(plain, {"q": ["yes", "no"]}) == [("q", "single_only")]
    flagged = form(
        question(
            "yes_no",
            options=[
                {"value": "yes", "label": "是", "abnormal": True},
                {"value": "no", "label": "否"},
            ],
        )
    )
    assert [f.value for f in abnormal_findings(flagged, {"q": ["yes"]})] == ["yes"]
    assert abnormal_findings(flagged, {"q": ["no"]}) == []
    assert answer_values(flagged, {"q": ["yes"]}) == {"q": "yes"}


OTHER = question(
    "multiple_choice",
    options=[
        {"value": "fever", "label": "发热"},
        {"value": "other", "label": "其他", "other": True, "abnormal": True},
        {"value": "none", "label": "无", "exclusive": True},
    ],
    other_max_length=10,
)


def test_other_option_requires_its_specification() -> None:
    f = form(OTHER)
    assert answer_keys(f) == {"q", "q.other"}
    answers, errors = check_answers(f, {"q": ["fever", "other"], "q.other": [" 头晕 "]})
    assert errors == []
    assert answers == {"q": ["fever", "other"], "q.other": ["头晕"]}
    assert codes(f, {"q": ["other"]}) == [("q.other", "specify_required")]
    assert codes(f, {"q": ["other"], "q.other": ["  "]}) == [("q.other", "specify_required")]
    assert codes(f, {"q": ["other"], "q.other": ["字" * 11]}) == [("q.other", "too_long")]
    assert codes(f, {"q": ["other"], "q.other": ["a\x00b"]}) == [("q.other", "invalid_text")]
    _, errors = check_answers(f, {"q": ["other"]})
    assert errors == [AnswerError("q", "specify_required", "other")]
    # Specified without choosing "other": nothing to keep.
    assert check_answers(f, {"q": ["fever"], "q.other": ["x"]}) == ({"q": ["fever"]}, [])
    assert codes(f, {"q": ["fever"], "q.else": ["x"]}) == [("q.else", "unknown_question")]
    assert [x.value for x in abnormal_findings(f, answers)] == ["other"]


def test_other_option_on_a_single_choice() -> None:
    f = form(
        question("single_choice", options=[*THREE, {"value": "o", "label": "O", "other": True}])
    )
    assert check_answers(f, {"q": ["o"], "q.o": ["x"]}) == ({"q": ["o"], "q.o": ["x"]}, [])


# ---- cascade --------------------------------------------------------------------------------

CASCADE = question(
    "cascade",
    options=[
        {
            "value": "limbs",
            "label": "四肢",
            "score": 1,
            "children": [
                {
                    "value": "upper",
                    "label": "上肢",
                    "children": [
                        {"value": "hand", "label": "手", "score": 2, "abnormal": True},
                        {"value": "upper", "label": "上臂"},
                    ],
                },
                {"value": "lower", "label": "下肢"},
            ],
        },
        {"value": "none", "label": "无", "score": 0},
    ],
)


def test_cascade_answer_is_the_path_to_a_leaf() -> None:
    f = form(CASCADE, scores={"site": "q"})
    assert check_answers(f, {"q": ["limbs", "upper", "hand"]}) == (
        {"q": ["limbs", "upper", "hand"]},
        [],
    )
    # A value may repeat at another level: the path is not deduplicated.
    assert check_answers(f, {"q": ["limbs", "upper", "upper"]}) == (
        {"q": ["limbs", "upper", "upper"]},
        [],
    )
    assert check_answers(f, {"q": ["none"]}) == ({"q": ["none"]}, [])
    assert codes(f, {"q": ["limbs", "upper"]}) == [("q", "incomplete")]
    assert codes(f, {"q": ["limbs", "hand"]}) == [("q", "invalid_option")]
    assert codes(f, {"q": ["upper", "hand"]}) == [("q", "invalid_option")]
    assert codes(f, {"q": ["none", "x"]}) == [("q", "invalid_option")]
    assert codes(f, {"q": ["limbs", "lower", "x"]}) == [("q", "invalid_option")]
    answers = {"q": ["limbs", "upper", "hand"]}
    assert [(x.value, x.label) for x in abnormal_findings(f, answers)] == [("hand", "手")]
    assert compute_scores(f, answers) == {"site": 3.0}  # the points along the path
    assert answer_values(f, answers) == {"q": ["limbs", "upper", "hand"]}


def test_cascade_definition_limits() -> None:
    def nest(depth: int) -> list[dict[str, Any]]:
        leaf: list[dict[str, Any]] = [{"value": "a", "label": "A"}, {"value": "b", "label": "B"}]
        for _ in range(depth - 1):
            leaf = [{"value": "a", "label": "A", "children": leaf}, {"value": "b", "label": "B"}]
        return leaf

    form(question("cascade", options=nest(4)))
    refused(
        "a cascade question's options nest at most 4 levels", question("cascade", options=nest(5))
    )
    refused(
        "option values under 'x' must be unique, repeated: y",
        question(
            "cascade",
            options=[
                {"value": "x", "label": "X", "children": [{"value": "y", "label": "Y"}] * 2},
                {"value": "z", "label": "Z"},
            ],
        ),
    )
    refused(
        "only cascade questions have options with 'children'",
        question("single_choice", options=[{**THREE[0], "children": THREE}, *THREE[1:]]),
    )


# ---- text -------------------------------------------------------------------------------------


def test_short_and_long_text() -> None:
    f = form(question("text", "short"), question("long_text", "long"))
    assert f.questions[0].max_length == 500
    assert f.questions[1].max_length == 2000
    answers, errors = check_answers(f, {"short": [" 好 "], "long": ["第一行\n第二行"]})
    assert errors == []
    assert answers == {"short": ["好"], "long": ["第一行\n第二行"]}
    assert codes(f, {"short": ["字" * 501], "long": ["字" * 2000]}) == [("short", "too_long")]
    assert codes(f, {"short": ["a"], "long": ["字" * 2001]}) == [("long", "too_long")]
    assert codes(f, {"short": ["a\x07"], "long": ["b"]}) == [("short", "invalid_text")]
    assert form(question("long_text", max_length=5000)).questions[0].max_length == 5000


# ---- number -----------------------------------------------------------------------------------


def test_number_range_unit_and_abnormal_threshold() -> None:
    f = form(question("number", minimum=35, maximum=43, unit="℃", abnormal_at_least=39))
    assert check_answers(f, {"q": ["38.50"]}) == ({"q": ["38.5"]}, [])
    assert codes(f, {"q": ["热"]}) == [("q", "not_a_number")]
    assert codes(f, {"q": ["nan"]}) == [("q", "not_a_number")]
    assert codes(f, {"q": ["inf"]}) == [("q", "not_a_number")]
    assert codes(f, {"q": ["44"]}) == [("q", "out_of_range")]
    assert [(x.value, x.label) for x in abnormal_findings(f, {"q": ["39.2"]})] == [
        ("39.2", "39.2℃")
    ]
    assert abnormal_findings(f, {"q": ["38.9"]}) == []
    low = form(question("number", abnormal_at_most=3.9, unit="mmol/L"))
    assert [x.label for x in abnormal_findings(low, {"q": ["2.8"]})] == ["2.8mmol/L"]


# ---- date and time ---------------------------------------------------------------------------


def test_date() -> None:
    f = form(question("date", min_date="2026-01-01", max_date="2026-12-31"))
    assert check_answers(f, {"q": ["2026-03-01"]}) == ({"q": ["2026-03-01"]}, [])
    for bad in ("2026-3-1", "2026/03/01", "2026-02-30", "昨天", "20260301"):
        assert codes(f, {"q": [bad]}) == [("q", "not_a_date")], bad
    assert codes(f, {"q": ["2025-12-31"]}) == [("q", "date_out_of_range")]
    assert codes(f, {"q": ["2027-01-01"]}) == [("q", "date_out_of_range")]
    assert codes(f, {"q": ["2026-03-01", "2026-03-02"]}) == [("q", "single_only")]
    birth = form(question("date"))
    assert check_answers(birth, {"q": ["1950-06-01"]})[1] == []
    assert codes(birth, {"q": ["1850-06-01"]}) == [("q", "date_out_of_range")]
    refused(
        "min_date is after max_date", question("date", min_date="2026-02-01", max_date="2026-01-01")
    )


def test_time() -> None:
    f = form(question("time"))
    assert check_answers(f, {"q": ["08:30"]}) == ({"q": ["08:30"]}, [])
    assert check_answers(f, {"q": ["23:59"]})[1] == []
    for bad in ("8:30", "24:00", "12:60", "08:30:00", "早上"):
        assert codes(f, {"q": [bad]}) == [("q", "not_a_time")], bad


# ---- rating ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scale", "low", "high"), [("stars5", 1, 5), ("nps", 0, 10), ("pain", 0, 10)]
)
def test_rating_scales(scale: str, low: int, high: int) -> None:
    f = form(question("rating", scale=scale), scores={"points": "q * 2"})
    assert check_answers(f, {"q": [str(low)]}) == ({"q": [str(low)]}, [])
    assert check_answers(f, {"q": [f"{high}.0"]}) == ({"q": [str(high)]}, [])
    assert codes(f, {"q": [str(low - 1)]}) == [("q", "out_of_range")]
    assert codes(f, {"q": [str(high + 1)]}) == [("q", "out_of_range")]
    assert codes(f, {"q": ["3.5"]}) == [("q", "not_a_whole_number")]
    assert codes(f, {"q": ["很好"]}) == [("q", "not_a_number")]
    assert codes(f, {"q": ["1", "2"]}) == [("q", "single_only")]
    assert compute_scores(f, {"q": ["3"]}) == {"points": 6.0}  # its number is its score
    assert answer_values(f, {"q": ["3"]}) == {"q": 3.0}


def test_rating_threshold_marks_abnormal() -> None:
    f = FORMS["pain-nrs"]
    assert [(x.value, x.label) for x in abnormal_findings(f, {"intensity": ["7"]})] == [
        ("7", "7分")
    ]
    assert abnormal_findings(f, {"intensity": ["6"]}) == []
    refused("a rating question needs a scale", question("rating"))
    refused(
        "abnormal_at_least must be within the stars5 scale, 1 to 5",
        question("rating", scale="stars5", abnormal_at_least=7),
    )


@pytest.mark.parametrize(
    ("intensity", "level"),
    [("0", 0.0), ("1", 1.0), ("3", 1.0), ("4", 2.0), ("6", 2.0), ("7", 3.0), ("10", 3.0)],
)
def test_pain_nrs_levels(intensity: str, level: float) -> None:
    f = FORMS["pain-nrs"]
    answers, errors = check_answers(f, {"intensity": [intensity]})
    assert errors == []
    assert compute_scores(f, answers) == {"nrs": float(intensity), "pain_level": level}


# ---- matrix ----------------------------------------------------------------------------------

MATRIX = question(
    "matrix",
    "sleep",
    rows=[{"id": "onset", "text": "入睡"}, {"id": "waking", "text": "夜醒"}],
    options=[
        {"value": "good", "label": "好", "score": 0},
        {"value": "bad", "label": "差", "score": 2, "abnormal": True},
    ],
)


def test_matrix_rows() -> None:
    f = form(MATRIX, scores={"total": "sleep", "onset_points": "sleep__onset"})
    assert answer_keys(f) == {"sleep", "sleep.onset", "sleep.waking"}
    raw = {"sleep.onset": ["bad"], "sleep.waking": ["good"]}
    answers, errors = check_answers(f, raw)
    assert errors == []
    assert answers == raw
    assert codes(f, {"sleep.onset": ["bad"]}) == [("sleep.waking", "required")]
    assert codes(f, {"sleep.onset": ["bad", "good"], "sleep.waking": ["x"]}) == [
        ("sleep.onset", "single_only"),
        ("sleep.waking", "invalid_option"),
    ]
    assert codes(f, {**raw, "sleep": ["good"]}) == [("sleep", "not_answerable")]
    assert codes(f, {**raw, "sleep.other": ["good"]}) == [("sleep.other", "unknown_question")]
    assert compute_scores(f, answers) == {"total": 2.0, "onset_points": 2.0}
    assert answer_values(f, answers) == {
        "sleep__onset": "bad",
        "sleep__waking": "good",
        "sleep": ["bad", "good"],
    }
    findings = abnormal_findings(f, answers)
    assert [(x.question_id, x.question, x.value) for x in findings] == [
        ("sleep.onset", "?：入睡", "bad")
    ]
    assert "sleep__onset" in f.names()


def test_optional_matrix_takes_some_rows() -> None:
    f = form({**MATRIX, "required": False})
    assert check_answers(f, {"sleep.waking": ["good"]}) == ({"sleep.waking": ["good"]}, [])
    assert check_answers(f, {}) == ({}, [])


def test_matrix_definitions_refused() -> None:
    refused("a matrix question needs at least one row", {**MATRIX, "rows": []})
    refused(
        "row ids must be unique, repeated: onset",
        {**MATRIX, "rows": [{"id": "onset", "text": "x"}] * 2},
    )
    refused(
        "a matrix question needs a scale of at least two options", {**MATRIX, "options": THREE[:1]}
    )
    refused(
        "'ends_form' does not apply to a matrix scale",
        {**MATRIX, "options": [*THREE, {"value": "e", "label": "E", "ends_form": True}]},
    )
    refused(
        "matrix row names clash with questions or scores: sleep__onset",
        MATRIX,
        question("text", "sleep__onset"),
    )
    refused(
        "'rows' only applies to matrix questions",
        question("single_choice", options=THREE, rows=[{"id": "r", "text": "R"}]),
    )


# ---- uploads ---------------------------------------------------------------------------------


def test_photo() -> None:
    f = form(question("photo", max_files=2))
    q = f.questions[0]
    assert (q.max_files, q.max_bytes) == (2, 10 * 1024 * 1024)
    assert q.content_types == ["image/jpeg", "image/png", "image/webp"]
    assert check_answers(f, {"q": [REF, REF2]}) == ({"q": [REF, REF2]}, [])
    assert check_answers(f, {"q": [REF, REF]}) == ({"q": [REF]}, [])
    assert codes(f, {"q": [REF, REF2, "upl_" + "c" * 32]}) == [("q", "too_many_files")]
    for bad in (
        "upl_short",
        "../../etc/passwd",
        "UPL_" + "a" * 32,
        REF + "x",
        "upl_" + "a" * 31 + "/",
    ):
        assert codes(f, {"q": [bad]}) == [("q", "not_an_upload")], bad
    assert answer_values(f, {"q": [REF, REF2]}) == {"q": [REF, REF2]}


def test_signature() -> None:
    f = form(question("signature"))
    q = f.questions[0]
    assert (q.max_files, q.max_bytes, q.content_types) == (1, 1024 * 1024, ["image/png"])
    assert check_answers(f, {"q": [REF]}) == ({"q": [REF]}, [])
    assert codes(f, {"q": [REF, REF2]}) == [("q", "too_many_files")]
    assert codes(f, {"q": ["签名"]}) == [("q", "not_an_upload")]
    assert codes(f, {}) == [("q", "required")]


def test_upload_definitions_refused() -> None:
    refused("less than or equal to 5", question("photo", max_files=6))
    refused("greater than or equal to 1", question("photo", max_files=0))
    refused("less than or equal to 20971520", question("photo", max_bytes=30 * 1024 * 1024))
    refused("image/jpeg", question("photo", content_types=["application/pdf"]))
    refused("content types must be unique", question("photo", content_types=["image/png"] * 2))
    refused("a signature is exactly one file", question("signature", max_files=2))
    refused("a signature is a PNG image", question("signature", content_types=["image/jpeg"]))
    refused("'max_files' only applies to photo, signature questions", question("text", max_files=1))
    form(question("photo", max_files=5, max_bytes=1024, content_types=["image/png"]))


# ---- section ---------------------------------------------------------------------------------


def test_section_is_display_only() -> None:
    f = form(question("section", "intro", description="说明"), question("text", "t"))
    assert f.questions[0].required is False
    assert check_answers(f, {"t": ["x"]}) == ({"t": ["x"]}, [])
    assert codes(f, {"intro": ["x"], "t": ["x"]}) == [("intro", "not_answerable")]
    assert "intro" not in f.names()
    refused("a section is display only and cannot be required", question("section", required=True))
    refused("a section question takes no options", question("section", options=THREE))


# ---- definitions refused with a precise message ----------------------------------------------


def flagged(*flags: str) -> list[dict[str, Any]]:
    return [{**THREE[0], **dict.fromkeys(flags, True)}, *THREE[1:]]


@pytest.mark.parametrize(
    ("match", "definition"),
    [
        ("a date question takes no options", question("date", options=THREE)),
        ("a choice question needs at least two options", question("dropdown", options=THREE[:1])),
        (
            "'exclusive' only applies to multiple-choice options",
            question("dropdown", options=flagged("exclusive")),
        ),
        (
            "'other' only applies to single, multiple choice and dropdown options",
            question("cascade", options=flagged("other")),
        ),
        (
            "only one option may be marked 'other'",
            question("multiple_choice", options=[{**o, "other": True} for o in THREE]),
        ),
        (
            "an 'other' option cannot also be 'exclusive'",
            question("multiple_choice", options=flagged("other", "exclusive")),
        ),
        (
            "a yes_no question's options are exactly 'yes' and 'no'",
            question("yes_no", options=THREE[:2]),
        ),
        ("'scale' only applies to rating questions", question("number", scale="nps")),
        ("'min_date' only applies to date questions", question("time", min_date="2026-01-01")),
        (
            "'abnormal_at_least' only applies to number, rating questions",
            question("date", abnormal_at_least=1),
        ),
        (
            "'minimum' only applies to number, text questions",
            question("rating", scale="nps", minimum=1),
        ),
        ("show_if: does not parse", question("text", show_if="a >")),
        ("end_if: only these functions", question("text", end_if="open(q)")),
        ("Input should be", question("slider")),
    ],
)
def test_bad_questions_are_refused(match: str, definition: dict[str, Any]) -> None:
    refused(match, definition)


def test_expressions_may_only_look_back() -> None:
    refused(
        "question 'a' show_if refers to b, which are not earlier questions",
        question("text", "a", show_if="b == 'x'"),
        question("text", "b"),
    )
    refused(
        "question 'b' end_if refers to c, which are not earlier questions",
        question("text", "a"),
        question("text", "b", end_if="c == 'x'"),
        question("text", "c"),
    )
    form(question("text", "a"), question("text", "b", end_if="b == 'x' or a == 'y'"))
    refused(
        "score 'total' refers to nope, which are not questions or scores listed before it",
        question("number", "a"),
        scores={"total": "sum(a, nope)"},
    )
    refused("score 'total': does not parse", question("number", "a"), scores={"total": "a +"})
    form(question("number", "a"), scores={"total": "a * 2", "band": "band(total, 5)"})


# ---- show_if over the new types, and skipping to the end -------------------------------------


@pytest.mark.parametrize(
    ("first", "answer", "condition"),
    [
        (question("yes_no", "a"), ["yes"], "a == 'yes'"),
        (question("rating", "a", scale="pain"), ["8"], "a >= 7"),
        (question("date", "a"), ["2026-05-01"], "a >= '2026-04-01'"),
        (question("time", "a"), ["21:30"], "a > '20:00'"),
        (question("dropdown", "a", options=THREE), ["b"], "a == 'b'"),
        (question("cascade", "a", options=CASCADE["options"]), ["limbs", "lower"], "'lower' in a"),
        (question("photo", "a", max_files=3), [REF, REF2], "len(a) >= 2"),
        (question("long_text", "a"), ["很长"], "len(a) > 1"),
    ],
)
def test_show_if_sees_each_type(first: dict[str, Any], answer: list[str], condition: str) -> None:
    f = form({**first, "required": False}, question("text", "b", show_if=condition))
    assert codes(f, {"a": answer}) == [("b", "required")]  # shown, so required
    assert check_answers(f, {"b": ["kept"]}) == ({}, [])  # hidden: neither required nor kept


def test_show_if_sees_a_matrix_row() -> None:
    f = form(MATRIX, question("text", "b", show_if="sleep__onset == 'bad'"))
    assert codes(f, {"sleep.onset": ["bad"], "sleep.waking": ["good"]}) == [("b", "required")]
    answers, errors = check_answers(
        f, {"sleep.onset": ["good"], "sleep.waking": ["good"], "b": ["x"]}
    )
    assert errors == []
    assert "b" not in answers


def test_an_option_can_end_the_form() -> None:
    f = form(
        question(
            "yes_no",
            "willing",
            options=[
                {"value": "yes", "label": "是"},
                {"value": "no", "label": "否", "ends_form": True},
            ],
        ),
        question("text", "a"),
        MATRIX,
    )
    # Ended: later questions are not required, and their answers are discarded.
    assert check_answers(f, {"willing": ["no"], "a": ["x"], "sleep.onset": ["bad"]}) == (
        {"willing": ["no"]},
        [],
    )
    assert codes(f, {"willing": ["yes"]}) == [
        ("a", "required"), ("sleep.onset", "required"), ("sleep.waking", "required"),
    ]  # fmt: skip


def test_a_cascade_node_can_end_the_form() -> None:
    options = [
        {"value": "x", "label": "X", "children": [{"value": "y", "label": "Y"}], "ends_form": True},
        {"value": "z", "label": "Z"},
    ]
    f = form(question("cascade", options=options), question("text", "after"))
    assert check_answers(f, {"q": ["x", "y"]}) == ({"q": ["x", "y"]}, [])
    assert codes(f, {"q": ["z"]}) == [("after", "required")]


def test_end_if_ends_the_form() -> None:
    f = form(question("rating", "pain", scale="pain", end_if="pain >= 9"), question("text", "more"))
    assert check_answers(f, {"pain": ["9"], "more": ["x"]}) == ({"pain": ["9"]}, [])
    assert codes(f, {"pain": ["8"]}) == [("more", "required")]
    # An invalid answer does not end the form.
    assert codes(f, {"pain": ["11"]}) == [("pain", "out_of_range"), ("more", "required")]


def test_a_hidden_question_does_not_end_the_form() -> None:
    f = form(
        question("yes_no", "a"),
        question("text", "b", show_if="a == 'yes'", end_if="True"),
        question("text", "c"),
    )
    assert codes(f, {"a": ["no"]}) == [("c", "required")]
    assert codes(f, {"a": ["yes"], "b": ["x"]}) == []


def test_the_demonstration_form() -> None:
    complete = {
        "willing": ["yes"],
        "overall": ["poor"],
        "symptoms": ["wound", "other"],
        "symptoms.other": ["头晕"],
        "department": ["orthopedics"],
        "pain_site": ["limbs", "lower", "knee"],
        "has_fever": ["yes"],
        "temperature": ["39.5"],
        "fever_since": ["2026-03-01"],
        "pain": ["7"],
        "stars": ["4"],
        "recommend": ["9"],
        "sleep.falling_asleep": ["bad"],
        "sleep.waking": ["fair"],
        "sleep.daytime": ["good"],
        "wound_photo": [REF, REF2],
        "signature": [REF],
    }
    answers, errors = check_answers(DEMO, complete)
    assert errors == []
    assert answers == complete
    assert compute_scores(DEMO, answers) == {"sleep_total": 3.0, "pain_level": 3.0}
    assert [x.label for x in abnormal_findings(DEMO, answers)] == [
        "较差", "伤口红肿、渗液", "是", "39.5℃", "7分", "差",
    ]  # fmt: skip
    assert check_answers(DEMO, {"willing": ["no"]}) == ({"willing": ["no"]}, [])
    ended, errors = check_answers(DEMO, {**complete, "pain": ["9"]})
    assert errors == []
    assert "signature" not in ended
    assert ended["pain"] == ["9"]
    no_wound = {k: v for k, v in complete.items() if k != "wound_photo"}
    assert check_answers(DEMO, {**no_wound, "symptoms": ["none"]})[1] == []
    assert codes(DEMO, no_wound) == [("wound_photo", "required")]


# ---- PHQ-9 and GAD-7 scored as published ------------------------------------------------------

FREQUENCY = ["not_at_all", "several_days", "more_than_half", "nearly_every_day"]


def scale_answers(points: list[int]) -> dict[str, list[str]]:
    return {f"q{i}": [FREQUENCY[p]] for i, p in enumerate(points, start=1)}


@pytest.mark.parametrize(
    ("points", "total", "severity"),
    [
        ([0, 0, 0, 0, 0, 0, 0, 0, 0], 0, 0),  # minimal
        ([1, 1, 1, 1, 0, 0, 0, 0, 0], 4, 0),
        ([1, 1, 1, 1, 1, 0, 0, 0, 0], 5, 1),  # mild
        ([2, 2, 1, 1, 1, 1, 1, 0, 0], 9, 1),
        ([2, 2, 2, 2, 1, 1, 0, 0, 0], 10, 2),  # moderate
        ([3, 3, 2, 2, 2, 1, 1, 0, 0], 14, 2),
        ([3, 3, 3, 2, 2, 1, 1, 0, 0], 15, 3),  # moderately severe
        ([3, 3, 3, 3, 2, 2, 2, 1, 0], 19, 3),
        ([3, 3, 3, 3, 2, 2, 2, 1, 1], 20, 4),  # severe
        ([3, 3, 3, 3, 3, 3, 3, 3, 3], 27, 4),
    ],
)
def test_phq9_total_and_severity(points: list[int], total: int, severity: int) -> None:
    f = FORMS["phq-9"]
    answers, errors = check_answers(f, scale_answers(points))
    assert errors == []  # item 10 (difficulty) is optional
    assert compute_scores(f, answers) == {"phq9": total, "phq9_severity": severity}


def test_phq9_self_harm_item_is_abnormal_at_any_frequency() -> None:
    f = FORMS["phq-9"]
    for points in (1, 2, 3):
        answers = scale_answers([0, 0, 0, 0, 0, 0, 0, 0, points])
        assert [(x.question_id, x.value) for x in abnormal_findings(f, answers)] == [
            ("q9", FREQUENCY[points])
        ]
    # A high total alone is for the plan's rules, not an abnormal option.
    assert abnormal_findings(f, scale_answers([3, 3, 3, 3, 3, 3, 3, 3, 0])) == []
    assert codes(f, scale_answers([0] * 8)) == [("q9", "required")]


@pytest.mark.parametrize(
    ("points", "total", "severity"),
    [
        ([0, 0, 0, 0, 0, 0, 0], 0, 0),
        ([1, 1, 1, 1, 0, 0, 0], 4, 0),
        ([1, 1, 1, 1, 1, 0, 0], 5, 1),
        ([2, 2, 2, 1, 1, 1, 0], 9, 1),
        ([2, 2, 2, 2, 1, 1, 0], 10, 2),
        ([3, 3, 2, 2, 2, 1, 1], 14, 2),
        ([3, 3, 3, 2, 2, 1, 1], 15, 3),
        ([3, 3, 3, 3, 3, 3, 3], 21, 3),
    ],
)
def test_gad7_total_and_severity(points: list[int], total: int, severity: int) -> None:
    f = FORMS["gad-7"]
    answers, errors = check_answers(f, scale_answers(points))
    assert errors == []
    assert compute_scores(f, answers) == {"gad7": total, "gad7_severity": severity}
    assert abnormal_findings(f, answers) == []
