"""The form language's own rules, and a broken library reported problem by problem."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from core.validation import LibraryError
from pathways.form_definition import FormDefinition
from pathways.library import LIBRARY_ROOT, load_library


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
    for directory in ("library", "forms", "articles"):
        (tmp_path / directory).mkdir()
    plan = yaml.safe_load((LIBRARY_ROOT / "library" / "inpatient-discharge.yaml").read_text())
    plan["steps"][0]["action"]["form"] = "missing-form"
    (tmp_path / "library" / "p.yaml").write_text(yaml.safe_dump(plan, allow_unicode=True))
    bad_form = {
        "id": "bad",
        "version": 1,
        "title": "t",
        "questions": [
            {
                "id": "q",
                "type": "single_choice",
                "text": "?",
                "options": [{"value": "a", "label": "A"}],
            }
        ],
    }
    (tmp_path / "forms" / "bad.yaml").write_text(yaml.safe_dump(bad_form))
    with pytest.raises(LibraryError) as info:
        load_library({"followup_invite"}, tmp_path)
    problems = info.value.problems
    assert any(p.startswith("bad.yaml: questions[0]") and "two options" in p for p in problems)
