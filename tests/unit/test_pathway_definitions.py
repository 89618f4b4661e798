from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from pathways.catalog import CatalogError, describe_validation_error, load_catalog
from pathways.model import FollowUpPlan, FormDefinition

LIBRARY = Path(__file__).resolve().parents[2] / "pathways"


def plan_data() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(
        (LIBRARY / "plans" / "inpatient_discharge_followup.yaml").read_text(encoding="utf-8")
    )
    return data


def test_the_shipped_library_loads() -> None:
    catalog = load_catalog()
    plan = catalog.plans["inpatient-discharge"]
    assert [s.id for s in plan.steps] == ["day3", "day7"]
    assert [s.offset.to_timedelta().days for s in plan.steps] == [3, 7]
    snapshot = catalog.snapshot(plan.id)
    assert set(snapshot.forms) == {"discharge-recovery"}
    assert catalog.plans_for("discharge", "inpatient", "cardiology") == [plan]
    assert catalog.plans_for("discharge", "outpatient", "cardiology") == []


@pytest.mark.parametrize(
    ("mutate", "path", "reason"),
    [
        (
            lambda d: d["steps"][1].update(offset={"days": -1}),
            "steps[1].offset.days",
            "greater than or equal",
        ),
        (
            lambda d: d["steps"][0].update(lost_after={"days": 2}),
            "steps[0]",
            "lost_after must not be shorter",
        ),
        (lambda d: d["steps"][0].update(link_valid={}), "steps[0]", "link_valid must be longer"),
        (lambda d: d["steps"][1].update(id="day3"), "(document)", "step ids must be unique"),
        (lambda d: d["steps"][0].update(id="Day 3"), "steps[0].id", "should match pattern"),
        (lambda d: d.update(executor_role="janitor"), "executor_role", "'nurse' or 'doctor'"),
        (lambda d: d["steps"][0].update(offest={"days": 3}), "steps[0].offest", "Extra inputs"),
    ],
)
def test_plan_errors_name_the_exact_path(mutate: Any, path: str, reason: str) -> None:
    data = plan_data()
    mutate(data)
    with pytest.raises(ValidationError) as info:
        FollowUpPlan.model_validate(data)
    problems = describe_validation_error(info.value)
    assert any(p.startswith(f"{path}:") and reason in p for p in problems), problems


def test_form_rules() -> None:
    base = {"id": "f", "version": 1, "title": "t"}
    with pytest.raises(ValidationError, match="at least two options"):
        FormDefinition.model_validate(
            {
                **base,
                "questions": [
                    {
                        "id": "q",
                        "type": "single_choice",
                        "text": "?",
                        "options": [{"value": "a", "label": "A"}],
                    }
                ],
            }
        )
    with pytest.raises(ValidationError, match="takes no options"):
        FormDefinition.model_validate(
            {
                **base,
                "questions": [
                    {
                        "id": "q",
                        "type": "text",
                        "text": "?",
                        "options": [{"value": "a", "label": "A"}],
                    }
                ],
            }
        )
    with pytest.raises(ValidationError, match="option values must be unique"):
        FormDefinition.model_validate(
            {
                **base,
                "questions": [
                    {
                        "id": "q",
                        "type": "multiple_choice",
                        "text": "?",
                        "options": [{"value": "a", "label": "A"}, {"value": "a", "label": "B"}],
                    }
                ],
            }
        )


def test_broken_library_reports_every_problem_with_its_file(tmp_path: Path) -> None:
    (tmp_path / "plans").mkdir()
    (tmp_path / "forms").mkdir()
    data = plan_data()
    data["steps"][0]["form"] = "missing-form"
    (tmp_path / "plans" / "p.yaml").write_text(yaml.safe_dump(data, allow_unicode=True))
    (tmp_path / "forms" / "bad.yaml").write_text("id: [unclosed")
    with pytest.raises(CatalogError) as info:
        load_catalog(tmp_path)
    problems = info.value.problems
    assert any("bad.yaml: not valid YAML" in p for p in problems)
    assert any("steps[0].form: unknown form 'missing-form'" in p for p in problems)
