"""Checking a patient's answers against a form and finding the abnormal ones.

Pure functions: the patient page uses them to validate a submission, and the workflow uses the
same code to decide, deterministically, whether a task is abnormal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pathways.expressions import compile_expression
from pathways.form_definition import FormDefinition

# Question id -> chosen option values, or a one-element list holding the text typed.
Answers = dict[str, list[str]]

ErrorCode = Literal[
    "unknown_question",
    "required",
    "single_only",
    "invalid_option",
    "exclusive",
    "too_long",
    "not_a_number",
    "out_of_range",
]

ERROR_MESSAGES: dict[ErrorCode, str] = {
    "unknown_question": "not a question of this form",
    "required": "an answer is required",
    "single_only": "only one option may be chosen",
    "invalid_option": "not an option of this question",
    "exclusive": "this option cannot be combined with others",
    "too_long": "the answer is too long",
    "not_a_number": "a number is expected",
    "out_of_range": "the number is outside the accepted range",
}


@dataclass(frozen=True)
class AnswerError:
    question_id: str
    code: ErrorCode

    @property
    def message(self) -> str:
        return ERROR_MESSAGES[self.code]


@dataclass(frozen=True)
class Finding:
    question_id: str
    question: str
    value: str
    label: str


def check_answers(
    form: FormDefinition, raw: Mapping[str, Sequence[str]]
) -> tuple[Answers, list[AnswerError]]:
    """Normalise raw answers (blank values dropped, order kept, repeats removed) and list errors."""
    errors = [AnswerError(key, "unknown_question") for key in raw if form.question(key) is None]
    answers: Answers = {}
    for question in form.questions:
        values = list(dict.fromkeys(v.strip() for v in raw.get(question.id, ()) if v.strip()))
        if question.show_if and not compile_expression(question.show_if).holds(
            answer_values(form, answers)
        ):
            continue  # hidden by an earlier answer: neither required nor kept
        if not values:
            if question.required:
                errors.append(AnswerError(question.id, "required"))
            continue
        if question.type == "number":
            try:
                number = float(values[0])
            except ValueError:
                errors.append(AnswerError(question.id, "not_a_number"))
                continue
            if (question.minimum is not None and number < question.minimum) or (
                question.maximum is not None and number > question.maximum
            ):
                errors.append(AnswerError(question.id, "out_of_range"))
                continue
            answers[question.id] = [f"{number:g}"]
            continue
        if question.type == "text":
            text = "\n".join(values)
            if len(text) > question.max_length:
                errors.append(AnswerError(question.id, "too_long"))
                continue
            answers[question.id] = [text]
            continue
        if question.type == "single_choice" and len(values) > 1:
            errors.append(AnswerError(question.id, "single_only"))
            continue
        options = [question.option(v) for v in values]
        if any(o is None for o in options):
            errors.append(AnswerError(question.id, "invalid_option"))
            continue
        if len(values) > 1 and any(o is not None and o.exclusive for o in options):
            errors.append(AnswerError(question.id, "exclusive"))
            continue
        answers[question.id] = values
    return answers, errors


def abnormal_findings(form: FormDefinition, answers: Answers) -> list[Finding]:
    """Every chosen option marked abnormal, in form order (FU-9)."""
    findings: list[Finding] = []
    for question in form.questions:
        for value in answers.get(question.id, ()):
            option = question.option(value)
            if option is not None and option.abnormal:
                findings.append(Finding(question.id, question.text, option.value, option.label))
    return findings


def answer_values(form: FormDefinition, answers: Answers) -> dict[str, Any]:
    """Answers as expression values: a choice's value (a list for multiple choice), a number
    for a numeric question, the text for a text question."""
    values: dict[str, Any] = {}
    for question in form.questions:
        given = answers.get(question.id)
        if not given:
            continue
        if question.type == "multiple_choice":
            values[question.id] = list(given)
        elif question.type == "number":
            values[question.id] = float(given[0])
        else:
            values[question.id] = given[0]
    return values


def compute_scores(form: FormDefinition, answers: Answers) -> dict[str, float | None]:
    """The form's named scores; in a formula a question with scored options is its points."""
    points: dict[str, Any] = answer_values(form, answers)
    for question in form.questions:
        scored = [o for o in question.options if o.score is not None]
        if not scored or question.id not in answers:
            continue
        chosen = [question.option(v) for v in answers[question.id]]
        points[question.id] = sum(o.score or 0 for o in chosen if o is not None)
    scores: dict[str, float | None] = {}
    for name, formula in form.scores.items():
        value = compile_expression(formula).evaluate({**points, **scores})
        scores[name] = float(value) if isinstance(value, int | float) else None
    return scores


def expression_values(form: FormDefinition, answers: Answers) -> dict[str, Any]:
    """What a rule about one step's answers sees: the answers and the form's scores."""
    return {**answer_values(form, answers), **compute_scores(form, answers)}
