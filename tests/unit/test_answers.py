from __future__ import annotations

from pathways.answers import abnormal_findings, check_answers
from pathways.library import load_forms

FORM = load_forms()["discharge-recovery"]


def codes(raw: dict[str, list[str]]) -> dict[str, str]:
    _, errors = check_answers(FORM, raw)
    return {e.question_id: e.code for e in errors}


def test_complete_answers_are_normalised() -> None:
    answers, errors = check_answers(
        FORM,
        {
            "overall": [" good "],
            "symptoms": ["fever", "fever", "chest"],
            "medication": ["on_time"],
            "notes": [""],
        },
    )
    assert errors == []
    assert answers == {
        "overall": ["good"],
        "symptoms": ["fever", "chest"],
        "medication": ["on_time"],
    }


def test_each_kind_of_mistake_is_named_per_question() -> None:
    assert codes({"symptoms": ["none"], "medication": ["on_time"]}) == {"overall": "required"}
    assert codes(
        {"overall": ["good", "fair"], "symptoms": ["none"], "medication": ["on_time"]}
    ) == {"overall": "single_only"}
    assert codes({"overall": ["great"], "symptoms": ["none"], "medication": ["on_time"]}) == {
        "overall": "invalid_option"
    }
    assert codes(
        {"overall": ["good"], "symptoms": ["none", "fever"], "medication": ["on_time"]}
    ) == {"symptoms": "exclusive"}
    assert codes(
        {
            "overall": ["good"],
            "symptoms": ["none"],
            "medication": ["on_time"],
            "notes": ["字" * 301],
        }
    ) == {"notes": "too_long"}
    assert codes(
        {"overall": ["good"], "symptoms": ["none"], "medication": ["on_time"], "evil": ["1"]}
    ) == {"evil": "unknown_question"}


def test_abnormal_options_are_found_in_form_order() -> None:
    answers = {"overall": ["poor"], "symptoms": ["pain", "fever"], "medication": ["stopped"]}
    findings = abnormal_findings(FORM, answers)
    assert [(f.question_id, f.value) for f in findings] == [
        ("overall", "poor"), ("symptoms", "pain"), ("symptoms", "fever"), ("medication", "stopped"),
    ]  # fmt: skip
    assert abnormal_findings(FORM, {"overall": ["good"], "symptoms": ["none"]}) == []
