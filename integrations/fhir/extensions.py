"""The FHIR vocabulary CarePath's forms travel in: the standard extensions (ordinalValue, the SDC
itemControl, unit, minValue, maxValue…) and CarePath's own for what FHIR has no element for, with
small helpers to write and read them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pathways.form_definition import YES_NO_OPTIONS, ChoiceOption, FormDefinition, Question

HL7 = "http://hl7.org/fhir/StructureDefinition"
ORDINAL = f"{HL7}/ordinalValue"
ITEM_CONTROL = f"{HL7}/questionnaire-itemControl"
ITEM_CONTROL_SYSTEM = "http://hl7.org/fhir/questionnaire-item-control"
UNIT = f"{HL7}/questionnaire-unit"
MIN_VALUE = f"{HL7}/minValue"
MAX_VALUE = f"{HL7}/maxValue"
OPTION_EXCLUSIVE = f"{HL7}/questionnaire-optionExclusive"
MIME_TYPE = f"{HL7}/mimeType"
MAX_SIZE = f"{HL7}/maxSize"
MAX_OCCURS = f"{HL7}/questionnaire-maxOccurs"
# What FHIR has no element for.
CAREPATH = "https://carepath.dev/fhir/StructureDefinition"
SHOW_IF = f"{CAREPATH}/show-if"
END_IF = f"{CAREPATH}/end-if"
ABNORMAL = f"{CAREPATH}/abnormal"
ENDS_FORM = f"{CAREPATH}/ends-form"
OTHER = f"{CAREPATH}/other"
ABNORMAL_AT_LEAST = f"{CAREPATH}/abnormal-at-least"
ABNORMAL_AT_MOST = f"{CAREPATH}/abnormal-at-most"
RATING_SCALE = f"{CAREPATH}/rating-scale"
CASCADE = f"{CAREPATH}/cascade"
# A yes/no question with its own labels (or options that end the form): a choice of yes and no.
YES_NO = f"{CAREPATH}/yes-no"
# A care step the question is about (SAT-2), one extension per step.
CARE_STEP = f"{CAREPATH}/care-step"
SIGNATURE = f"{CAREPATH}/signature"
DESCRIPTION = f"{CAREPATH}/description"
# A group made from a section heading the questions after it (not from a group imported).
SECTION = f"{CAREPATH}/section"
SCORE = f"{CAREPATH}/score"
PRIMARY_SCORE = f"{CAREPATH}/primary-score"
FORM_IDENTIFIER = "https://carepath.dev/fhir/form-id"
# A cascade option is exported as the path of values from the top level, and its label so.
CASCADE_SEPARATOR = "/"
CASCADE_LABEL_SEPARATOR = " / "


def ext(url: str, **value: Any) -> dict[str, Any]:
    return {"url": url, **value}


def control(code: str) -> dict[str, Any]:
    return ext(
        ITEM_CONTROL,
        valueCodeableConcept={"coding": [{"system": ITEM_CONTROL_SYSTEM, "code": code}]},
    )


def fhir_id(form_id: str) -> str:
    # A FHIR id has no underscore; the form's own id travels in the identifier.
    return form_id.replace("_", "-")


def own_url(base_url: str, form_id: str) -> str:
    return f"{base_url.rstrip('/')}/fhir/Questionnaire/{fhir_id(form_id)}"


def questionnaire_url(base_url: str, form: FormDefinition) -> str:
    """The canonical URL a form's Questionnaire is known by."""
    return form.fhir_url or own_url(base_url, form.id)


def extensions_of(element: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for extension in element.get("extension") or []:
        found.setdefault(extension.get("url", ""), []).append(extension)
    return found


def value_of(extension: Mapping[str, Any]) -> Any:
    return next((v for k, v in extension.items() if k.startswith("value")), None)


def one(extensions: Mapping[str, list[dict[str, Any]]], url: str) -> Any:
    found = extensions.get(url)
    return value_of(found[0]) if found else None


def controls_of(extensions: Mapping[str, list[dict[str, Any]]]) -> set[str]:
    return {
        coding.get("code", "")
        for extension in extensions.get(ITEM_CONTROL, [])
        for coding in (extension.get("valueCodeableConcept") or {}).get("coding", [])
    }


def link_of(question: Question) -> str:
    """The linkId a question travels under: the one it was imported with, or its id."""
    return question.link_id or question.id


def is_boolean(question: Question) -> bool:
    """A yes/no question FHIR's boolean says fully: the plain 是/否."""
    plain = [ChoiceOption.model_validate(o) for o in YES_NO_OPTIONS]
    return question.type == "yes_no" and list(question.options) == plain


def answer_of(question: Question, value: str) -> dict[str, Any]:
    """An option as an answerOption's or an answer's value: as the Questionnaire it was
    imported from wrote it (a coding, a text, a whole number), a coding otherwise."""
    option = question.option(value)
    if option is not None and option.fhir_answer == "string":
        return {"valueString": option.label}
    if option is not None and option.fhir_answer == "integer":
        return {"valueInteger": int(option.fhir_code or option.label)}
    return {"valueCoding": coding_of(question, value)}


def coding_of(question: Question, value: str) -> dict[str, Any]:
    """The Coding an option of the question travels as: the one it was imported with, or its
    value and label."""
    option = question.option(value)
    if option is None:
        return {"code": value}
    coding = {"code": option.fhir_code or option.value, "display": option.label}
    if option.fhir_system:
        coding = {"system": option.fhir_system, **coding}
    return coding
