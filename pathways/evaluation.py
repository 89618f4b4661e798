"""What a step's answers mean (FU-9, CM-6, FORM-2): the abnormal options chosen, the form's
scores, the step's rules that fire, whether the task is abnormal and at which risk level, the
alerts staff get, the complaint or praise cases opened (SAT-3); and whether a conditional step
is needed at all.

Pure: the pathway workflow evaluates each submission with it, deterministically.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from complaints.lifecycle import Category, Kind
from pathways.answers import Answers, Finding, abnormal_findings, compute_scores, expression_values
from pathways.definition import Rule, Step
from pathways.expressions import compile_expression
from pathways.form_definition import FormDefinition

# A rule's levels, least severe first: the task's risk level is the highest that fired.
LEVELS = ["info", "warning", "high", "critical"]
# Alert messages are cut to this length.
ALERT_MESSAGE_LENGTH = 500
# A case's summary as staff read it: the rule's words, the score, abnormal answers, the quote.
CASE_SUMMARY_LENGTH = 2000


@dataclass(frozen=True)
class Alert:
    """An alert for staff: raised by rule ``rule`` of the step, or -1 for abnormal answers that
    no rule's alert covered."""

    rule: int
    level: str
    roles: list[str]
    message: str


@dataclass(frozen=True)
class CaseOpening:
    """A complaint or praise case opened by rule ``rule`` of the step (SAT-3)."""

    rule: int
    kind: Kind
    category: Category
    summary: str


@dataclass(frozen=True)
class Evaluation:
    findings: list[Finding]
    # What later rules and conditions see of this step: the answers and the scores.
    values: dict[str, Any]
    scores: dict[str, float | None]
    # The rules that fired, with their index in the step.
    fired: list[tuple[int, Rule]]
    abnormal: bool
    score: float | None  # the form's primary score
    risk_level: str | None
    alerts: list[Alert]
    cases: list[CaseOpening]


def evaluate_answers(
    step: Step, form: FormDefinition, answers: Answers, *, role: str
) -> Evaluation:
    """Evaluate one submission to ``step``; ``role`` is who handles the step's abnormal answers
    when no rule's alert names anyone."""
    findings = abnormal_findings(form, answers)
    values = expression_values(form, answers)
    scores = compute_scores(form, answers)
    fired = [(i, r) for i, r in enumerate(step.rules) if compile_expression(r.when).holds(values)]
    levels = [LEVELS.index(r.level) for _, r in fired if r.abnormal]
    score = scores.get(form.primary_score) if form.primary_score else None
    return Evaluation(
        findings=findings,
        values=values,
        scores=scores,
        fired=fired,
        abnormal=bool(findings) or any(r.abnormal for _, r in fired),
        score=score,
        risk_level=LEVELS[max(levels)] if levels else ("warning" if findings else None),
        alerts=_alerts(step, findings, fired, role),
        cases=_cases(form, answers, findings, fired, score),
    )


def _alerts(
    step: Step, findings: list[Finding], fired: list[tuple[int, Rule]], role: str
) -> list[Alert]:
    labels = "、".join(f.label for f in findings)
    # The abnormal options chosen go with every alert, so staff see them without a click.
    detail = f"（异常回答：{labels}）" if labels else ""
    alerts = [
        Alert(
            rule=i,
            level=r.level,
            roles=list(r.alert.roles),
            message=f"{r.alert.message}{detail}"[:ALERT_MESSAGE_LENGTH],
        )
        for i, r in fired
        if r.alert is not None
    ]
    if findings and not alerts:
        alerts.append(
            Alert(
                rule=-1,
                level="warning",
                roles=[role],
                message=f"「{step.title}」出现异常回答：{labels}",
            )
        )
    return alerts


def _cases(
    form: FormDefinition,
    answers: Answers,
    findings: list[Finding],
    fired: list[tuple[int, Rule]],
    score: float | None,
) -> list[CaseOpening]:
    # What the handler needs before calling the patient back, without opening the answers.
    facts = [f"「{form.title}」"]
    if score is not None:
        facts.append(f"评分 {score:g}")
    if findings:
        facts.append("异常回答：" + "、".join(f.label for f in findings))
    context = "（" + "；".join(facts) + "）"
    cases = []
    for index, rule in fired:
        spec = rule.complaint
        if spec is None:
            continue
        words = "".join(answers.get(spec.quote, ())).strip() if spec.quote else ""
        quoted = f"患者原话：「{words}」" if words else ""
        cases.append(
            CaseOpening(
                rule=index,
                kind=spec.kind,
                category=spec.category,
                summary=f"{spec.summary}{context}{quoted}"[:CASE_SUMMARY_LENGTH],
            )
        )
    return cases


def merged_values(by_step: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The values of the run's earlier answers, later steps overriding earlier ones."""
    merged: dict[str, Any] = {}
    for values in by_step:
        merged.update(values)
    return merged


def step_needed(step: Step, values: Mapping[str, Any]) -> bool:
    """False when the step has a condition that the run's earlier answers do not meet."""
    return not step.condition or compile_expression(step.condition).holds(values)
