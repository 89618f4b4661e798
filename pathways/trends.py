"""What of a form can be followed over time (FORM-4): its number and rating questions (blood
glucose, weight, pain) and its scores (PHQ-9 total), each with its label, unit and the
thresholds past which a value is abnormal. Pure: the staff API and the patient's page both draw
from it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pathways.form_definition import FormDefinition

MEASURED_TYPES = frozenset({"number", "rating"})


@dataclass(frozen=True)
class Measure:
    name: str
    label: str
    unit: str | None = None
    # (value, label): an answer at or above the first of "at_least", at or below "at_most".
    at_least: float | None = None
    at_most: float | None = None
    limits: list[tuple[float, str]] = field(default_factory=list)

    def abnormal(self, value: float) -> bool:
        return (self.at_least is not None and value >= self.at_least) or (
            self.at_most is not None and value <= self.at_most
        )


def measures(form: FormDefinition) -> dict[str, Measure]:
    """Every name of the form with a number for an answer, in the form's order."""
    found: dict[str, Measure] = {}
    for question in form.questions:
        if question.type not in MEASURED_TYPES:
            continue
        limits = []
        if question.abnormal_at_least is not None:
            limits.append((question.abnormal_at_least, f"≥{question.abnormal_at_least:g} 异常"))
        if question.abnormal_at_most is not None:
            limits.append((question.abnormal_at_most, f"≤{question.abnormal_at_most:g} 异常"))
        found[question.id] = Measure(
            name=question.id,
            label=question.text,
            unit=question.unit,
            at_least=question.abnormal_at_least,
            at_most=question.abnormal_at_most,
            limits=limits,
        )
    for name in form.scores:
        label = f"{form.title}总分" if name == form.primary_score else f"{form.title}：{name}"
        found[name] = Measure(name=name, label=label)
    return found


def measured(
    name: str, answers: Mapping[str, Sequence[str]], scores: Mapping[str, Any]
) -> float | None:
    """The value one submission gave ``name``: a score, or the number answered."""
    score = scores.get(name)
    if isinstance(score, int | float) and not isinstance(score, bool):
        return float(score)
    given = answers.get(name)
    if not given:
        return None
    try:
        value = float(given[0])
    except ValueError:
        return None
    return value if value == value and abs(value) != float("inf") else None
