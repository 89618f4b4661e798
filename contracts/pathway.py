"""Inputs, signals, updates, queries and activity payloads of the pathway interpreter workflow.

Plain pydantic models shared by the workflow, its activities and the API. Nothing here does I/O.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.runs import FindingRecord, StepStatus
from pathways.definition import Action, Offset, PathwaySnapshot, Step
from pathways.form_definition import FormDefinition

PATHWAY_WORKFLOW = "PathwayRun"
SIGNAL_ANSWERS = "submit_answers"
SIGNAL_ARTICLE_READ = "article_read"
SIGNAL_CHECKIN = "checkin"
SIGNAL_REGISTRATION = "registration"
UPDATE_RESCHEDULE = "reschedule"
UPDATE_SKIP = "skip"
UPDATE_ADD_STEP = "add_step"
UPDATE_PAUSE = "pause"
UPDATE_RESUME = "resume"
UPDATE_END = "end"
UPDATE_MIGRATE = "migrate"
UPDATE_COMPLETE_TASK = "complete_task"
QUERY_PROGRESS = "progress"
QUERY_MIGRATION_PLAN = "migration_plan"

ACTIVITY_RUN_OPENED = "pathways.run_opened"
ACTIVITY_OCCURRENCES = "pathways.occurrences"
ACTIVITY_ANSWERS = "pathways.answers"
ACTIVITY_ADJUSTED = "pathways.adjusted"
ACTIVITY_RUN_CLOSED = "pathways.run_closed"
ACTIVITY_HIS_EVENT = "pathways.his_event"

_TASK_NAMESPACE = uuid.UUID("8f5e2f2c-64a8-4d35-b7d5-3a0c6c9f5b21")


def pathway_task_id(workflow_id: str, key: str) -> str:
    """Derived, so the workflow (across continue-as-new), its activities and the API agree."""
    return str(uuid.uuid5(_TASK_NAMESPACE, f"{workflow_id}/{key}"))


def pathway_workflow_id(pathway_id: str, his_patient_id: str, anchor_ref: str) -> str:
    """One run per pathway, patient and anchoring event (a discharge, a visit, an enrolment):
    a redelivered event maps to the same id; several pathways may run for one patient."""
    return f"pathway:{pathway_id}:{his_patient_id}:{anchor_ref}"


class _Msg(BaseModel):
    model_config = ConfigDict(frozen=True)


class Occurrence(_Msg):
    """One step occurrence: a task row (care_task) kept in step with the workflow."""

    key: str  # "<step id>#<n>"
    step_id: str
    index: int
    task_id: str
    title: str
    action_type: str
    role: str
    due_at: datetime
    status: StepStatus = "pending"
    plan_version: int
    sent_at: datetime | None = None
    valid_until: datetime | None = None
    lost_at: datetime | None = None
    answered_at: datetime | None = None
    read_at: datetime | None = None
    closed_at: datetime | None = None
    reason: str | None = None
    score: float | None = None
    risk_level: str | None = None
    reminders: int = 0
    findings: list[FindingRecord] = Field(default_factory=list)


class Carried(_Msg):
    """Everything a run needs after continue-as-new."""

    occurrences: list[Occurrence]
    values: dict[str, dict[str, Any]]
    extra_steps: dict[str, Step]
    extra_forms: dict[str, FormDefinition] = Field(default_factory=dict)
    activations: dict[str, int]
    paused: bool
    seq: int
    generation: int


class RunInput(_Msg):
    patient_id: str
    encounter_id: str | None = None
    department_code: str
    hospital_code: str = "default"
    anchor_at: datetime
    anchor_event: str
    snapshot: PathwaySnapshot
    timezone: str = "Asia/Shanghai"
    # 1 is real time; larger compresses the plan (demo and end-to-end tests only).
    clock_speedup: float = Field(default=1.0, ge=1.0, le=10_000_000.0)
    carried: Carried | None = None


class Actor(_Msg):
    """Who asked for a change, and why: every staff operation leaves an audit entry (CM-4)."""

    actor: str = Field(min_length=1, max_length=64)
    reason: str = Field(min_length=1, max_length=300)


class Reschedule(Actor):
    key: str
    due_at: datetime


class Skip(Actor):
    key: str


class AdHocStep(Actor):
    title: str = Field(min_length=1, max_length=100)
    action: Action
    due_at: datetime
    validity: Offset | None = None
    lost_after: Offset | None = None


class Pause(Actor):
    pass


class Resume(Actor):
    pass


class End(Actor):
    pass


class Migration(Actor):
    target: PathwaySnapshot
    # Every step of the current version that is still open → a step of the target, or None.
    mapping: dict[str, str | None]


class MigrationChange(_Msg):
    key: str
    change: Literal["kept_in_progress", "rescheduled", "removed", "added"]
    step_id: str
    new_step_id: str | None = None
    due_at: datetime | None = None
    new_due_at: datetime | None = None


class MigrationPlan(_Msg):
    from_version: int
    to_version: int
    changes: list[MigrationChange]


class TaskCompletion(Actor):
    """Staff record the outcome of a phone follow-up or a visit (FU-8)."""

    key: str
    outcome: Literal["completed", "abnormal"]
    next_followup_at: datetime | None = None


class ArticleRead(_Msg):
    step_id: str
    occurrence: int
    at: datetime


class CheckIn(_Msg):
    step_id: str
    occurrence: int
    at: datetime


class Registration(_Msg):
    """The patient registered for a visit (HIS-1): it satisfies an expected revisit (CM-7)."""

    department_code: str
    at: datetime


class Adjustment(_Msg):
    action: str
    actor: str
    reason: str
    detail: dict[str, Any] = Field(default_factory=dict)


# Activity payloads


class RunOpened(_Msg):
    workflow_id: str
    input: RunInput
    occurrences: list[Occurrence]
    started_at: datetime


class OccurrencesChanged(_Msg):
    workflow_id: str
    patient_id: str
    department_code: str
    plan_id: str
    occurrences: list[Occurrence]
    at: datetime
    # An alert to raise with the change (failed send, missed revisit, lost staff task).
    alert: str | None = None


class FiredAlert(_Msg):
    rule: int
    level: str
    roles: list[str]
    message: str


class AnswersRecorded(_Msg):
    workflow_id: str
    patient_id: str
    department_code: str
    plan_id: str
    occurrence: Occurrence
    form_id: str
    answers: dict[str, list[str]]
    scores: dict[str, float | None]
    alerts: list[FiredAlert]
    submitted_at: datetime
    recorded_at: datetime


class RunAdjusted(_Msg):
    workflow_id: str
    adjustment: Adjustment
    at: datetime
    paused: bool
    plan_version: int
    snapshot: PathwaySnapshot | None = None


class RunClosed(_Msg):
    workflow_id: str
    status: Literal["completed", "ended"]
    reason: str | None
    at: datetime


class PathwayEvent(_Msg):
    """A his_callback step: tell the HIS something happened in the pathway."""

    workflow_id: str
    patient_id: str
    event: str
    step_id: str
    at: datetime
    idempotency_key: str
