"""What two Questionnaires must share to be the same questionnaire: for each item its linkId,
type, text, whether it is required or repeats, its length, its answer options (a coding's
system, code and display, or a text or number; ordinal value, exclusivity), its conditions,
units (system, code, display) and limits, and its children. CarePath's own extensions and a
display's wording of a coded condition are not compared."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

HL7 = "http://hl7.org/fhir/StructureDefinition/"


def _standard(extensions: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for extension in extensions:
        url = extension["url"]
        if not url.startswith(HL7):
            continue
        value = next(v for k, v in extension.items() if k.startswith("value"))
        name = url.removeprefix(HL7)
        if name == "questionnaire-unit":
            value = (value.get("system"), value.get("code"), value.get("display"))
        elif name == "questionnaire-itemControl":
            value = [c["code"] for c in value["coding"]]
        found[name] = value
    return found


def _answer(condition: Mapping[str, Any]) -> Any:
    key = next(k for k in condition if k.startswith("answer"))
    value = condition[key]
    if key == "answerCoding":
        return (value.get("system"), value["code"])
    return value


def _option(option: Mapping[str, Any]) -> Any:
    key = next(k for k in option if k.startswith("value"))
    value = option[key]
    if key == "valueCoding":
        return (value.get("system"), value["code"], value.get("display"))
    return (key, value)


def shape(items: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    shaped = []
    for item in items:
        conditions = [
            (c["question"], c["operator"], _answer(c)) for c in item.get("enableWhen", [])
        ]
        shaped.append(
            {
                "linkId": item["linkId"],
                "type": item["type"],
                "text": item.get("text"),
                "required": bool(item.get("required", False)),
                "repeats": bool(item.get("repeats", False)),
                "maxLength": item.get("maxLength"),
                "options": [
                    (_option(o), _standard(o.get("extension", [])))
                    for o in item.get("answerOption", [])
                ],
                "enableWhen": conditions,
                "enableBehavior": item.get("enableBehavior") if len(conditions) > 1 else None,
                "extensions": _standard(item.get("extension", [])),
                "item": shape(item.get("item", [])),
            }
        )
    return shaped
