"""What a step's answers mean: findings, scores, the rules that fire, risk level and alerts."""

from __future__ import annotations

from typing import Any

from pathways.answers import Finding
from pathways.definition import Step
from pathways.evaluation import (
    Alert,
    evaluate_answers,
    merged_values,
    step_needed,
)
from pathways.form_definition import FormDefinition

FORM = FormDefinition.model_validate(
    {
        "id": "recovery",
        "version": 1,
        "title": "康复随访",
        "questions": [
            {
                "id": "overall",
                "type": "single_choice",
                "text": "总体感觉",
                "options": [
                    {"value": "good", "label": "良好"},
                    {"value": "poor", "label": "较差", "abnormal": True},
                ],
            },
            {
                "id": "symptoms",
                "type": "multiple_choice",
                "text": "症状",
                "options": [
                    {"value": "fever", "label": "发热", "abnormal": True},
                    {"value": "wound", "label": "伤口渗液", "abnormal": True},
                    {"value": "none", "label": "无", "exclusive": True},
                ],
            },
            {
                "id": "pain",
                "type": "single_choice",
                "text": "疼痛",
                "options": [
                    {"value": "p0", "label": "无痛", "score": 0},
                    {"value": "p3", "label": "中度", "score": 3},
                    {"value": "p5", "label": "重度", "score": 5},
                ],
            },
            {
                "id": "note",
                "type": "long_text",
                "text": "还有什么想告诉我们的？",
                "required": False,
            },
        ],
        "scores": {"total": "sum(pain)"},
        "primary_score": "total",
    }
)


def step(*rules: dict[str, Any], title: str = "出院随访") -> Step:
    return Step.model_validate(
        {
            "id": "call",
            "title": title,
            "schedule": {"offset": {"days": 3}},
            "action": {"type": "form", "form": "recovery"},
            "rules": list(rules),
        }
    )


def test_normal_answers_complete_the_task_quietly() -> None:
    result = evaluate_answers(
        step(), FORM, {"overall": ["good"], "symptoms": ["none"], "pain": ["p0"]}, role="nurse"
    )
    assert result.findings == []
    assert result.fired == []
    assert not result.abnormal
    assert result.risk_level is None
    assert result.alerts == []
    assert result.score == 0
    assert result.scores == {"total": 0}
    assert result.values == {"overall": "good", "symptoms": ["none"], "pain": "p0", "total": 0}


def test_abnormal_answers_no_rule_covers_alert_the_steps_role() -> None:
    result = evaluate_answers(
        step(), FORM, {"overall": ["good"], "symptoms": ["fever", "wound"]}, role="doctor"
    )
    assert result.findings == [
        Finding("symptoms", "症状", "fever", "发热"),
        Finding("symptoms", "症状", "wound", "伤口渗液"),
    ]
    assert result.abnormal
    assert result.risk_level == "warning"
    assert result.alerts == [
        Alert(
            rule=-1,
            level="warning",
            roles=["doctor"],
            message="「出院随访」出现异常回答：发热、伤口渗液",
        )
    ]


def test_a_rules_alert_carries_the_abnormal_answers() -> None:
    rule = {
        "when": "'fever' in symptoms",
        "level": "high",
        "alert": {"roles": ["doctor", "nurse"], "message": "发热，请尽快电话随访"},
    }
    result = evaluate_answers(step(rule), FORM, {"symptoms": ["fever"]}, role="nurse")
    assert [i for i, _ in result.fired] == [0]
    assert result.risk_level == "high"
    assert result.alerts == [
        Alert(
            rule=0,
            level="high",
            roles=["doctor", "nurse"],
            message="发热，请尽快电话随访（异常回答：发热）",
        )
    ]


def test_a_rule_on_a_score_fires_without_abnormal_options() -> None:
    rule = {
        "when": "total >= 5",
        "level": "critical",
        "alert": {"roles": ["care_manager"], "message": "重度疼痛"},
    }
    result = evaluate_answers(step(rule), FORM, {"pain": ["p5"]}, role="nurse")
    assert result.findings == []
    assert result.abnormal
    assert result.score == 5
    assert result.risk_level == "critical"
    assert result.alerts == [
        Alert(rule=0, level="critical", roles=["care_manager"], message="重度疼痛")
    ]


def test_the_risk_level_is_the_highest_abnormal_rule_fired() -> None:
    rules: list[dict[str, Any]] = [
        {"when": "total >= 3", "level": "high"},
        {"when": "overall == 'poor'", "level": "critical"},
        {"when": "total >= 0", "level": "info"},
        {"when": "total >= 1", "level": "critical", "abnormal": False},
        {"when": "total > 100", "level": "critical"},
    ]
    high_only = evaluate_answers(step(*rules), FORM, {"pain": ["p3"]}, role="nurse")
    assert [i for i, _ in high_only.fired] == [0, 2, 3]
    assert high_only.risk_level == "high"  # the non-abnormal critical rule does not count
    both = evaluate_answers(step(*rules), FORM, {"pain": ["p3"], "overall": ["poor"]}, role="nurse")
    assert both.risk_level == "critical"
    # No rule that fired has an alert: the abnormal answer raises the step's own, at "warning".
    assert both.alerts == [
        Alert(rule=-1, level="warning", roles=["nurse"], message="「出院随访」出现异常回答：较差")
    ]


def test_a_rule_that_is_not_abnormal_leaves_the_task_completed() -> None:
    rule = {
        "when": "overall == 'good'",
        "level": "info",
        "abnormal": False,
        "alert": {"roles": ["nurse"], "message": "患者自评良好"},
    }
    result = evaluate_answers(step(rule), FORM, {"overall": ["good"]}, role="nurse")
    assert not result.abnormal
    assert result.risk_level is None
    assert result.alerts == [Alert(rule=0, level="info", roles=["nurse"], message="患者自评良好")]


def test_alert_messages_are_cut_to_500_characters() -> None:
    rule = {"when": "count(symptoms) > 0", "alert": {"roles": ["nurse"], "message": "注" * 300}}
    result = evaluate_answers(step(rule), FORM, {"symptoms": ["fever"]}, role="nurse")
    assert result.alerts[0].message == "注" * 300 + "（异常回答：发热）"
    wordy = FormDefinition.model_validate(
        {
            "id": "wordy",
            "version": 1,
            "title": "t",
            "questions": [
                {
                    "id": "symptoms",
                    "type": "multiple_choice",
                    "text": "症状",
                    "options": [
                        {"value": f"s{i}", "label": "很" * 100, "abnormal": True} for i in range(3)
                    ],
                }
            ],
        }
    )
    result = evaluate_answers(step(rule), wordy, {"symptoms": ["s0", "s1", "s2"]}, role="nurse")
    assert len(result.alerts[0].message) == 500


def test_a_complaint_rule_opens_a_case_naming_the_score_the_answers_and_the_patients_words() -> (
    None
):
    rule = {
        "when": "total >= 5",
        "complaint": {"category": "treatment", "summary": "术后疼痛未得到处理", "quote": "note"},
    }
    praise = {"when": "total == 0", "complaint": {"kind": "praise", "summary": "患者表扬"}}
    answers = {
        "overall": ["poor"],
        "symptoms": ["none"],
        "pain": ["p5"],
        "note": ["  夜里疼得睡不着，护士说等医生来，一直没人来。 "],
    }
    result = evaluate_answers(step(rule, praise), FORM, answers, role="nurse")
    [case] = result.cases
    assert (case.rule, case.kind, case.category) == (0, "complaint", "treatment")
    assert case.summary == (
        "术后疼痛未得到处理（「康复随访」；评分 5；异常回答：较差）"
        "患者原话：「夜里疼得睡不着，护士说等医生来，一直没人来。」"
    )
    calm = evaluate_answers(
        step(rule, praise), FORM, {"overall": ["good"], "pain": ["p0"]}, role="nurse"
    )
    [thanks] = calm.cases
    assert (thanks.rule, thanks.kind, thanks.category) == (1, "praise", "other")
    assert thanks.summary == "患者表扬（「康复随访」；评分 0）"


def test_no_primary_score_means_no_score() -> None:
    form = FORM.model_copy(update={"primary_score": None})
    assert evaluate_answers(step(), form, {"pain": ["p5"]}, role="nurse").score is None


def test_a_condition_over_earlier_answers_decides_whether_a_step_is_needed() -> None:
    conditional = step().model_copy(update={"condition": "total >= 3"})
    earlier = merged_values([{"total": 1, "overall": "good"}, {"total": 4}])
    assert earlier == {"total": 4, "overall": "good"}
    assert step_needed(conditional, earlier)
    assert not step_needed(conditional, {"total": 1})
    assert not step_needed(conditional, {})  # an unanswered name never meets a condition
    assert step_needed(step(), {})
