"""What every pathway run reports: step statuses, findings, progress, and the answers a patient
submits. Plain pydantic models shared by the workflow, its activities and the API; no I/O."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Msg(BaseModel):
    model_config = ConfigDict(frozen=True)


StepStatus = Literal[
    "pending",
    "sent",
    "read",
    "expired",
    "completed",
    "abnormal",
    "lost",
    "not_needed",
    "skipped",
    "failed",
]
TERMINAL_STATUSES: frozenset[str] = frozenset(
    {"completed", "abnormal", "lost", "skipped", "failed", "read", "not_needed"}
)


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
