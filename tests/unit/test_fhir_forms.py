"""Forms as FHIR R4 Questionnaires and answers as QuestionnaireResponses: every library form
survives the round trip unchanged; a Questionnaire written outside the project imports into the
form a designer would have written and exports back equivalent; what cannot be carried over is
named at its FHIR path; a submission of every question type becomes a valid response."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from integrations.fhir.questionnaire_export import to_questionnaire
from integrations.fhir.questionnaire_import import QuestionnaireRejected, from_questionnaire
from integrations.fhir.questionnaire_response import to_questionnaire_response
from pathways.form_definition import FormDefinition
from pathways.library import load_forms
from tests.fhir_shapes import shape

BASE = "https://carepath.hospital.example"
FIXTURE = Path(__file__).parents[1] / "fixtures" / "fhir" / "cardiac-follow-up.json"
FORMS = load_forms()


def _outside() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(FIXTURE.read_text(encoding="utf-8"))
    return loaded


def _imported(resource: dict[str, Any]) -> FormDefinition:
    return FormDefinition.model_validate(
        {**from_questionnaire(resource, base_url=BASE), "version": 1}
    )


@pytest.mark.parametrize("form_id", sorted(FORMS))
def test_every_library_form_survives_a_round_trip(form_id: str) -> None:
    form = FORMS[form_id]
    exported = to_questionnaire(form, published=True, base_url=BASE)
    assert exported["status"] == "active"
    assert exported["url"] == f"{BASE}/fhir/Questionnaire/{form_id}"
    again = FormDefinition.model_validate(
        {**from_questionnaire(exported, base_url=BASE), "version": form.version}
    )
    assert again == form


def test_scores_travel_as_ordinal_values() -> None:
    exported = to_questionnaire(FORMS["phq-9"], published=False, base_url=BASE)
    assert exported["status"] == "draft"
    first = exported["item"][0]
    assert first["type"] == "choice"
    ordinals = [
        next(e["valueDecimal"] for e in o["extension"] if e["url"].endswith("/ordinalValue"))
        for o in first["answerOption"]
    ]
    assert ordinals == [0, 1, 2, 3]


def test_an_outside_questionnaire_becomes_the_form_a_designer_would_write() -> None:
    form = _imported(_outside())
    assert (form.id, form.title, form.fhir_url) == (
        "cardiac-follow-up",
        "心脏术后随访问卷",
        "http://example.org/fhir/Questionnaire/cardiac-follow-up",
    )
    kinds = {q.link_id: (q.type, q.required) for q in form.questions}
    assert kinds == {
        "1": ("section", False),
        "1.1": ("yes_no", True),
        "1.2": ("date", True),
        "1.3": ("number", True),
        "2": ("section", False),
        "2.1": ("multiple_choice", True),
        "2.2": ("single_choice", True),
        "2.3": ("rating", False),
        "2.4": ("time", False),
        "2.5": ("single_choice", True),
        "2.6": ("text", False),
        "2.7": ("single_choice", False),
        "2.8": ("text", False),
        "3": ("long_text", False),
        "4": ("section", False),
    }
    by_link = {q.link_id: q for q in form.questions}
    # Conditions become show-if expressions over the questions' ids here.
    assert by_link["1.2"].show_if == "q1_1 == 'yes'"
    assert by_link["2.2"].show_if == "'chest-pain' in q2_1"
    assert by_link["2.4"].show_if == "'edema' in q2_1 or q1_3 > 90"
    weight = by_link["1.3"]
    assert (weight.unit, weight.minimum, weight.maximum) == ("kg", 20, 250)
    assert by_link["2.3"].scale == "pain"
    frequency = by_link["2.2"]
    assert [(o.fhir_code, o.label, o.score) for o in frequency.options] == [
        ("LA6568-5", "完全没有", 0),
        ("LA6569-3", "有几天", 1),
        ("LA6570-1", "一半以上的天数", 2),
        ("LA6571-9", "几乎每天", 3),
    ]
    assert [o.exclusive for o in by_link["2.1"].options] == [False, False, False, True]
    # Options written as Chinese text get values of their own; an open-choice item's free
    # text is an "other, please specify" option here.
    where = by_link["2.5"]
    assert [(o.value, o.label, o.other) for o in where.options] == [
        ("o1", "家中", False),
        ("o2", "康复机构", False),
        ("o3", "亲属家", False),
        ("other", "其他", True),
    ]
    assert by_link["2.6"].show_if == "q2_5 == 'o2'"
    assert [o.label for o in by_link["2.7"].options] == ["0", "3", "7"]
    assert by_link["2.8"].show_if == "q2_7 == '0'"
    assert (weight.fhir_unit_system, weight.fhir_unit_code) == ("http://unitsofmeasure.org", "kg")


def test_an_outside_questionnaire_exports_back_equivalent() -> None:
    outside = _outside()
    exported = to_questionnaire(_imported(outside), published=True, base_url=BASE)
    assert exported["url"] == outside["url"]
    assert exported["title"] == outside["title"]
    assert exported["description"] == outside["description"]
    assert shape(exported["item"]) == shape(outside["item"])


def test_what_cannot_be_carried_over_is_named_and_nothing_is_imported() -> None:
    outside = _outside()
    symptoms = outside["item"][1]["item"]
    symptoms[0]["answerValueSet"] = "http://example.org/ValueSet/symptoms"
    symptoms[2]["initial"] = [{"valueInteger": 3}]
    symptoms[3]["enableWhen"][1]["question"] = "9.9"
    outside["item"].append({"linkId": "5", "text": "血压", "type": "quantity"})
    outside["item"].append(
        {
            "linkId": "6",
            "text": "复诊医院",
            "type": "string",
            "item": [{"linkId": "6.1", "text": "科室", "type": "string"}],
        }
    )
    with pytest.raises(QuestionnaireRejected) as refused:
        from_questionnaire(outside, base_url=BASE)
    assert refused.value.problems == [
        ("item[1].item[0].answerValueSet", "'answerValueSet' is not supported"),
        ("item[1].item[2].initial", "'initial' is not supported"),
        ("item[1].item[3].enableWhen[1].question", "refers to no earlier item"),
        ("item[4].type", "items of type 'quantity' are not supported"),
        ("item[5].item", "questions nested under a question are not supported"),
    ]


@pytest.mark.parametrize(
    ("resource", "path"),
    [
        ({"resourceType": "Patient"}, "resourceType"),
        ({"resourceType": "Questionnaire", "item": []}, "status"),
        (
            {"resourceType": "Questionnaire", "status": "active", "item": [{"type": "string"}]},
            "item.0.linkId",
        ),
        ({"resourceType": "Questionnaire", "status": "active"}, "item"),
    ],
)
def test_a_resource_that_is_not_a_valid_questionnaire_is_refused(
    resource: dict[str, Any], path: str
) -> None:
    with pytest.raises(QuestionnaireRejected) as refused:
        from_questionnaire(resource, base_url=BASE)
    assert path in [p.replace("[", ".").replace("]", "") for p, _ in refused.value.problems]


def test_a_submission_of_every_question_type_is_a_questionnaire_response() -> None:
    form = FORMS["all-question-types"]
    answers = {
        "willing": ["yes"],
        "overall": ["fair"],
        "symptoms": ["wound", "other"],
        "symptoms.other": ["头晕"],
        "department": ["surgery"],
        "pain_site": ["limbs", "upper", "shoulder"],
        "has_fever": ["yes"],
        "temperature": ["38.5"],
        "fever_since": ["2026-03-01"],
        "medicine_time": ["08:30"],
        "pain": ["6"],
        "stars": ["4"],
        "recommend": ["9"],
        "sleep.falling_asleep": ["good"],
        "sleep.waking": ["bad"],
        "wound_photo": ["upl_" + "a" * 32],
        "summary": ["伤口有些红"],
        "signature": ["upl_" + "b" * 32],
    }
    resource = to_questionnaire_response(
        form,
        answers,
        questionnaire_url=f"{BASE}/fhir/Questionnaire/all-question-types",
        response_id="resp-1",
        subject="Patient/3f1c",
        authored=datetime(2026, 3, 2, 8, 0, tzinfo=UTC),
        file_url=lambda ref: f"{BASE}/files/{ref}?sig=x",
    )
    assert resource["resourceType"] == "QuestionnaireResponse"
    assert resource["questionnaire"].endswith("/all-question-types|1")
    assert resource["subject"] == {"reference": "Patient/3f1c"}
    # The form's one section heads all its questions: they are answered inside its group.
    [group] = resource["item"]
    assert group["linkId"] == "welcome"
    items = {i["linkId"]: i for i in group["item"]}
    assert "story" not in items  # left empty

    def values(link: str) -> list[Any]:
        return [next(iter(a.values())) for a in items[link]["answer"]]

    # Yes/no with its own labels or an abnormal answer is a coding (the plain one a boolean).
    assert values("willing")[0]["code"] == "yes"
    assert values("has_fever")[0] == {"code": "yes", "display": "是"}
    assert [v["code"] for v in values("symptoms")[:2]] == ["wound", "other"]
    assert values("symptoms")[2] == "头晕"
    assert values("pain_site")[0]["code"] == "limbs/upper/shoulder"
    assert values("temperature") == [38.5]
    assert values("medicine_time") == ["08:30:00"]
    assert values("recommend") == [9]
    assert values("wound_photo")[0]["url"].startswith(f"{BASE}/files/upl_")
    sleep = {
        row["linkId"]: row["answer"][0]["valueCoding"]["code"] for row in items["sleep"]["item"]
    }
    assert sleep == {"sleep.falling_asleep": "good", "sleep.waking": "bad"}


def test_answers_to_an_imported_form_go_back_under_its_link_ids_and_codes() -> None:
    form = _imported(_outside())
    resource = to_questionnaire_response(
        form,
        {
            "q1_1": ["no"],
            "q1_3": ["72.5"],
            "q2_1": ["chest-pain"],
            "q2_2": ["la6569-3"],
            "q2_5": ["other"],
            "q2_5.other": ["女儿家"],
            "q2_7": ["3"],
        },
        questionnaire_url=form.fhir_url or "",
        response_id="resp-2",
        subject="Patient/3f1c",
        authored=datetime(2026, 3, 2, 8, 0, tzinfo=UTC),
        file_url=str,
    )
    # In the Questionnaire's groups, as FHIR has it.
    groups = {g["linkId"]: g["item"] for g in resource["item"]}
    assert list(groups) == ["1", "2"]
    answers = {i["linkId"]: i["answer"][0] for group in groups.values() for i in group}
    assert resource["questionnaire"] == "http://example.org/fhir/Questionnaire/cardiac-follow-up|1"
    assert answers["1.1"] == {"valueBoolean": False}
    assert answers["1.3"] == {"valueDecimal": 72.5}
    # Answered as the Questionnaire asks: its own free text, its own numbers.
    assert next(i for i in groups["2"] if i["linkId"] == "2.5")["answer"] == [
        {"valueString": "女儿家"}
    ]
    assert answers["2.7"] == {"valueInteger": 3}
    assert answers["2.2"]["valueCoding"] == {
        "system": "http://loinc.org",
        "code": "LA6569-3",
        "display": "有几天",
    }
