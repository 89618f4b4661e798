"""Inputs, outputs, signals, queries and activity payloads of the follow-up workflow.

Plain pydantic models shared by the workflow, its activities and the API. Nothing here does I/O.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from pathways.model import PlanSnapshot

WORKFLOW_NAME = "FollowUpPlan"
SIGNAL_SUBMIT_ANSWERS = "submit_answers"
QUERY_PROGRESS = "progress"

# Activity names: the workflow refers to activities by name so that it never imports the
# modules that implement them (database, HTTP, templates).
ACTIVITY_RUN_STARTED = "records.run_started"
ACTIVITY_STEP_CHANGED = "records.step_changed"
ACTIVITY_ANSWERS_RECEIVED = "records.answers_received"
ACTIVITY_RUN_FINISHED = "records.run_finished"
ACTIVITY_SEND_INVITE = "messaging.send_followup_invite"

# Error type raised by the messaging activity when a message can never be sent (no valid
# number); the workflow marks the task failed instead of retrying forever.
UNDELIVERABLE = "Undeliverable"

# Task ids are derived, not random, so the workflow, its activities and the API agree on them.
_TASK_NAMESPACE = uuid.UUID("5b3f3e0c-7f0f-4b7e-9a53-2f7c1d1f0e11")


def task_id_for(workflow_id: str, step_id: str, occurrence: int = 0) -> str:
    return str(uuid.uuid5(_TASK_NAMESPACE, f"{workflow_id}/{step_id}/{occurrence}"))


def followup_workflow_id(plan_id: str, his_patient_id: str, his_encounter_id: str) -> str:
    """One run per plan, patient and discharge: a redelivered event maps to the same id."""
    return f"followup:{plan_id}:{his_patient_id}:{his_encounter_id}"


class _Msg(BaseModel):
    model_config = ConfigDict(frozen=True)


StepStatus = Literal[
    "pending", "sent", "read", "expired", "completed", "abnormal", "lost", "not_needed",
    "skipped", "failed",
]  # fmt: skip
TERMINAL_STATUSES: frozenset[str] = frozenset(
    {"completed", "abnormal", "lost", "skipped", "failed", "read", "not_needed"}
)


class FollowUpInput(_Msg):
    patient_id: str
    encounter_id: str | None = None
    department_code: str
    anchor_at: datetime
    snapshot: PlanSnapshot
    # 1 is real time; 1440 makes a plan day last one minute (demo and end-to-end tests only).
    clock_speedup: float = Field(default=1.0, ge=1.0, le=10_000_000.0)


class AnswerSubmission(_Msg):
    step_id: str
    occurrence: int = 0
    answers: dict[str, list[str]]
    submitted_at: datetime
    source: Literal["patient_link", "staff"] = "patient_link"


class FindingRecord(_Msg):
    question_id: str
    question: str
    value: str
    label: str


class StepProgress(_Msg):
    step_id: str
    occurrence: int
    task_id: str
    title: str
    status: StepStatus
    due_at: datetime
    sent_at: datetime | None = None
    valid_until: datetime | None = None
    lost_at: datetime | None = None
    answered_at: datetime | None = None
    findings: list[FindingRecord] = Field(default_factory=list)
    # Pathway runs only.
    action_type: str | None = None
    read_at: datetime | None = None
    closed_at: datetime | None = None
    reason: str | None = None
    score: float | None = None
    risk_level: str | None = None


class RunProgress(_Msg):
    workflow_id: str
    plan_id: str
    plan_version: int
    status: Literal["running", "completed", "paused", "ended"]
    anchor_at: datetime
    clock_speedup: float
    steps: list[StepProgress]


class RunSummary(_Msg):
    counts: dict[str, int]


class PlannedTask(_Msg):
    task_id: str
    step_id: str
    occurrence: int
    title: str
    form_id: str
    due_at: datetime


class RunStarted(_Msg):
    workflow_id: str
    patient_id: str
    encounter_id: str | None
    department_code: str
    responsible_role: str
    snapshot: PlanSnapshot
    anchor_at: datetime
    clock_speedup: float
    started_at: datetime
    tasks: list[PlannedTask]


class InviteRequest(_Msg):
    task_id: str
    workflow_id: str
    step_id: str
    occurrence: int
    patient_id: str
    encounter_id: str | None
    template: str
    step_title: str
    scheduled_for: datetime
    valid_until: datetime


class InviteResult(_Msg):
    message_id: str
    channel: str


class StepChanged(_Msg):
    task_id: str
    status: StepStatus
    at: datetime
    sent_at: datetime | None = None
    valid_until: datetime | None = None
    lost_at: datetime | None = None
    # Why a task failed, shown to staff in the alert it raises.
    reason: str | None = None


class AnswersReceived(_Msg):
    task_id: str
    workflow_id: str
    form_id: str
    answers: dict[str, list[str]]
    findings: list[FindingRecord]
    submitted_at: datetime
    recorded_at: datetime
    step_title: str


class RunFinished(_Msg):
    workflow_id: str
    finished_at: datetime
