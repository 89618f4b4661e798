"""A patient's submitted answers as a FHIR R4 QuestionnaireResponse."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse

from integrations.fhir.extensions import (
    CASCADE_LABEL_SEPARATOR,
    CASCADE_SEPARATOR,
    answer_of,
    is_boolean,
    link_of,
)
from integrations.fhir.questionnaire_export import questionnaire_items
from pathways.form_definition import (
    FormDefinition,
    Question,
)


def _answer_values(
    question: Question, values: Sequence[str], file_url: Callable[[str], str]
) -> list[dict[str, Any]]:
    kind = question.type
    if kind == "yes_no" and is_boolean(question):
        return [{"valueBoolean": values[0] == "yes"}] if values else []
    if kind in ("single_choice", "multiple_choice", "dropdown", "yes_no"):
        # An open-choice item's free text is the answer, not the option standing for it.
        return [
            answer_of(question, value)
            for value in values
            if (option := question.option(value)) is None or option.fhir_answer != "open"
        ]
    if kind == "cascade":
        coding = {"code": CASCADE_SEPARATOR.join(values)}
        path = question.option_path(list(values))
        if path:
            coding["display"] = CASCADE_LABEL_SEPARATOR.join(o.label for o in path)
        return [{"valueCoding": coding}]
    if kind == "number":
        return [{"valueDecimal": float(v)} for v in values]
    if kind == "rating":
        return [{"valueInteger": int(v)} for v in values]
    if kind == "date":
        return [{"valueDate": v} for v in values]
    if kind == "time":
        return [{"valueTime": f"{v}:00" if len(v) == 5 else v} for v in values]
    if kind in ("photo", "signature"):
        return [{"valueAttachment": {"url": file_url(v), "title": question.text}} for v in values]
    return [{"valueString": v} for v in values]


def _nested(
    items: Sequence[Mapping[str, Any]], answered: Mapping[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """The answers in the Questionnaire's own structure (an answer to a question in a group is
    inside that group), groups without answers left out."""
    found: list[dict[str, Any]] = []
    for item in items:
        link = item["linkId"]
        if link in answered:
            found.append(answered[link])
        elif item["type"] == "group":
            inner = _nested(item.get("item", []), answered)
            if inner:
                found.append({"linkId": link, "text": item.get("text"), "item": inner})
    return found


def to_questionnaire_response(
    form: FormDefinition,
    answers: Mapping[str, list[str]],
    *,
    questionnaire_url: str,
    response_id: str,
    subject: str,
    authored: datetime,
    file_url: Callable[[str], str],
) -> dict[str, Any]:
    """A submitted form as a QuestionnaireResponse (JSON), checked against the FHIR model.
    ``subject`` is a reference (``Patient/<id>``), never a name; ``file_url`` turns an upload
    reference into the link the reader may follow."""
    answered: dict[str, dict[str, Any]] = {}
    for question in form.questions:
        link = link_of(question)
        if question.type == "matrix":
            rows = []
            for row in question.rows:
                chosen = answers.get(f"{question.id}.{row.id}")
                if chosen:
                    rows.append(
                        {
                            "linkId": f"{link}.{row.id}",
                            "text": row.text,
                            "answer": [answer_of(question, chosen[0])],
                        }
                    )
            if rows:
                answered[link] = {"linkId": link, "text": question.text, "item": rows}
            continue
        values = answers.get(question.id)
        if not values or not question.answerable():
            continue
        given = _answer_values(question, values, file_url)
        other = question.other_option()
        specified = answers.get(f"{question.id}.{other.value}") if other else None
        if specified:
            given.append({"valueString": specified[0]})
        answered[link] = {"linkId": link, "text": question.text, "answer": given}
    resource = {
        "resourceType": "QuestionnaireResponse",
        "id": response_id,
        "questionnaire": f"{questionnaire_url}|{form.version}",
        "status": "completed",
        "subject": {"reference": subject},
        "authored": authored.isoformat(),
        "item": _nested(questionnaire_items(form), answered),
    }
    return QuestionnaireResponse.model_validate(resource).model_dump(mode="json", exclude_none=True)
