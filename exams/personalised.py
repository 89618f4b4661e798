"""A personalised exam list (PX-8, US-H1): the base package for every adult, and the items the
patient's age, sex and questionnaire answers call for (exams/rules.yaml). Required items are
always booked; optional ones only when the reviewing doctor ticks them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from exams.catalogue import Catalogue

_HERE = Path(__file__).resolve().parent


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Condition(_Model):
    min_age: int | None = Field(default=None, ge=0, le=150)
    max_age: int | None = Field(default=None, ge=0, le=150)
    sex: Literal["M", "F"] | None = None
    # A value of the patient's latest answers to a form: a score or a question's answer.
    form: str | None = None
    name: str | None = None
    at_least: float | None = None
    at_most: float | None = None
    equals: str | None = None


class Rule(_Model):
    item: str
    required: bool
    reason: str = Field(min_length=1, max_length=100)
    when: Condition


class Rules(_Model):
    base: list[str]
    rules: list[Rule]


@dataclass(frozen=True)
class ListedItem:
    code: str
    name: str
    category: str
    required: bool
    reason: str


@cache
def exam_rules() -> Rules:
    return Rules.model_validate(yaml.safe_load((_HERE / "rules.yaml").read_text(encoding="utf-8")))


def age_on(birth: date, day: date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def _number(value: Any) -> float | None:
    if isinstance(value, list):
        value = value[0] if len(value) == 1 else None
    try:
        return float(value) if value is not None and not isinstance(value, bool) else None
    except (TypeError, ValueError):
        return None


def _holds(
    when: Condition,
    *,
    age: int | None,
    sex: str | None,
    answers: Mapping[str, Mapping[str, Any]],
) -> bool:
    if when.min_age is not None and (age is None or age < when.min_age):
        return False
    if when.max_age is not None and (age is None or age > when.max_age):
        return False
    if when.sex is not None and sex != when.sex:
        return False
    if when.form is None or when.name is None:
        return True
    value = answers.get(when.form, {}).get(when.name)
    if value is None:
        return False
    if when.equals is not None:
        chosen = value if isinstance(value, list) else [value]
        return when.equals in [str(v) for v in chosen]
    number = _number(value)
    if number is None:
        return False
    return (when.at_least is None or number >= when.at_least) and (
        when.at_most is None or number <= when.at_most
    )


def personalised_list(
    *,
    birth_date: date | None,
    sex: str | None,
    today: date,
    answers: Mapping[str, Mapping[str, Any]],
    known: Catalogue,
    rules: Rules | None = None,
) -> list[ListedItem]:
    """The items, base package first then by rule order; an item a rule makes required is
    required even if another makes it optional. ``answers``: form id → the latest values
    (answers and scores) of the patient's submissions to it."""
    rules = rules or exam_rules()
    age = age_on(birth_date, today) if birth_date else None
    listed: dict[str, ListedItem] = {}
    for code in rules.base:
        item = known.items[code]
        listed[code] = ListedItem(code, item.name, item.category, True, "基础体检项目")
    for rule in rules.rules:
        if not _holds(rule.when, age=age, sex=sex, answers=answers):
            continue
        item = known.items[rule.item]
        before = listed.get(rule.item)
        if before is None or (rule.required and not before.required):
            listed[rule.item] = ListedItem(
                rule.item, item.name, item.category, rule.required, rule.reason
            )
    return list(listed.values())


def booked_items(listed: Sequence[ListedItem], ticked: Sequence[str]) -> list[ListedItem]:
    """What is booked: every required item, and the optional ones the doctor ticked."""
    chosen = set(ticked)
    return [item for item in listed if item.required or item.code in chosen]
