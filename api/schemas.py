"""Response models of the staff API (the database tables are never returned directly)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field

from contracts.runs import StepProgress
from core.validation import Text

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


def response_of(model: type[M], row: object, **values: Any) -> M:
    """``model`` from the attributes of ``row`` (a table's object) that it names, ``values``
    giving the rest. Reads only the response's own fields: ``row.model_dump()`` first copies
    every column, which was a quarter of a task list's time under load (issue 15)."""
    read = {name: getattr(row, name) for name in model.model_fields if name not in values}
    return model.model_validate({**read, **values})


def field_error(loc: tuple[str | int, ...], msg: str) -> RequestValidationError:
    """A 422 in FastAPI's own shape, naming the field by its location, e.g. ("body", "owner")."""
    return RequestValidationError([{"type": "value_error", "loc": loc, "msg": msg}])


def links(status_code: int, field: str, *targets: tuple[str, str, str]) -> dict[int | str, Any]:
    """OpenAPI links from an answer to the operations that take the id it returns: each target
    is (method, path, parameter) and gets ``$response.body#/<field>`` as that parameter. A
    generated client, and the fuzz test's state machine, follow them."""

    def ref(method: str, path: str) -> str:
        return "#/paths/" + path.replace("~", "~0").replace("/", "~1") + "/" + method.lower()

    def name(method: str, path: str) -> str:
        words = path.replace("{", "").replace("}", "").strip("/").split("/")
        return "_".join([method.lower(), *words])

    return {
        status_code: {
            "links": {
                name(method, path): {
                    "operationRef": ref(method, path),
                    "parameters": {parameter: f"$response.body#/{field}"},
                }
                for method, path, parameter in targets
            }
        }
    }


class FieldError(BaseModel):
    """One entry of a 422's ``detail`` as FastAPI writes it."""

    model_config = ConfigDict(extra="allow")

    loc: list[str | int]
    msg: str
    type: str


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


class PatientBrief(BaseModel):
    id: str
    his_patient_id: str
    name: str
    phone_masked: str


class TaskOut(BaseModel):
    id: str
    workflow_id: str
    plan_id: str
    step_id: str
    title: str
    status: str
    department_code: str
    responsible_role: str
    due_at: datetime
    sent_at: datetime | None
    valid_until: datetime | None
    lost_at: datetime | None
    answered_at: datetime | None
    patient: PatientBrief


class FormResponseOut(BaseModel):
    form_id: str
    submitted_at: datetime
    answers: dict[str, list[str]]
    abnormal_findings: list[dict[str, str]]


class TaskDetail(TaskOut):
    response: FormResponseOut | None


class AlertOut(BaseModel):
    id: str
    kind: str
    status: str
    summary: str
    role: str
    department_code: str
    task_id: str | None
    workflow_id: str
    raised_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    resolution_note: str | None = None
    details: list[dict[str, str]]
    patient: PatientBrief


class AcknowledgeAlert(BaseModel):
    note: Text | None = None


class ResolveAlert(BaseModel):
    note: Annotated[Text, Field(min_length=2, max_length=500)]


class RunOut(BaseModel):
    workflow_id: str
    plan_id: str
    plan_version: int
    status: str
    department_code: str
    anchor_at: datetime
    started_at: datetime
    finished_at: datetime | None
    patient: PatientBrief
    temporal_ui_url: str


class RunProgressOut(RunOut):
    # "workflow": answered by the running workflow; "projection": from the database because the
    # workflow could not be queried (no worker up), possibly a few seconds behind.
    source: Literal["workflow", "projection"]
    steps: list[StepProgress]


class MessageOut(BaseModel):
    id: str
    idempotency_key: str
    channel: str | None
    category: str
    template: str
    status: str
    failure_reason: str | None
    recipient_masked: str
    patient_id: str | None
    department_code: str | None
    sender: str
    urgent: bool
    body: str
    workflow_id: str | None
    task_id: str | None
    batch_id: str | None
    scheduled_for: datetime
    not_before: datetime | None
    sent_at: datetime | None
    delivered_at: datetime | None
    read_at: datetime | None
    created_at: datetime


class AttemptOut(BaseModel):
    channel: str
    status: str
    provider_message_id: str | None
    provider_status: str | None
    error_code: str | None
    error_message: str | None
    tries: int
    created_at: datetime
    updated_at: datetime


class MessageDetail(MessageOut):
    attempts: list[AttemptOut]
