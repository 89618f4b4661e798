"""Inputs, updates, queries and activity payloads of the complaint workflow (SAT-3): one case of
a complaint or praise, from opening to the patient's rating of how it was handled.

Plain pydantic models shared by the workflow, its activities and the API. Nothing here does I/O.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from complaints.lifecycle import Category, ComplaintStatus, Escalation, Kind, Source
from core.hospitals import ComplaintPolicy
from core.validation import Line, Text

COMPLAINT_WORKFLOW = "ComplaintCase"
UPDATE_ACKNOWLEDGE = "acknowledge"
UPDATE_RESOLVE = "resolve"
UPDATE_REASSIGN = "reassign"
UPDATE_RATE = "rate"
QUERY_STATE = "state"

ACTIVITY_RECORD = "complaints.record"
ACTIVITY_OPEN = "complaints.open"

SYSTEM = "system"
# The actor of the patient's own steps (their rating).
PATIENT = "patient"


def complaint_workflow_id(complaint_id: str) -> str:
    return f"complaint:{complaint_id}"


class _Msg(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ComplaintInput(_Msg):
    complaint_id: str
    case_no: str
    kind: Kind
    source: Source
    category: Category
    patient_id: str
    department_code: str
    hospital_code: str
    timezone: str
    policy: ComplaintPolicy
    opened_by: str
    opened_at: datetime
    # What it came from: a care task (a survey answer, a follow-up), if any.
    task_id: str | None = None


class OpenComplaint(_Msg):
    """A case opened by the system from a care task's answers (a pathway rule): its row is
    written by the activity, which answers the workflow's input; the same key finds the same
    case."""

    key: str
    kind: Kind
    source: Source
    category: Category
    summary: str
    patient_id: str
    department_code: str
    hospital_code: str
    task_id: str | None
    opened_at: datetime


class Acknowledgement(_Msg):
    by: Annotated[Line, Field(min_length=1, max_length=64)]
    note: Text | None = Field(default=None, max_length=1000)


class Resolution(_Msg):
    by: Annotated[Line, Field(min_length=1, max_length=64)]
    # What was done, as the patient will be told it.
    outcome: Annotated[Text, Field(min_length=2, max_length=500)]


class Reassignment(_Msg):
    by: Annotated[Line, Field(min_length=1, max_length=64)]
    department_code: Annotated[Line, Field(min_length=1, max_length=32)]
    reason: Annotated[Text, Field(min_length=2, max_length=500)]


class Rating(_Msg):
    stars: int = Field(ge=1, le=5)
    comment: Text | None = Field(default=None, max_length=500)


class Step(_Msg):
    """One thing that happened to the case: who, when, and what."""

    kind: str  # opened, acknowledged, escalated, reassigned, resolved, rated, closed
    at: datetime
    by: str
    note: str | None = None


class ComplaintState(_Msg):
    status: ComplaintStatus
    escalation: Escalation
    department_code: str
    acknowledge_by: datetime
    resolve_by: datetime | None
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = None
    closed_at: datetime | None = None
    outcome: str | None = None
    rating: Rating | None = None
    steps: list[Step]


class RecordComplaint(_Msg):
    """A projection write: the whole state after a step, and the step."""

    input: ComplaintInput
    state: ComplaintState
    seq: int
    step: Step
