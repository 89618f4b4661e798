"""A form as a FHIR R4 Questionnaire: every question type mapped to the nearest standard
construct (choice with answerOption and ordinalValue for scores, enableWhen for conditions FHIR
can say, the SDC itemControl, unit, minValue and maxValue extensions), and CarePath's own
extensions for the rest (the exact show-if, skip-to-end, abnormal options, score formulas), so
that a form exported and imported again is the same form."""

from __future__ import annotations

import ast
from collections.abc import Sequence
from typing import Any

from fhir.resources.R4B.questionnaire import Questionnaire

from integrations.fhir.extensions import (
    ABNORMAL,
    ABNORMAL_AT_LEAST,
    ABNORMAL_AT_MOST,
    CARE_STEP,
    CASCADE,
    CASCADE_LABEL_SEPARATOR,
    CASCADE_SEPARATOR,
    DESCRIPTION,
    END_IF,
    ENDS_FORM,
    FORM_IDENTIFIER,
    MAX_OCCURS,
    MAX_SIZE,
    MAX_VALUE,
    MIME_TYPE,
    MIN_VALUE,
    OPTION_EXCLUSIVE,
    ORDINAL,
    OTHER,
    PRIMARY_SCORE,
    RATING_SCALE,
    SCORE,
    SECTION,
    SHOW_IF,
    SIGNATURE,
    UNIT,
    YES_NO,
    answer_of,
    control,
    ext,
    fhir_id,
    is_boolean,
    link_of,
    questionnaire_url,
)
from pathways.form_definition import (
    RATING_RANGES,
    FormDefinition,
    Question,
)

_COMPARISONS: dict[type[ast.cmpop], str] = {
    ast.Eq: "=",
    ast.NotEq: "!=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.Lt: "<",
    ast.LtE: "<=",
}


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def _options(question: Question) -> list[dict[str, Any]]:
    options: list[dict[str, Any]] = []
    for option in question.options:
        if option.fhir_answer == "open":
            continue  # the item's own free text (open-choice), not an option there
        extensions: list[dict[str, Any]] = []
        if option.score is not None:
            extensions.append(ext(ORDINAL, valueDecimal=_number(option.score)))
        if option.exclusive:
            extensions.append(ext(OPTION_EXCLUSIVE, valueBoolean=True))
        if option.abnormal:
            extensions.append(ext(ABNORMAL, valueBoolean=True))
        if option.ends_form:
            extensions.append(ext(ENDS_FORM, valueBoolean=True))
        if option.other:
            extensions.append(ext(OTHER, valueBoolean=True))
        entry: dict[str, Any] = answer_of(question, option.value)
        if extensions:
            entry["extension"] = extensions
        options.append(entry)
    return options


def _cascade_options(question: Question) -> list[dict[str, Any]]:
    """Every path from the top level to a leaf, as one option."""
    found: list[dict[str, Any]] = []

    def walk(options: Sequence[Any], values: list[str], labels: list[str]) -> None:
        for option in options:
            path, names = [*values, option.value], [*labels, option.label]
            if option.children:
                walk(option.children, path, names)
                continue
            entry: dict[str, Any] = {
                "valueCoding": {
                    "code": CASCADE_SEPARATOR.join(path),
                    "display": CASCADE_LABEL_SEPARATOR.join(names),
                }
            }
            if option.abnormal:
                entry["extension"] = [ext(ABNORMAL, valueBoolean=True)]
            found.append(entry)

    walk(question.options, [], [])
    return found


def _enable_when(form: FormDefinition, source: str) -> dict[str, Any] | None:
    """enableWhen and enableBehavior for a condition FHIR can say: comparisons of one earlier
    answer with a constant, all joined by 'and' or all by 'or'. None for anything else."""
    tree = ast.parse(source.strip(), mode="eval").body
    if isinstance(tree, ast.BoolOp):
        behavior = "all" if isinstance(tree.op, ast.And) else "any"
        parts: list[ast.expr] = list(tree.values)
    else:
        behavior, parts = "all", [tree]
    conditions = [_condition(form, part) for part in parts]
    if any(c is None for c in conditions):
        return None
    result: dict[str, Any] = {"enableWhen": conditions}
    if len(conditions) > 1:
        result["enableBehavior"] = behavior
    return result


def _option_answer(question: Question, value: str) -> dict[str, Any]:
    """An enableWhen's answer[x] naming an option, of the type the option travels as."""
    return {
        key.replace("value", "answer", 1): given
        for key, given in answer_of(question, value).items()
    }


def _condition(form: FormDefinition, node: ast.expr) -> dict[str, Any] | None:
    if not isinstance(node, ast.Compare) or len(node.ops) != 1:
        return None
    left, op, right = node.left, node.ops[0], node.comparators[0]
    # 'fever' in symptoms: a repeating choice has that answer among its answers.
    if isinstance(op, ast.In) and isinstance(left, ast.Constant) and isinstance(right, ast.Name):
        question = form.question(right.id)
        if question is None or question.type != "multiple_choice":
            return None
        return {
            "question": link_of(question),
            "operator": "=",
            **_option_answer(question, str(left.value)),
        }
    operator = _COMPARISONS.get(type(op))
    if operator is None or not isinstance(left, ast.Name) or not isinstance(right, ast.Constant):
        return None
    question = form.question(left.id)
    if question is None:
        return None
    value = right.value
    condition: dict[str, Any] = {"question": link_of(question), "operator": operator}
    if is_boolean(question) and value in ("yes", "no") and operator in ("=", "!="):
        condition["answerBoolean"] = value == "yes"
    elif question.type in ("single_choice", "dropdown", "yes_no") and isinstance(value, str):
        if operator not in ("=", "!="):
            return None
        condition.update(_option_answer(question, value))
    elif question.type == "rating" and isinstance(value, int) and not isinstance(value, bool):
        condition["answerInteger"] = value
    elif (
        question.type == "number" and isinstance(value, int | float) and not isinstance(value, bool)
    ):
        condition["answerDecimal"] = value
    elif question.type in ("date", "time") and isinstance(value, str):
        condition["answerDate" if question.type == "date" else "answerTime"] = value
    elif question.type in ("text", "long_text") and isinstance(value, str):
        condition["answerString"] = value
    else:
        return None
    return condition


def _item(form: FormDefinition, question: Question) -> dict[str, Any]:
    item: dict[str, Any] = {"linkId": link_of(question), "text": question.text}
    extensions: list[dict[str, Any]] = []
    children: list[dict[str, Any]] = []
    kind = question.type
    if kind in ("single_choice", "multiple_choice", "dropdown"):
        item["type"] = "open-choice" if question.other_option() else "choice"
        item["answerOption"] = _options(question)
        if kind == "multiple_choice":
            item["repeats"] = True
        if kind == "dropdown":
            extensions.append(control("drop-down"))
    elif kind == "cascade":
        item["type"] = "choice"
        item["answerOption"] = _cascade_options(question)
        extensions.append(ext(CASCADE, valueBoolean=True))
    elif is_boolean(question):
        item["type"] = "boolean"
    elif kind == "yes_no":
        item["type"] = "choice"
        item["answerOption"] = _options(question)
        extensions.append(ext(YES_NO, valueBoolean=True))
    elif kind in ("text", "long_text"):
        item["type"] = "string" if kind == "text" else "text"
        if "max_length" in question.model_fields_set:
            item["maxLength"] = question.max_length  # else the default, which FHIR does not have
    elif kind == "number":
        item["type"] = "decimal"
        if question.unit:
            unit = {"display": question.unit}
            if question.fhir_unit_code:
                unit = {"code": question.fhir_unit_code, **unit}
            if question.fhir_unit_system:
                unit = {"system": question.fhir_unit_system, **unit}
            extensions.append(ext(UNIT, valueCoding=unit))
        if question.minimum is not None:
            extensions.append(ext(MIN_VALUE, valueDecimal=_number(question.minimum)))
        if question.maximum is not None:
            extensions.append(ext(MAX_VALUE, valueDecimal=_number(question.maximum)))
    elif kind in ("date", "time"):
        item["type"] = kind
        if question.min_date is not None:
            extensions.append(ext(MIN_VALUE, valueDate=question.min_date.isoformat()))
        if question.max_date is not None:
            extensions.append(ext(MAX_VALUE, valueDate=question.max_date.isoformat()))
    elif kind == "rating":
        assert question.scale is not None
        low, high = RATING_RANGES[question.scale]
        item["type"] = "integer"
        extensions += [
            control("slider"),
            ext(MIN_VALUE, valueInteger=low),
            ext(MAX_VALUE, valueInteger=high),
            ext(RATING_SCALE, valueCode=question.scale),
        ]
    elif kind == "matrix":
        item["type"] = "group"
        extensions.append(control("grid"))
        scale = _options(question)
        for row in question.rows:
            children.append(
                {
                    "linkId": f"{link_of(question)}.{row.id}",
                    "text": row.text,
                    "type": "choice",
                    "required": question.required,
                    "answerOption": scale,
                }
            )
    elif kind in ("photo", "signature"):
        item["type"] = "attachment"
        if (question.max_files or 1) > 1:
            item["repeats"] = True
            extensions.append(ext(MAX_OCCURS, valueInteger=question.max_files))
        extensions += [ext(MIME_TYPE, valueCode=t) for t in question.content_types]
        if question.max_bytes is not None:
            extensions.append(ext(MAX_SIZE, valueDecimal=question.max_bytes))
        if kind == "signature":
            extensions.append(ext(SIGNATURE, valueBoolean=True))
    else:  # section
        item["type"] = "display"
        if question.description:
            extensions.append(ext(DESCRIPTION, valueString=question.description))
    if question.answerable():
        item["required"] = question.required
    if question.description and kind != "section":
        children.insert(
            0,
            {
                "linkId": f"{link_of(question)}-help",
                "text": question.description,
                "type": "display",
                "extension": [control("help")],
            },
        )
    for name, value in (
        ("abnormal_at_least", question.abnormal_at_least),
        ("abnormal_at_most", question.abnormal_at_most),
    ):
        if value is not None:
            url = ABNORMAL_AT_LEAST if name == "abnormal_at_least" else ABNORMAL_AT_MOST
            extensions.append(ext(url, valueDecimal=_number(value)))
    extensions += [ext(CARE_STEP, valueCode=step) for step in question.care_steps]
    if question.show_if is not None:
        extensions.append(ext(SHOW_IF, valueString=question.show_if))
        item.update(_enable_when(form, question.show_if) or {})
    if question.end_if is not None:
        extensions.append(ext(END_IF, valueString=question.end_if))
    if extensions:
        item["extension"] = extensions
    if children:
        item["item"] = children
    return item


def _group(question: Question) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "linkId": link_of(question),
        "text": question.text,
        "type": "group",
        "item": [],
    }
    if question.description:
        entry["extension"] = [ext(DESCRIPTION, valueString=question.description)]
    return entry


def questionnaire_items(form: FormDefinition) -> list[dict[str, Any]]:
    """The questions as items. A form imported from groups goes back into them; otherwise a
    section without a condition that heads questions becomes a group holding them, up to the
    next section (a condition on a group would hide them all, which a section's does not)."""
    if any(q.fhir_group for q in form.questions):
        return _imported_groups(form)
    items: list[dict[str, Any]] = []
    group: list[dict[str, Any]] | None = None
    questions = form.questions
    for index, question in enumerate(questions):
        if question.type == "section":
            heads = index + 1 < len(questions) and questions[index + 1].type != "section"
            if question.show_if is None and heads:
                entry = _group(question)
                entry["extension"] = [*entry.get("extension", []), ext(SECTION, valueBoolean=True)]
                items.append(entry)
                group = entry["item"]
                continue
            group = None
        (items if group is None else group).append(_item(form, question))
    return items


def _imported_groups(form: FormDefinition) -> list[dict[str, Any]]:
    parents = {q.fhir_group for q in form.questions if q.fhir_group}
    items: list[dict[str, Any]] = []
    groups: dict[str, list[dict[str, Any]]] = {}
    for question in form.questions:
        link = link_of(question)
        if question.type == "section" and link in parents:
            entry = _group(question)
            groups[link] = entry["item"]
        else:
            entry = _item(form, question)
        (groups.get(question.fhir_group or "", items)).append(entry)
    return items


def to_questionnaire(form: FormDefinition, *, published: bool, base_url: str) -> dict[str, Any]:
    """The form as a FHIR R4 Questionnaire (JSON), checked against the FHIR model."""
    extensions = [
        ext(
            SCORE,
            extension=[
                ext("name", valueString=name),
                ext("formula", valueString=formula),
            ],
        )
        for name, formula in form.scores.items()
    ]
    if form.primary_score is not None:
        extensions.append(ext(PRIMARY_SCORE, valueString=form.primary_score))
    resource: dict[str, Any] = {
        "resourceType": "Questionnaire",
        "id": fhir_id(form.id),
        "url": questionnaire_url(base_url, form),
        "identifier": [{"system": FORM_IDENTIFIER, "value": form.id}],
        "version": str(form.version),
        "title": form.title,
        "status": "active" if published else "draft",
        "subjectType": ["Patient"],
        "item": questionnaire_items(form),
    }
    if form.intro:
        resource["description"] = form.intro
    if extensions:
        resource["extension"] = extensions
    return Questionnaire.model_validate(resource).model_dump(mode="json", exclude_none=True)
