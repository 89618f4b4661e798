"""The pathway language: the library validates, problems are reported at their exact path,
and timelines follow the calendar."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from messaging.templates import load_platform_templates
from pathways.answers import compute_scores, expression_values
from pathways.definition import validate_definition
from pathways.library import LIBRARY_ROOT, load_library
from pathways.timeline import timeline

SHANGHAI = ZoneInfo("Asia/Shanghai")
TEMPLATES = set(load_platform_templates())
LIBRARY = load_library(TEMPLATES)


def raw(pathway_id: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(
        (LIBRARY_ROOT / "library" / f"{pathway_id}.yaml").read_text(encoding="utf-8")
    )
    return data


def problems(data: dict[str, Any]) -> dict[str, str]:
    _, found = validate_definition(
        data, forms=LIBRARY.forms, articles=LIBRARY.articles, templates=TEMPLATES
    )
    return {p.path: p.message for p in found}


def test_the_library_holds_the_tender_plans() -> None:
    kinds = {d.id: d.kind for d in LIBRARY.definitions.values()}
    assert kinds == {
        "inpatient-discharge": "followup",
        "outpatient-visit": "followup",
        "cardiac-education": "education",
        "outpatient-satisfaction": "satisfaction",
        "diabetes-management": "case_management",
        "exam-followup": "followup",
    }


def test_every_problem_is_listed_at_its_path() -> None:
    data = copy.deepcopy(raw("diabetes-management"))
    data["steps"][2]["schedule"]["recurrence"]["every"] = {"months": 0}
    data["steps"][1]["rules"][0]["when"] = "fasting_glucose >= 13.9 and __import__('os')"
    data["steps"][1]["rules"][0]["activate"] = ["monthly"]
    data["steps"][4]["action"]["form"] = "no-such-form"
    data["steps"][0]["validity"] = {"days": 10}
    data["steps"][5]["lost_after"] = {"days": 3}
    data["outcomes"][0]["indicator"] = "cholesterol"
    data["steps"].append(copy.deepcopy(data["steps"][0]))
    found = problems(data)
    assert "steps[2].schedule.recurrence" in found  # pydantic: 'every' must be longer than zero

    data["steps"][2]["schedule"]["recurrence"]["every"] = {"weeks": 1}
    found = problems(data)
    assert found == {
        "steps[0].id": "step id 'baseline' is used twice",
        "steps[7].id": "step id 'baseline' is used twice",
        "steps[1].rules[0].when": (
            "only these functions: abs, band, count, len, max, mean, min, round, sum"
        ),
        "steps[1].rules[0].activate[0]": "'monthly' is not a step without a schedule",
        "steps[4].action.form": "unknown form 'no-such-form'",
        "steps[5].lost_after": "must not be shorter than validity",
        "outcomes[0].indicator": "'cholesterol' is not in form 'diabetes-assessment'",
    }


def test_expressions_may_only_name_questions_and_scores() -> None:
    data = copy.deepcopy(raw("outpatient-satisfaction"))
    data["steps"][0]["rules"][0]["when"] = "satisfaction <= 2.5 and mood == 'bad'"
    assert problems(data) == {
        "steps[0].rules[0].when": "unknown names: mood (use question ids or score names)"
    }


def test_a_complaint_quotes_a_text_question_of_the_steps_form() -> None:
    data = copy.deepcopy(raw("outpatient-satisfaction"))
    data["steps"][0]["rules"][0]["complaint"]["quote"] = "waiting"
    assert problems(data) == {
        "steps[0].rules[0].complaint.quote": "'waiting' is not a text question of the step's form"
    }
    data["steps"][0]["rules"][0]["complaint"] = {"category": "parking", "summary": "评分偏低"}
    assert "steps[0].rules[0].complaint.category" in problems(data)


def test_monthly_steps_follow_the_calendar() -> None:
    anchor = datetime(2026, 1, 31, 3, 0, tzinfo=UTC)  # 11:00 Beijing
    planned = timeline(LIBRARY.definitions["diabetes-management"], anchor, SHANGHAI)
    monthly = [p.due_at.astimezone(SHANGHAI) for p in planned if p.step_id == "monthly"]
    assert [(d.month, d.day, d.hour) for d in monthly] == [
        (2, 28, 10), (3, 31, 10), (4, 30, 10), (5, 31, 10), (6, 30, 10), (7, 31, 10),
    ]  # fmt: skip
    weekly = [p for p in planned if p.step_id == "medication"]
    # Weekly from day 7 until six months: 7 February … 25 July.
    assert len(weekly) == 25
    assert {p.due_at.astimezone(SHANGHAI).hour for p in weekly} == {8}
    # Dormant steps have no time of their own.
    assert not [p for p in planned if p.step_id == "doctor-call"]


def test_satisfaction_scores_and_rule_values() -> None:
    form = LIBRARY.forms["satisfaction-outpatient"]
    answers = {
        "registration": ["s2"],
        "waiting": ["s1"],
        "doctor": ["s3"],
        "pharmacy": ["s2"],
        "environment": ["s4"],
    }
    assert compute_scores(form, answers) == {"satisfaction": 2.4}
    values = expression_values(form, answers)
    assert values["waiting"] == "s1"
    assert values["satisfaction"] == 2.4


@pytest.mark.parametrize("pathway_id", sorted(LIBRARY.definitions))
def test_each_plan_previews(pathway_id: str) -> None:
    planned = timeline(LIBRARY.definitions[pathway_id], datetime.now(UTC), SHANGHAI)
    assert planned
    assert planned == sorted(planned, key=lambda p: p.due_at)
