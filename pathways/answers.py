"""Checking a patient's answers against a form and finding the abnormal ones.

Pure functions: the patient page uses them to validate a submission, and the workflow uses the
same code to decide, deterministically, whether a task is abnormal.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from pathways.expressions import compile_expression
from pathways.form_definition import (
    ROW_NAME_SEPARATOR,
    ChoiceOption,
    FormDefinition,
    Question,
)

# Answer key -> list of strings. Raw submissions and normalised answers use the same encoding
# (an HTML form posts it as is), so normalised answers check again unchanged:
#   single_choice, dropdown, yes_no   {q: [value]}            yes_no values are "yes" and "no"
#   multiple_choice                   {q: [value, …]}         in the order given, no repeats
#   option marked other (any choice)  {q: [..., other], "q.other": [the text specified]}
#   cascade                           {q: [top, child, …]}    the values from the top level down
#                                                              to a leaf
#   text, long_text                   {q: [text]}             several values are joined by "\n"
#   number                            {q: ["13.9"]}           normalised with format "g"
#   rating                            {q: ["7"]}              a whole number on the scale
#   date                              {q: ["2026-03-01"]}     ISO YYYY-MM-DD
#   time                              {q: ["08:30"]}          HH:MM, 24 hours
#   matrix                            {"q.row": [value], …}   one key per row, none for q itself
#   photo                             {q: [upload ref, …]}    at most max_files
#   signature                         {q: [upload ref]}
#   section                           nothing: display only
# Keys "<question>.<part>" cannot clash with question ids: a slug holds no dot.
Answers = dict[str, list[str]]

# What the upload service hands the page for a stored file: opaque, unguessable, URL-safe.
UPLOAD_REFERENCE = re.compile(r"^upl_[A-Za-z0-9_-]{32}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TIME = re.compile(r"^(?:[01]\d|2[0-3]):[0-5]\d$")
# Tab and line breaks are typed; other control characters are not, and NUL is refused by
# PostgreSQL's JSON.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# No date a patient gives about their care is outside this (birth dates included).
EARLIEST_DATE, LATEST_DATE = date(1900, 1, 1), date(2099, 12, 31)

ErrorCode = Literal[
    "unknown_question",
    "required",
    "single_only",
    "invalid_option",
    "exclusive",
    "too_long",
    "not_a_number",
    "out_of_range",
    "not_answerable",
    "specify_required",
    "incomplete",
    "invalid_text",
    "not_a_whole_number",
    "not_a_date",
    "date_out_of_range",
    "not_a_time",
    "not_an_upload",
    "too_many_files",
    # Said of a file by the upload service (check_answers sees references only).
    "empty_file",
    "file_too_large",
    "file_type_not_accepted",
    "not_an_image",
    "file_type_mismatch",
    "damaged_image",
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
    "not_answerable": "no answer is accepted here",
    "specify_required": "please specify the other option chosen",
    "incomplete": "choose down to the last level",
    "invalid_text": "the text holds control characters",
    "not_a_whole_number": "a whole number is expected",
    "not_a_date": "a date YYYY-MM-DD is expected",
    "date_out_of_range": "the date is outside the accepted range",
    "not_a_time": "a time HH:MM is expected",
    "not_an_upload": "not a reference to an uploaded file",
    "too_many_files": "too many files",
    "empty_file": "the file is empty",
    "file_too_large": "the file is larger than the question accepts",
    "file_type_not_accepted": "the question does not accept this type of file",
    "not_an_image": "the file is not an image of a known type",
    "file_type_mismatch": "the file's content is not of the type it was declared as",
    "damaged_image": "the image is damaged or cut short",
}


@dataclass(frozen=True)
class AnswerError:
    question_id: str
    code: ErrorCode
    # The matrix row or the "other" option the error is about, when it is about one of them.
    part: str | None = None

    @property
    def message(self) -> str:
        return ERROR_MESSAGES[self.code]

    @property
    def key(self) -> str:
        """The answer key the error is about ("q" or "q.part")."""
        return f"{self.question_id}.{self.part}" if self.part else self.question_id


@dataclass(frozen=True)
class Finding:
    question_id: str
    question: str
    value: str
    label: str


def answer_keys(form: FormDefinition) -> set[str]:
    """Every key a submission to this form may hold."""
    keys: set[str] = set()
    for question in form.questions:
        keys.add(question.id)
        keys |= {f"{question.id}.{r.id}" for r in question.rows}
        other = question.other_option()
        if other is not None:
            keys.add(f"{question.id}.{other.value}")
    return keys


def _values(raw: Mapping[str, Sequence[str]], key: str, *, unique: bool = True) -> list[str]:
    stripped = [v.strip() for v in raw.get(key, ()) if v.strip()]
    return list(dict.fromkeys(stripped)) if unique else stripped


def check_answers(
    form: FormDefinition, raw: Mapping[str, Sequence[str]]
) -> tuple[Answers, list[AnswerError]]:
    """Normalise raw answers (blank values dropped, order kept, repeats removed) and list errors.

    A question hidden by its show_if, or after the form ended (an option that ends it was
    chosen, or an end_if held), is neither required nor kept."""
    known = answer_keys(form)
    errors = [AnswerError(key, "unknown_question") for key in raw if key not in known]
    answers: Answers = {}
    for question in form.questions:
        if question.show_if and not compile_expression(question.show_if).holds(
            answer_values(form, answers)
        ):
            continue
        checked, found = _check_question(question, raw)
        answers.update(checked)
        errors.extend(found)
        if _ends_form(form, question, answers):
            break
    return answers, errors


def _ends_form(form: FormDefinition, question: Question, answers: Answers) -> bool:
    if any(o.ends_form for o in _chosen_options(question, answers)):
        return True
    return bool(question.end_if) and compile_expression(question.end_if or "").holds(
        answer_values(form, answers)
    )


def _check_question(
    question: Question, raw: Mapping[str, Sequence[str]]
) -> tuple[Answers, list[AnswerError]]:
    qid = question.id
    if question.type == "matrix":
        return _check_matrix(question, raw)
    values = _values(raw, qid, unique=question.type != "cascade")
    if question.type == "section":
        return {}, [AnswerError(qid, "not_answerable")] if values else []
    if not values:
        return {}, [AnswerError(qid, "required")] if question.required else []
    if question.type in ("multiple_choice", "single_choice", "dropdown", "yes_no"):
        return _check_choice(question, values, raw)
    checker = _SINGLE_VALUE_CHECKS.get(question.type)
    if checker is not None:
        if len(values) > 1:
            return {}, [AnswerError(qid, "single_only")]
        code, value = checker(question, values[0])
        return ({}, [AnswerError(qid, code)]) if code else ({qid: [value]}, [])
    if question.type == "number":
        # Kept as it always was: the first value counts.
        code, value = _check_number(question, values[0])
        return ({}, [AnswerError(qid, code)]) if code else ({qid: [value]}, [])
    if question.type in ("text", "long_text"):
        text = "\n".join(values)
        code = _text_problem(text, question.max_length)
        return ({}, [AnswerError(qid, code)]) if code else ({qid: [text]}, [])
    if question.type == "cascade":
        path = question.option_path(values)
        if path is None:
            return {}, [AnswerError(qid, "invalid_option")]
        if path[-1].children:
            return {}, [AnswerError(qid, "incomplete")]
        return {qid: values}, []
    # photo, signature
    if len(values) > (question.max_files or 1):
        return {}, [AnswerError(qid, "too_many_files")]
    if not all(UPLOAD_REFERENCE.match(v) for v in values):
        return {}, [AnswerError(qid, "not_an_upload")]
    return {qid: values}, []


def _check_choice(
    question: Question, values: list[str], raw: Mapping[str, Sequence[str]]
) -> tuple[Answers, list[AnswerError]]:
    qid = question.id
    if question.type != "multiple_choice" and len(values) > 1:
        return {}, [AnswerError(qid, "single_only")]
    options = [question.option(v) for v in values]
    if any(o is None for o in options):
        return {}, [AnswerError(qid, "invalid_option")]
    if len(values) > 1 and any(o is not None and o.exclusive for o in options):
        return {}, [AnswerError(qid, "exclusive")]
    checked: Answers = {qid: values}
    other = question.other_option()
    if other is not None and other.value in values:
        text = "\n".join(_values(raw, f"{qid}.{other.value}"))
        if not text:
            return {}, [AnswerError(qid, "specify_required", other.value)]
        code = _text_problem(text, question.other_max_length)
        if code:
            return {}, [AnswerError(qid, code, other.value)]
        checked[f"{qid}.{other.value}"] = [text]
    return checked, []


def _check_matrix(
    question: Question, raw: Mapping[str, Sequence[str]]
) -> tuple[Answers, list[AnswerError]]:
    checked: Answers = {}
    errors: list[AnswerError] = []
    if _values(raw, question.id):
        errors.append(AnswerError(question.id, "not_answerable"))
    for row in question.rows:
        values = _values(raw, f"{question.id}.{row.id}")
        if not values:
            if question.required:
                errors.append(AnswerError(question.id, "required", row.id))
        elif len(values) > 1:
            errors.append(AnswerError(question.id, "single_only", row.id))
        elif question.option(values[0]) is None:
            errors.append(AnswerError(question.id, "invalid_option", row.id))
        else:
            checked[f"{question.id}.{row.id}"] = values
    return ({}, errors) if errors else (checked, [])


def _text_problem(text: str, max_length: int) -> ErrorCode | None:
    if len(text) > max_length:
        return "too_long"
    if _CONTROL.search(text):
        return "invalid_text"
    return None


def _number(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _check_number(question: Question, value: str) -> tuple[ErrorCode | None, str]:
    number = _number(value)
    if number is None:
        return "not_a_number", ""
    if (question.minimum is not None and number < question.minimum) or (
        question.maximum is not None and number > question.maximum
    ):
        return "out_of_range", ""
    return None, f"{number:g}"


def _check_rating(question: Question, value: str) -> tuple[ErrorCode | None, str]:
    number = _number(value)
    if number is None:
        return "not_a_number", ""
    if not number.is_integer():
        return "not_a_whole_number", ""
    low, high = question.rating_range() or (0, 0)
    if not low <= number <= high:
        return "out_of_range", ""
    return None, str(int(number))


def _check_date(question: Question, value: str) -> tuple[ErrorCode | None, str]:
    if not _DATE.match(value):
        return "not_a_date", ""
    try:
        day = date.fromisoformat(value)
    except ValueError:
        return "not_a_date", ""
    low = max(EARLIEST_DATE, question.min_date or EARLIEST_DATE)
    high = min(LATEST_DATE, question.max_date or LATEST_DATE)
    if not low <= day <= high:
        return "date_out_of_range", ""
    return None, value


def _check_time(_question: Question, value: str) -> tuple[ErrorCode | None, str]:
    return (None, value) if _TIME.match(value) else ("not_a_time", "")


_SINGLE_VALUE_CHECKS = {"rating": _check_rating, "date": _check_date, "time": _check_time}


def _chosen_options(question: Question, answers: Answers) -> list[ChoiceOption]:
    """The options an answer chose: for a cascade every option on its path."""
    given = answers.get(question.id)
    if not given or question.type not in (
        "single_choice",
        "multiple_choice",
        "dropdown",
        "yes_no",
        "cascade",
    ):
        return []
    if question.type == "cascade":
        return question.option_path(given) or []
    return [o for o in (question.option(v) for v in given) if o is not None]


def abnormal_findings(form: FormDefinition, answers: Answers) -> list[Finding]:
    """Every chosen option marked abnormal and every number or rating beyond its abnormal
    threshold, in form order (FU-9)."""
    findings: list[Finding] = []
    for question in form.questions:
        for option in _chosen_options(question, answers):
            if option.abnormal:
                findings.append(Finding(question.id, question.text, option.value, option.label))
        for row in question.rows:
            key = f"{question.id}.{row.id}"
            for value in answers.get(key, ()):
                chosen = question.option(value)
                if chosen is not None and chosen.abnormal:
                    text = f"{question.text}：{row.text}"
                    findings.append(Finding(key, text, chosen.value, chosen.label))
        if question.type in ("number", "rating") and answers.get(question.id):
            value = answers[question.id][0]
            number = float(value)
            if (
                question.abnormal_at_least is not None and number >= question.abnormal_at_least
            ) or (question.abnormal_at_most is not None and number <= question.abnormal_at_most):
                label = (
                    f"{value}分" if question.type == "rating" else f"{value}{question.unit or ''}"
                )
                findings.append(Finding(question.id, question.text, value, label))
    return findings


def answer_values(form: FormDefinition, answers: Answers) -> dict[str, Any]:
    """Answers as expression values: a choice's value (yes_no: 'yes' or 'no'); a list for a
    multiple choice, a cascade (its path) and photos; a number for numeric and rating questions;
    the text for text, dates ('YYYY-MM-DD') and times ('HH:MM'), which compare in order as
    text; for a matrix each row's value as "<question>__<row>" and the list of them as the
    question."""
    values: dict[str, Any] = {}
    for question in form.questions:
        if question.type == "matrix":
            rows = {
                r.id: answers[f"{question.id}.{r.id}"][0]
                for r in question.rows
                if answers.get(f"{question.id}.{r.id}")
            }
            for row, value in rows.items():
                values[f"{question.id}{ROW_NAME_SEPARATOR}{row}"] = value
            if rows:
                values[question.id] = list(rows.values())
            continue
        given = answers.get(question.id)
        if not given:
            continue
        if question.type in ("multiple_choice", "cascade", "photo"):
            values[question.id] = list(given)
        elif question.type in ("number", "rating"):
            values[question.id] = float(given[0])
        else:
            values[question.id] = given[0]
    return values


def _scored(options: list[ChoiceOption]) -> bool:
    return any(o.score is not None or _scored(o.children) for o in options)


def compute_scores(form: FormDefinition, answers: Answers) -> dict[str, float | None]:
    """The form's named scores; in a formula a question with scored options is its points (a
    cascade the points along its path, a matrix the sum of its rows, each row its own points
    as "<question>__<row>"), and a rating is its number."""
    points: dict[str, Any] = answer_values(form, answers)
    for question in form.questions:
        if not _scored(question.options):
            continue
        if question.type == "matrix":
            rows = [
                (f"{question.id}{ROW_NAME_SEPARATOR}{r.id}", answers.get(f"{question.id}.{r.id}"))
                for r in question.rows
            ]
            scored = [(n, question.option(v[0])) for n, v in rows if v]
            for name, option in scored:
                points[name] = option.score if option is not None else None
            if scored:
                points[question.id] = sum((o.score or 0) for _, o in scored if o is not None)
            continue
        if question.id not in answers:
            continue
        points[question.id] = sum(o.score or 0 for o in _chosen_options(question, answers))
    scores: dict[str, float | None] = {}
    for name, formula in form.scores.items():
        value = compile_expression(formula).evaluate({**points, **scores})
        scores[name] = float(value) if isinstance(value, int | float) else None
    return scores


def expression_values(form: FormDefinition, answers: Answers) -> dict[str, Any]:
    """What a rule about one step's answers sees: the answers and the form's scores."""
    return {**answer_values(form, answers), **compute_scores(form, answers)}
