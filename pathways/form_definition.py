"""The form language (questions, options, scores) as plain pydantic models, and the names the
pathway language shares with it. Pure data with no I/O, so workflows can import it."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.validation import Slug


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ChoiceOption(_Model):
    value: Slug
    label: str = Field(min_length=1, max_length=100)
    # Choosing this option marks the task abnormal and alerts the responsible staff (FU-9).
    abnormal: bool = False
    # Cannot be combined with other options of a multiple-choice question ("none of these").
    exclusive: bool = False
    # Points for scales (PHQ-9, satisfaction): summed by the form's score formulas (FORM-4).
    score: float | None = None


QuestionType = Literal["single_choice", "multiple_choice", "text", "number"]


class Question(_Model):
    id: Slug
    type: QuestionType
    text: str = Field(min_length=1, max_length=300)
    required: bool = True
    options: list[ChoiceOption] = Field(default_factory=list)
    max_length: int = Field(default=500, ge=1, le=5000)
    # Numeric questions (blood glucose, blood pressure, weight): the accepted range and unit.
    minimum: float | None = None
    maximum: float | None = None
    unit: str | None = Field(default=None, max_length=20)
    # Shown (and required) only when this expression over earlier answers holds (FORM-2).
    show_if: str | None = Field(default=None, max_length=300)

    @model_validator(mode="after")
    def _options_fit_type(self) -> Self:
        if self.type in ("text", "number"):
            if self.options:
                raise ValueError(f"a {self.type} question takes no options")
            if (
                self.minimum is not None
                and self.maximum is not None
                and self.minimum > self.maximum
            ):
                raise ValueError("minimum is above maximum")
            return self
        if len(self.options) < 2:
            raise ValueError("a choice question needs at least two options")
        values = [o.value for o in self.options]
        duplicates = sorted({v for v in values if values.count(v) > 1})
        if duplicates:
            raise ValueError(f"option values must be unique, repeated: {', '.join(duplicates)}")
        if self.type == "single_choice" and any(o.exclusive for o in self.options):
            raise ValueError("'exclusive' only applies to multiple-choice options")
        return self

    def option(self, value: str) -> ChoiceOption | None:
        return next((o for o in self.options if o.value == value), None)


class FormDefinition(_Model):
    id: Slug
    version: int = Field(ge=1)
    title: str = Field(min_length=1, max_length=100)
    intro: str = ""
    questions: list[Question] = Field(min_length=1)
    # Named scores (FORM-4), each a formula over question ids, e.g. {phq9: "sum(q1, q2, …)"};
    # in a formula a question with scored options stands for its points.
    scores: dict[str, str] = Field(default_factory=dict)
    # The score reported in plan statistics (satisfaction, scale totals).
    primary_score: str | None = None

    @model_validator(mode="after")
    def _unique_question_ids(self) -> Self:
        ids = [q.id for q in self.questions]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ValueError(f"question ids must be unique, repeated: {', '.join(repeated)}")
        clash = sorted(set(ids) & set(self.scores))
        if clash:
            raise ValueError(f"score names clash with question ids: {', '.join(clash)}")
        if self.primary_score is not None and self.primary_score not in self.scores:
            raise ValueError(f"primary_score '{self.primary_score}' is not one of the scores")
        return self

    def names(self) -> set[str]:
        """Everything an expression about this form's answers may refer to."""
        return {q.id for q in self.questions} | set(self.scores)

    def question(self, question_id: str) -> Question | None:
        return next((q for q in self.questions if q.id == question_id), None)


EncounterKind = Literal["inpatient", "outpatient", "exam"]
