"""Checking a patient's answers against a form and finding the abnormal ones.

Pure functions: the patient page uses them to validate a submission, and the workflow uses the
same code to decide, deterministically, whether a task is abnormal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from pathways.model import FormDefinition

# Question id -> chosen option values, or a one-element list holding the text typed.
Answers = dict[str, list[str]]

ErrorCode = Literal[
    "unknown_question", "required", "single_only", "invalid_option", "exclusive", "too_long"
]

ERROR_MESSAGES: dict[ErrorCode, str] = {
    "unknown_question": "not a question of this form",
    "required": "an answer is required",
    "single_only": "only one option may be chosen",
    "invalid_option": "not an option of this question",
    "exclusive": "this option cannot be combined with others",
    "too_long": "the answer is too long",
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
        if not values:
            if question.required:
                errors.append(AnswerError(question.id, "required"))
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
