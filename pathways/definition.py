"""The pathway language: follow-up plans (FU-*), education schedules (ED-*), satisfaction
surveys (SAT-*) and case-management pathways (CM-*) as one kind of versioned data, run by one
interpreter workflow.

Pure pydantic, no I/O: the API validates drafts with it, workflows import it. ``validate`` returns
every problem at once, each with the path a designer reads (``steps[2].schedule.offset``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, time, timedelta
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from complaints.lifecycle import Category, Kind
from core.validation import Slug, error_path
from pathways.expressions import ExpressionError, compile_expression
from pathways.form_definition import EncounterKind, FormDefinition

Role = Literal["nurse", "doctor", "care_manager"]
AnchorType = Literal[
    "discharge",
    "visit",
    "admission",
    "surgery",
    "consultation",
    "enrollment",
    "exam",
    "fixed_date",
]
# HIS events that can enrol a patient (HIS-1).
EventType = Literal["discharge", "visit", "admission", "surgery", "consultation", "exam"]
ActionType = Literal[
    "form", "article", "reminder", "survey", "staff_task", "his_callback", "checkin", "revisit"
]
PathwayKind = Literal["followup", "education", "satisfaction", "case_management"]
MAX_OCCURRENCES_PER_STEP = 400
MONTH = timedelta(days=30)  # only for comparing spans; schedules use calendar months


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Offset(_Model):
    """A span after the anchor (or after an activation): ``{days: 3}``, ``{months: 1}``."""

    minutes: int = Field(default=0, ge=0, le=525_600)
    hours: int = Field(default=0, ge=0, le=87_600)
    days: int = Field(default=0, ge=0, le=3_650)
    weeks: int = Field(default=0, ge=0, le=520)
    months: int = Field(default=0, ge=0, le=120)

    def approx(self) -> timedelta:
        """For comparisons only (a month counted as 30 days)."""
        return (
            timedelta(minutes=self.minutes, hours=self.hours, days=self.days, weeks=self.weeks)
            + self.months * MONTH
        )

    def is_zero(self) -> bool:
        return self.approx() == timedelta(0)


class Recurrence(_Model):
    """Every ``every`` from ``start``, until ``until`` (after the anchor) or ``count`` times."""

    every: Offset
    start: Offset = Field(default_factory=Offset)
    until: Offset | None = None
    count: int | None = Field(default=None, ge=1, le=MAX_OCCURRENCES_PER_STEP)

    @model_validator(mode="after")
    def _bounded(self) -> Self:
        if self.every.is_zero():
            raise ValueError("'every' must be longer than zero")
        if (self.until is None) == (self.count is None):
            raise ValueError("give exactly one of 'until' and 'count'")
        if self.until is not None:
            span = self.until.approx() - self.start.approx()
            if span < timedelta(0):
                raise ValueError("'until' is before 'start'")
            if span / self.every.approx() > MAX_OCCURRENCES_PER_STEP:
                raise ValueError(f"more than {MAX_OCCURRENCES_PER_STEP} occurrences")
        return self


class Schedule(_Model):
    offset: Offset | None = None
    recurrence: Recurrence | None = None
    # Local clock time on the due day (e.g. 09:00), so nobody is messaged at discharge time + 72h.
    time_of_day: time | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        if (self.offset is None) == (self.recurrence is None):
            raise ValueError("give exactly one of 'offset' and 'recurrence'")
        return self


class Action(_Model):
    type: ActionType
    form: Slug | None = None  # form, survey
    article: Slug | None = None  # article
    text: str | None = Field(default=None, max_length=300)  # reminder, checkin
    reminder_kind: Literal["medication", "revisit", "exam"] | None = None
    task_kind: Literal["phone_followup", "outbound_call", "offline_visit"] | None = None
    role: Role | None = None  # staff task: who does it (default: the executor)
    event: str | None = Field(default=None, max_length=40)  # his_callback
    # revisit (CM-7): how long after the due date a registration still counts.
    grace: Offset | None = None
    template: Slug | None = None  # message template, instead of the action's default

    @model_validator(mode="after")
    def _fields_for_type(self) -> Self:
        needs = {
            "form": ["form"],
            "survey": ["form"],
            "article": ["article"],
            "reminder": ["text", "reminder_kind"],
            "staff_task": ["task_kind"],
            "his_callback": ["event"],
            "checkin": ["text"],
            "revisit": ["grace"],
        }[self.type]
        missing = [name for name in needs if getattr(self, name) is None]
        if missing:
            raise ValueError(f"a {self.type} action needs: {', '.join(missing)}")
        return self


class Reread(_Model):
    """ED-3: an article still unread this long after a push is pushed again, up to max_times."""

    after: Offset
    max_times: int = Field(default=1, ge=1, le=5)


class AlertSpec(_Model):
    roles: list[Role] = Field(min_length=1)
    message: str = Field(min_length=1, max_length=300)


class PatientNotice(_Model):
    template: Slug
    variables: dict[str, str] = Field(default_factory=dict)


class ComplaintSpec(_Model):
    """SAT-3: the answers open a complaint (or praise) case, assigned to the run's department.
    ``quote`` names the question whose text answer is the patient's own words on the case."""

    kind: Kind = "complaint"
    category: Category = "other"
    summary: str = Field(min_length=2, max_length=200)
    quote: Slug | None = None


class Rule(_Model):
    """A branch or risk threshold on a step's answers (FU-9, CM-6, FORM-2)."""

    when: str = Field(min_length=1, max_length=500)
    level: Literal["info", "warning", "high", "critical"] = "warning"
    # The task counts as abnormal when this rule fires.
    abnormal: bool = True
    alert: AlertSpec | None = None
    notify_patient: PatientNotice | None = None
    complaint: ComplaintSpec | None = None
    # Dormant steps (no schedule) to start now: the branch taken.
    activate: list[Slug] = Field(default_factory=list)


class Step(_Model):
    id: Slug
    title: str = Field(min_length=1, max_length=100)
    # None: a dormant step, started only by a rule's ``activate``, after ``after_activation``.
    schedule: Schedule | None = None
    after_activation: Offset | None = None
    action: Action
    validity: Offset | None = None  # FU-4: how long the pushed link works
    lost_after: Offset | None = None  # FU-5: unanswered this long after the push → lost
    reread: Reread | None = None
    # Evaluated when due over the run's earlier answers; false → the step is not needed.
    condition: str | None = Field(default=None, max_length=500)
    rules: list[Rule] = Field(default_factory=list)
    urgent: bool = False  # its message ignores quiet hours


class Membership(_Model):
    """Which patients an HIS event enrols (FU-1, FU-6, SAT-1)."""

    events: list[EventType] = Field(min_length=1)
    encounter_kinds: list[EncounterKind] = Field(default_factory=list)
    departments: list[str] = Field(default_factory=list)
    wards: list[str] = Field(default_factory=list)
    # Diagnosis code prefixes ("I20", "E11") or names ("糖尿病"): any one matches.
    diagnoses: list[str] = Field(default_factory=list)
    drugs: list[str] = Field(default_factory=list)
    orders: list[str] = Field(default_factory=list)
    sex: Literal["M", "F"] | None = None
    min_age: int | None = Field(default=None, ge=0, le=150)
    max_age: int | None = Field(default=None, ge=0, le=150)
    # Share of matching patients enrolled, decided reproducibly per patient and encounter.
    sample_ratio: float = Field(default=1.0, gt=0, le=1)


class ServicePackage(_Model):
    code: Slug
    name: str = Field(min_length=1, max_length=100)
    period: Offset
    fee_fen: int = Field(default=0, ge=0)
    content: str | None = Field(default=None, max_length=1000)


class Enrollment(_Model):
    """CM-2: automatic, or candidates listed for staff to enrol (with consent, package, start)."""

    mode: Literal["automatic", "manual"] = "automatic"
    requires_consent: bool = False
    service_package: ServicePackage | None = None


class Outcome(_Model):
    """CM-8: an indicator compared with its baseline at fixed points."""

    indicator: str = Field(min_length=1, max_length=64)
    label: str = Field(min_length=1, max_length=100)
    form: Slug
    baseline_step: Slug
    at: list[Offset] = Field(min_length=1, max_length=6)


class PathwayDefinition(_Model):
    id: Slug
    name: str = Field(min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=1000)
    kind: PathwayKind
    plan_type: EncounterKind
    executor_role: Role
    anchor: AnchorType
    fixed_date: date | None = None
    membership: Membership | None = None
    enrollment: Enrollment = Field(default_factory=Enrollment)
    steps: list[Step] = Field(min_length=1, max_length=200)
    outcomes: list[Outcome] = Field(default_factory=list)

    def step(self, step_id: str) -> Step | None:
        return next((s for s in self.steps if s.id == step_id), None)


class ArticleDefinition(_Model):
    """Health education material (ED-5) the patient reads from a pushed link."""

    id: Slug
    title: str = Field(min_length=1, max_length=100)
    summary: str | None = Field(default=None, max_length=200)
    body: str = Field(min_length=1, max_length=20_000)


class PathwaySnapshot(_Model):
    """A published version with every form and article it uses: what a run is pinned to."""

    definition: PathwayDefinition
    version: int = Field(ge=1)
    forms: dict[str, FormDefinition]
    articles: dict[str, ArticleDefinition] = Field(default_factory=dict)


class PathProblem(_Model):
    path: str
    message: str


def _identifier(name: str) -> bool:
    return name.isidentifier()


def validate_definition(
    raw: Mapping[str, Any],
    *,
    forms: Mapping[str, FormDefinition],
    articles: Mapping[str, ArticleDefinition],
    templates: set[str],
) -> tuple[PathwayDefinition | None, list[PathProblem]]:
    """The definition, or None with every problem, each at the path where it is."""
    try:
        definition = PathwayDefinition.model_validate(raw)
    except ValidationError as exc:
        return None, [
            PathProblem(path=error_path(e["loc"]), message=e["msg"])
            for e in exc.errors(include_url=False)
        ]
    return definition, check_references(definition, forms, articles, templates)


def check_references(
    definition: PathwayDefinition,
    forms: Mapping[str, FormDefinition],
    articles: Mapping[str, ArticleDefinition],
    templates: set[str],
) -> list[PathProblem]:
    problems: list[PathProblem] = []

    def problem(path: str, message: str) -> None:
        problems.append(PathProblem(path=path, message=message))

    if definition.anchor == "fixed_date" and definition.fixed_date is None:
        problem("fixed_date", "a fixed_date anchor needs the date")
    ids = [s.id for s in definition.steps]
    dormant = {s.id for s in definition.steps if s.schedule is None}
    known_names: set[str] = set()
    for step in definition.steps:
        form = forms.get(step.action.form or "")
        if form is not None:
            known_names |= form.names()
    for index, step in enumerate(definition.steps):
        at = f"steps[{index}]"
        if ids.count(step.id) > 1:
            problem(f"{at}.id", f"step id '{step.id}' is used twice")
        if not _identifier(step.id.replace("-", "_")):
            problem(f"{at}.id", "must start with a letter")
        action = step.action
        if action.form is not None and action.form not in forms:
            problem(f"{at}.action.form", f"unknown form '{action.form}'")
        if action.article is not None and action.article not in articles:
            problem(f"{at}.action.article", f"unknown article '{action.article}'")
        if action.template is not None and action.template not in templates:
            problem(f"{at}.action.template", f"unknown message template '{action.template}'")
        if step.schedule is None and step.after_activation is None:
            problem(f"{at}.after_activation", "a step without a schedule needs after_activation")
        if step.schedule is not None and step.after_activation is not None:
            problem(f"{at}.after_activation", "only for steps without a schedule")
        answered = action.type in ("form", "survey", "article", "checkin")
        if answered and step.validity is None:
            problem(f"{at}.validity", f"a {action.type} step needs a validity window (FU-4)")
        if step.validity is not None and step.validity.is_zero():
            problem(f"{at}.validity", "must be longer than zero")
        validity, lost_after = step.validity, step.lost_after
        if validity and lost_after and lost_after.approx() < validity.approx():
            problem(f"{at}.lost_after", "must not be shorter than validity")
        if step.reread is not None and action.type != "article":
            problem(f"{at}.reread", "re-reminders are for articles")
        if step.rules and action.type not in ("form", "survey"):
            problem(f"{at}.rules", "rules need answers: only form and survey steps have them")
        if step.condition is not None:
            _check_expression(step.condition, f"{at}.condition", known_names, problem)
        for r, rule in enumerate(step.rules):
            step_form = forms.get(action.form or "")
            names = step_form.names() if step_form else set()
            _check_expression(rule.when, f"{at}.rules[{r}].when", names, problem)
            for a, target in enumerate(rule.activate):
                if target not in dormant:
                    problem(
                        f"{at}.rules[{r}].activate[{a}]",
                        f"'{target}' is not a step without a schedule",
                    )
            quote = rule.complaint.quote if rule.complaint else None
            if quote is not None:
                question = step_form.question(quote) if step_form else None
                if question is None or question.type not in ("text", "long_text"):
                    problem(
                        f"{at}.rules[{r}].complaint.quote",
                        f"'{quote}' is not a text question of the step's form",
                    )
            notice = rule.notify_patient
            if notice is not None and notice.template not in templates:
                problem(f"{at}.rules[{r}].notify_patient.template", "unknown message template")
    for index, outcome in enumerate(definition.outcomes):
        at = f"outcomes[{index}]"
        form = forms.get(outcome.form)
        if form is None:
            problem(f"{at}.form", f"unknown form '{outcome.form}'")
        elif outcome.indicator not in form.names():
            problem(f"{at}.indicator", f"'{outcome.indicator}' is not in form '{outcome.form}'")
        if outcome.baseline_step not in ids:
            problem(f"{at}.baseline_step", f"unknown step '{outcome.baseline_step}'")
    ages = definition.membership
    if (
        ages
        and ages.min_age is not None
        and ages.max_age is not None
        and ages.min_age > ages.max_age
    ):
        problem("membership.max_age", "below min_age")
    return problems


def _check_expression(source: str, path: str, names: set[str], problem: Any) -> None:
    try:
        expression = compile_expression(source)
    except ExpressionError as exc:
        problem(path, str(exc))
        return
    unknown = sorted(expression.names - names)
    if unknown:
        problem(path, f"unknown names: {', '.join(unknown)} (use question ids or score names)")
