"""Read-only reports on pathway runs for staff: revisits lost to follow-up (CM-7), core
indicators against their baseline (CM-8), and a run's audit trail."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from api.deps import ContainerDep, SessionDep
from api.permissions import Permission, require
from api.routers.run_operations import visible_run
from core.validation import Key
from services import audit, run_reports
from services.staff import StaffPrincipal

router = APIRouter(tags=["pathway runs"])
ReaderDep = Annotated[StaffPrincipal, Depends(require(Permission.RUNS_READ))]


class LostOut(BaseModel):
    task_id: str
    workflow_id: str
    patient_id: str
    patient_name: str
    title: str
    due_at: datetime
    closed_at: datetime | None


@router.get("/api/pathways/{pathway_id}/potential-losses", response_model=list[LostOut])
async def potential_losses(pathway_id: Key, session: SessionDep, staff: ReaderDep) -> list[LostOut]:
    """CM-7: revisits due without a registration, for the outbound-call team."""
    rows = await run_reports.potential_losses(session, staff, pathway_id)
    return [
        LostOut(
            task_id=t.id,
            workflow_id=t.workflow_id,
            patient_id=p.id,
            patient_name=p.name,
            title=t.title,
            due_at=t.due_at,
            closed_at=t.closed_at,
        )
        for t, p in rows
    ]


class OutcomePoint(BaseModel):
    at: str
    due_at: datetime
    value: float | None
    change: float | None


class OutcomeOut(BaseModel):
    indicator: str
    label: str
    baseline: float | None
    points: list[OutcomePoint]


@router.get("/api/runs/{workflow_id}/outcomes", response_model=list[OutcomeOut])
async def outcomes(
    workflow_id: Key, container: ContainerDep, session: SessionDep, staff: ReaderDep
) -> list[OutcomeOut]:
    """CM-8: each core indicator at the baseline and at its comparison points."""
    run = await visible_run(session, staff, workflow_id)
    found = await run_reports.outcomes(session, run, container.settings.tz)
    return [OutcomeOut.model_validate(asdict(o)) for o in found]


class AuditOut(BaseModel):
    at: datetime
    # staff / his / system (the workflow's own state changes)
    actor_type: str
    actor_id: str | None
    action: str
    detail: dict[str, Any]


@router.get("/api/runs/{workflow_id}/audit", response_model=list[AuditOut])
async def run_audit(workflow_id: Key, session: SessionDep, staff: ReaderDep) -> list[AuditOut]:
    await visible_run(session, staff, workflow_id)
    rows = await audit.trail(session, workflow_id)
    return [AuditOut.model_validate(r.model_dump()) for r in rows]
