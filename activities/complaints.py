"""Complaint activities (SAT-3): a case opened by a pathway rule written to its row (the
pathway then starts its workflow), and each step of a case projected into the row and audited
once (every step of a case is in the audit trail)."""

from __future__ import annotations

from temporalio import activity

from contracts.complaint import (
    ACTIVITY_OPEN,
    ACTIVITY_RECORD,
    PATIENT,
    SYSTEM,
    ComplaintInput,
    OpenComplaint,
    RecordComplaint,
)
from core.db import SessionFactory, transaction
from core.models import Complaint
from core.settings import Settings
from services import audit
from services.complaints import NewComplaint, record_case


class ComplaintActivities:
    def __init__(self, sessions: SessionFactory, settings: Settings) -> None:
        self._sessions = sessions
        self._settings = settings

    @activity.defn(name=ACTIVITY_OPEN)
    async def open(self, opening: OpenComplaint) -> ComplaintInput:
        case = NewComplaint(
            patient_id=opening.patient_id,
            kind=opening.kind,
            source=opening.source,
            category=opening.category,
            summary=opening.summary,
            department_code=opening.department_code,
            hospital_code=opening.hospital_code,
            task_id=opening.task_id,
            idempotency_key=opening.key,
        )
        async with transaction(self._sessions) as session:
            _, start, _ = await record_case(
                session, self._settings, case, SYSTEM, opening.opened_at
            )
        return start

    @activity.defn(name=ACTIVITY_RECORD)
    async def record(self, record: RecordComplaint) -> None:
        state, case = record.state, record.input
        async with transaction(self._sessions) as session:
            row = await session.get(Complaint, case.complaint_id, with_for_update=True)
            if row is None:
                # Written by the API in the transaction that started the workflow.
                raise LookupError(f"complaint {case.complaint_id} not stored yet")
            if record.seq <= row.version:
                return  # a retry, or a step overtaken by a later one that wrote it all
            # The state holds every step so far: those not yet written are audited now, in order.
            for step in state.steps[len(row.steps) :]:
                actor_type = {SYSTEM: "system", PATIENT: "patient"}.get(step.by, "staff")
                audit.record(
                    session,
                    actor_type=actor_type,
                    actor_id={SYSTEM: None, PATIENT: row.patient_id}.get(step.by, step.by),
                    action=f"complaint.{step.kind}",
                    target_type="complaint",
                    target_id=row.id,
                    patient_id=row.patient_id,
                    escalation=state.escalation,
                    department_code=state.department_code,
                )
            row.version = record.seq
            row.status = state.status
            row.escalation = state.escalation
            row.department_code = state.department_code
            row.acknowledge_by = state.acknowledge_by
            row.resolve_by = state.resolve_by
            row.acknowledged_at = state.acknowledged_at
            row.resolved_at = state.resolved_at
            row.closed_at = state.closed_at
            row.outcome = state.outcome
            if state.rating is not None:
                row.rating_stars = state.rating.stars
                row.rating_comment = state.rating.comment
            row.steps = [s.model_dump(mode="json") for s in state.steps]
            row.updated_at = record.step.at
