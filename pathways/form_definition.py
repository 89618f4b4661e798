"""The form language (questions, options, scores) as plain pydantic models, and the names the
pathway language shares with it. Pure data with no I/O, so workflows can import it.

Forms are stored inside recorded workflow histories: every field added here has a default, and
a form written before a field existed loads and answers exactly as it did.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import date
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.validation import Slug
from pathways.expressions import ExpressionError, compile_expression


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
    # "Other, please specify": choosing it requires a short text, answered under the key
    # "<question>.<value>" (see pathways.answers).
    other: bool = False
    # Skip to end: choosing it ends the form, later questions are not asked (nor kept).
    ends_form: bool = False
    # The next level of a cascade question (province → city → district).
    children: list[ChoiceOption] = Field(default_factory=list)
    # The coding this option had in the FHIR Questionnaire it was imported from (a LOINC answer
    # code such as LA6568-5), exported again under it.
    fhir_system: str | None = Field(default=None, max_length=255)
    fhir_code: str | None = Field(default=None, max_length=255)
    # How that Questionnaire wrote it: a coding, a text or a whole number; "open" is the free
    # text of an open-choice item, which has no answer option of its own there.
    fhir_answer: Literal["coding", "string", "integer", "open"] = "coding"


class MatrixRow(_Model):
    id: Slug
    text: str = Field(min_length=1, max_length=200)


QuestionType = Literal[
    "single_choice",
    "multiple_choice",
    "dropdown",  # a single choice shown as a select list
    "cascade",  # a single choice through nested levels of options
    "yes_no",
    "text",  # short text
    "long_text",
    "number",
    "date",  # YYYY-MM-DD
    "time",  # HH:MM, 24 hours
    "rating",  # 1–5 stars, 0–10 NPS or 0–10 pain, by its scale
    "matrix",  # rows answered on one shared scale of options
    "photo",  # upload references
    "signature",  # one upload reference to a PNG
    "section",  # display only: a heading and a description, never answered
]
CHOICE_TYPES = frozenset({"single_choice", "multiple_choice", "dropdown"})
# The types whose answer is one option value (or the path to one, for a cascade).
SINGLE_TYPES = frozenset({"single_choice", "dropdown", "yes_no", "cascade"})
UPLOAD_TYPES = frozenset({"photo", "signature"})

# The steps of a visit or stay a satisfaction question can be about (SAT-2): the HIS event says
# which the patient went through, and a question tagged with others is not asked.
CareStep = Literal[
    "registration",  # 挂号
    "payment",  # 缴费
    "laboratory",  # 检验
    "imaging",  # 影像检查（CT、磁共振、超声）
    "endoscopy",  # 内镜
    "pharmacy",  # 药房取药
    "ward",  # 住院病房
    "surgery",  # 手术
    "discharge",  # 出院办理
    "rehabilitation",  # 康复
]
CARE_STEPS: frozenset[str] = frozenset(CareStep.__args__)  # type: ignore[attr-defined]

RatingScale = Literal["stars5", "nps", "pain"]
# The accepted whole numbers of each rating scale.
RATING_RANGES: dict[str, tuple[int, int]] = {"stars5": (1, 5), "nps": (0, 10), "pain": (0, 10)}

ImageType = Literal["image/jpeg", "image/png", "image/heic", "image/webp"]
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
# What an upload question accepts when the form does not say: the limits the upload service
# enforces on the bytes, and the page shows the patient.
UPLOAD_DEFAULTS: dict[str, dict[str, Any]] = {
    "photo": {
        "max_files": 1,
        "max_bytes": 10 * 1024 * 1024,
        # Not HEIC unless the form asks: its metadata (the place a photo was taken) is kept,
        # and staff browsers other than Safari cannot show it. iPhones send JPEG instead.
        "content_types": ["image/jpeg", "image/png", "image/webp"],
    },
    "signature": {"max_files": 1, "max_bytes": 1024 * 1024, "content_types": ["image/png"]},
}
MAX_CASCADE_DEPTH = 4
LONG_TEXT_DEFAULT_LENGTH = 2000
YES_NO_OPTIONS = [{"value": "yes", "label": "是"}, {"value": "no", "label": "否"}]
# A matrix row is named in expressions as "<question>__<row>": expressions have no attribute
# access, and a slug never holds two underscores by accident in the shipped forms.
ROW_NAME_SEPARATOR = "__"

# Fields that mean something for some types only, and the types they belong to. A value other
# than the default on another type is refused rather than silently ignored. minimum, maximum
# and unit were accepted on text questions before this check existed, so text keeps them.
_FIELD_TYPES: dict[str, frozenset[str]] = {
    "minimum": frozenset({"number", "text"}),
    "maximum": frozenset({"number", "text"}),
    "unit": frozenset({"number", "text"}),
    "fhir_unit_system": frozenset({"number"}),
    "fhir_unit_code": frozenset({"number"}),
    "scale": frozenset({"rating"}),
    "rows": frozenset({"matrix"}),
    "min_date": frozenset({"date"}),
    "max_date": frozenset({"date"}),
    "abnormal_at_least": frozenset({"number", "rating"}),
    "abnormal_at_most": frozenset({"number", "rating"}),
    "max_files": UPLOAD_TYPES,
    "max_bytes": UPLOAD_TYPES,
    "content_types": UPLOAD_TYPES,
}
_OPTIONLESS = frozenset(
    {"text", "long_text", "number", "date", "time", "rating", "photo", "signature", "section"}
)


class Question(_Model):
    id: Slug
    type: QuestionType
    text: str = Field(min_length=1, max_length=300)
    # Help text under the question; for a section, its body.
    description: str | None = Field(default=None, max_length=2000)
    required: bool = True
    # The choices; for a matrix the scale every row is answered on; for a cascade the top level.
    options: list[ChoiceOption] = Field(default_factory=list)
    max_length: int = Field(default=500, ge=1, le=5000)
    # The longest "please specify" text of an option marked other.
    other_max_length: int = Field(default=100, ge=1, le=500)
    # Numeric questions (blood glucose, blood pressure, weight): the accepted range and unit.
    minimum: float | None = None
    maximum: float | None = None
    unit: str | None = Field(default=None, max_length=20)
    # The unit's coding in the FHIR Questionnaire the form was imported from (UCUM "kg").
    fhir_unit_system: str | None = Field(default=None, max_length=255)
    fhir_unit_code: str | None = Field(default=None, max_length=40)
    # Number and rating questions: an answer at or beyond a threshold is abnormal (pain ≥ 7).
    abnormal_at_least: float | None = None
    abnormal_at_most: float | None = None
    scale: RatingScale | None = None
    rows: list[MatrixRow] = Field(default_factory=list)
    min_date: date | None = None
    max_date: date | None = None
    # Upload questions: the limits the upload service enforces (defaults in UPLOAD_DEFAULTS).
    max_files: int | None = Field(default=None, ge=1, le=5)
    max_bytes: int | None = Field(default=None, ge=1, le=MAX_UPLOAD_BYTES)
    content_types: list[ImageType] = Field(default_factory=list)
    # Shown (and required) only when this expression over earlier answers holds (FORM-2).
    show_if: str | None = Field(default=None, max_length=300)
    # Skip to end: when this expression over the answers so far (this one included) holds,
    # the form ends here.
    end_if: str | None = Field(default=None, max_length=300)
    # Asked only when the patient's encounter went through one of these steps (SAT-2); an
    # encounter whose steps the HIS did not report is asked every question.
    care_steps: list[CareStep] = Field(default_factory=list, max_length=10)
    # The item's linkId in the FHIR Questionnaire this form was imported from, when it is not
    # a valid id here ("1.2"): exported again under it, so the round trip keeps it.
    link_id: str | None = Field(default=None, max_length=255)
    # The linkId of the FHIR group it was imported from inside (a section here, as the group
    # became): exported inside that group again.
    fhir_group: str | None = Field(default=None, max_length=255)

    @model_validator(mode="before")
    @classmethod
    def _type_defaults(cls, data: Any) -> Any:
        # Defaults that depend on the type are written into the model, so what the page, the
        # upload service and a recorded history see is explicit.
        if not isinstance(data, dict):
            return data
        kind = data.get("type")
        if kind == "long_text" and "max_length" not in data:
            data = {**data, "max_length": LONG_TEXT_DEFAULT_LENGTH}
        if kind == "yes_no" and not data.get("options"):
            data = {**data, "options": YES_NO_OPTIONS}
        if kind == "section" and "required" not in data:
            data = {**data, "required": False}
        if kind in UPLOAD_DEFAULTS:
            given = {k: v for k, v in data.items() if v not in (None, [])}
            data = {**data, **{k: v for k, v in UPLOAD_DEFAULTS[kind].items() if k not in given}}
        return data

    @model_validator(mode="after")
    def _fields_fit_type(self) -> Self:
        for name, types in _FIELD_TYPES.items():
            if getattr(self, name) not in (None, []) and self.type not in types:
                raise ValueError(f"'{name}' only applies to {_names(types)} questions")
        for expression in ("show_if", "end_if"):
            source = getattr(self, expression)
            if source is not None:
                try:
                    compile_expression(source)
                except ExpressionError as exc:
                    raise ValueError(f"{expression}: {exc}") from exc
        if self.type in _OPTIONLESS and self.options:
            raise ValueError(f"a {self.type} question takes no options")
        if self.type != "cascade" and any(o.children for o in self.options):
            raise ValueError("only cascade questions have options with 'children'")
        if self.type != "multiple_choice" and any(o.exclusive for o in self.options):
            raise ValueError("'exclusive' only applies to multiple-choice options")
        if self.type not in CHOICE_TYPES and any(o.other for o in self.options):
            raise ValueError("'other' only applies to single, multiple choice and dropdown options")
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise ValueError("minimum is above maximum")
        check = _CHECKS.get(self.type)
        if check is not None:
            check(self)
        return self

    def option(self, value: str) -> ChoiceOption | None:
        return next((o for o in self.options if o.value == value), None)

    def option_path(self, values: list[str]) -> list[ChoiceOption] | None:
        """The options a cascade answer walks through from the top level, or None when a value
        is not among the options of its level."""
        path: list[ChoiceOption] = []
        level = self.options
        for value in values:
            option = next((o for o in level if o.value == value), None)
            if option is None:
                return None
            path.append(option)
            level = option.children
        return path

    def other_option(self) -> ChoiceOption | None:
        return next((o for o in self.options if o.other), None)

    def rating_range(self) -> tuple[int, int] | None:
        return RATING_RANGES[self.scale] if self.scale else None

    def row_names(self) -> list[str]:
        """How expressions name this matrix question's rows."""
        return [f"{self.id}{ROW_NAME_SEPARATOR}{r.id}" for r in self.rows]

    def answerable(self) -> bool:
        return self.type != "section"


def _names(types: frozenset[str]) -> str:
    return ", ".join(sorted(types))


def _unique(values: list[str], what: str) -> None:
    duplicates = sorted({v for v in values if values.count(v) > 1})
    if duplicates:
        raise ValueError(f"{what} must be unique, repeated: {', '.join(duplicates)}")


def _check_choice(q: Question) -> None:
    if len(q.options) < 2:
        raise ValueError("a choice question needs at least two options")
    _unique([o.value for o in q.options], "option values")
    others = [o for o in q.options if o.other]
    if len(others) > 1:
        raise ValueError("only one option may be marked 'other'")
    if any(o.other and o.exclusive for o in others):
        raise ValueError("an 'other' option cannot also be 'exclusive'")


def _check_yes_no(q: Question) -> None:
    if sorted(o.value for o in q.options) != ["no", "yes"]:
        raise ValueError("a yes_no question's options are exactly 'yes' and 'no'")


def _check_cascade(q: Question) -> None:
    if len(q.options) < 2:
        raise ValueError("a cascade question needs at least two top-level options")

    def walk(options: list[ChoiceOption], depth: int, at: str) -> None:
        if options and depth > MAX_CASCADE_DEPTH:
            raise ValueError(
                f"a cascade question's options nest at most {MAX_CASCADE_DEPTH} levels"
            )
        _unique([o.value for o in options], f"option values under {at}")
        for o in options:
            walk(o.children, depth + 1, f"'{o.value}'")

    walk(q.options, 1, "the top level")


def _check_matrix(q: Question) -> None:
    if not q.rows:
        raise ValueError("a matrix question needs at least one row")
    _unique([r.id for r in q.rows], "row ids")
    if len(q.options) < 2:
        raise ValueError("a matrix question needs a scale of at least two options")
    _unique([o.value for o in q.options], "option values")
    if any(o.ends_form for o in q.options):
        raise ValueError("'ends_form' does not apply to a matrix scale; use end_if")


def _check_rating(q: Question) -> None:
    if q.scale is None:
        raise ValueError("a rating question needs a scale: stars5, nps or pain")
    low, high = RATING_RANGES[q.scale]
    for name in ("abnormal_at_least", "abnormal_at_most"):
        threshold = getattr(q, name)
        if threshold is not None and not low <= threshold <= high:
            raise ValueError(f"{name} must be within the {q.scale} scale, {low} to {high}")


def _check_date(q: Question) -> None:
    if q.min_date is not None and q.max_date is not None and q.min_date > q.max_date:
        raise ValueError("min_date is after max_date")


def _check_upload(q: Question) -> None:
    if not q.content_types:
        raise ValueError("an upload question accepts at least one content type")
    _unique(list(q.content_types), "content types")
    if q.type == "signature":
        if q.max_files != 1:
            raise ValueError("a signature is exactly one file: max_files must be 1")
        if q.content_types != ["image/png"]:
            raise ValueError("a signature is a PNG image: content_types must be [image/png]")


def _check_section(q: Question) -> None:
    if q.required:
        raise ValueError("a section is display only and cannot be required")


_CHECKS = {
    "single_choice": _check_choice,
    "multiple_choice": _check_choice,
    "dropdown": _check_choice,
    "yes_no": _check_yes_no,
    "cascade": _check_cascade,
    "matrix": _check_matrix,
    "rating": _check_rating,
    "date": _check_date,
    "photo": _check_upload,
    "signature": _check_upload,
    "section": _check_section,
}


class FormDefinition(_Model):
    id: Slug
    version: int = Field(ge=1)
    title: str = Field(min_length=1, max_length=100)
    intro: str = ""
    questions: list[Question] = Field(min_length=1)
    # Named scores (FORM-4), each a formula over question ids, e.g. {phq9: "sum(q1, q2, …)"};
    # in a formula a question with scored options stands for its points, a rating for its
    # number, a matrix row for its points as "<question>__<row>". A formula may use the scores
    # listed before it: {phq9_severity: "band(phq9, 5, 10, 15, 20)"}.
    scores: dict[str, str] = Field(default_factory=dict)
    # The score reported in plan statistics (satisfaction, scale totals).
    primary_score: str | None = None
    # The canonical URL of the FHIR Questionnaire this form was imported from.
    fhir_url: str | None = Field(default=None, max_length=255)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        problems = self.problems()
        if problems:
            raise ValueError("; ".join(message for _, message in problems))
        return self

    def problems(self) -> list[tuple[str, str]]:
        """What is wrong across questions and scores, each as (path, message): ids repeated or
        clashing, formulas and conditions naming what they cannot see."""
        found: list[tuple[str, str]] = []
        ids = [q.id for q in self.questions]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            at = max(n for n, i in enumerate(ids) if i in repeated)
            found.append(
                (
                    f"questions[{at}].id",
                    f"question ids must be unique, repeated: {', '.join(repeated)}",
                )
            )
        clash = sorted(set(ids) & set(self.scores))
        if clash:
            found.append(
                (f"scores.{clash[0]}", f"score names clash with question ids: {', '.join(clash)}")
            )
        rows = [n for q in self.questions for n in q.row_names()]
        clash = sorted(set(rows) & (set(ids) | set(self.scores)))
        if clash:
            at = next(n for n, q in enumerate(self.questions) if set(q.row_names()) & set(clash))
            found.append(
                (
                    f"questions[{at}].rows",
                    f"matrix row names clash with questions or scores: {', '.join(clash)}",
                )
            )
        if self.primary_score is not None and self.primary_score not in self.scores:
            found.append(
                ("primary_score", f"primary_score '{self.primary_score}' is not one of the scores")
            )
        return found + self._expression_problems()

    def _expression_problems(self) -> list[tuple[str, str]]:
        # A condition can only see answers given before it: a name of a later question would
        # never have a value, so the condition would silently never hold.
        found: list[tuple[str, str]] = []
        earlier: set[str] = set()
        for index, question in enumerate(self.questions):
            own = {question.id, *question.row_names()} if question.answerable() else set()
            for field, visible in (("show_if", earlier), ("end_if", earlier | own)):
                source = getattr(question, field)
                if source is None:
                    continue
                unknown = sorted(compile_expression(source).names - visible)
                if unknown:
                    found.append(
                        (
                            f"questions[{index}].{field}",
                            f"question '{question.id}' {field} refers to {', '.join(unknown)}, "
                            "which are not earlier questions",
                        )
                    )
            earlier |= own
        for name, formula in self.scores.items():
            try:
                expression = compile_expression(formula)
            except ExpressionError as exc:
                found.append((f"scores.{name}", f"score '{name}': {exc}"))
                continue
            unknown = sorted(expression.names - earlier)
            if unknown:
                found.append(
                    (
                        f"scores.{name}",
                        f"score '{name}' refers to {', '.join(unknown)}, "
                        "which are not questions or scores listed before it",
                    )
                )
            earlier.add(name)
        return found

    def names(self) -> set[str]:
        """Everything an expression about this form's answers may refer to."""
        questions = {q.id for q in self.questions if q.answerable()}
        rows = {n for q in self.questions for n in q.row_names()}
        return questions | rows | set(self.scores)

    def question(self, question_id: str) -> Question | None:
        return next((q for q in self.questions if q.id == question_id), None)

    def for_care_steps(self, steps: Collection[str] | None) -> FormDefinition:
        """The form as asked of a patient whose encounter went through ``steps`` (None: not
        known, every question is asked). A question about other steps is left out: not shown,
        not required, an answer to it not kept; a condition or score naming it sees no answer."""
        if steps is None or not any(q.care_steps for q in self.questions):
            return self
        asked = [q for q in self.questions if not q.care_steps or set(q.care_steps) & set(steps)]
        # Not validated again: what remains may name a question left out, which is unanswered.
        return self.model_copy(update={"questions": asked})


EncounterKind = Literal["inpatient", "outpatient", "exam"]
