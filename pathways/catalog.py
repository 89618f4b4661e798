"""Loads the plan and form library shipped as YAML under pathways/plans and pathways/forms."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import ValidationError

from pathways.model import FollowUpPlan, FormDefinition, PlanSnapshot

LIBRARY_ROOT = Path(__file__).resolve().parent

M = TypeVar("M", FollowUpPlan, FormDefinition)


class CatalogError(ValueError):
    """The library does not load; ``problems`` lists each one as 'file: path: reason'."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def error_path(loc: Iterable[int | str]) -> str:
    """('steps', 2, 'offset') -> 'steps[2].offset', the way a designer reads a document."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else part
    return path or "(document)"


def describe_validation_error(exc: ValidationError) -> list[str]:
    return [f"{error_path(e['loc'])}: {e['msg']}" for e in exc.errors()]


@dataclass(frozen=True)
class Catalog:
    plans: dict[str, FollowUpPlan]
    forms: dict[str, FormDefinition]

    def snapshot(self, plan_id: str) -> PlanSnapshot:
        plan = self.plans[plan_id]
        return PlanSnapshot(plan=plan, forms={s.form: self.forms[s.form] for s in plan.steps})

    def plans_for(
        self, event: str, encounter_kind: str, department_code: str
    ) -> list[FollowUpPlan]:
        return [
            plan
            for plan in sorted(self.plans.values(), key=lambda p: p.id)
            if plan.trigger.matches(event, encounter_kind, department_code)
        ]


def _load_dir(directory: Path, model: type[M], problems: list[str]) -> dict[str, M]:
    loaded: dict[str, M] = {}
    for path in sorted(directory.glob("*.yaml")):
        name = (
            path.relative_to(LIBRARY_ROOT.parent)
            if path.is_relative_to(LIBRARY_ROOT.parent)
            else path
        )
        try:
            data: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
            item = model.model_validate(data)
        except yaml.YAMLError as exc:
            problems.append(f"{name}: not valid YAML: {exc}")
            continue
        except ValidationError as exc:
            problems.extend(f"{name}: {line}" for line in describe_validation_error(exc))
            continue
        item_id = item.id
        if item_id in loaded:
            problems.append(f"{name}: id '{item_id}' is defined twice")
            continue
        loaded[item_id] = item
    return loaded


def load_catalog(root: Path = LIBRARY_ROOT) -> Catalog:
    problems: list[str] = []
    forms = _load_dir(root / "forms", FormDefinition, problems)
    plans = _load_dir(root / "plans", FollowUpPlan, problems)
    for plan in plans.values():
        for index, step in enumerate(plan.steps):
            if step.form not in forms:
                problems.append(
                    f"plan '{plan.id}': steps[{index}].form: unknown form '{step.form}'"
                )
    if problems:
        raise CatalogError(problems)
    return Catalog(plans=plans, forms=forms)
