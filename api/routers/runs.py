"""Follow-up runs: list from the projection; live progress straight from the workflow."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Query, status
from temporalio.client import WorkflowQueryFailedError
from temporalio.service import RPCError

from api.deps import ContainerDep, SessionDep
from api.permissions import Permission, ensure_visible, require
from api.schemas import Page, PatientBrief, RunOut, RunProgressOut, response_of
from contracts.pathway import QUERY_PROGRESS
from contracts.runs import RunProgress
from core.logs import get_logger
from core.models import PathwayRun, Patient, RunStatus, StaffRole
from core.validation import Count, Key
from services.run_reports import projected_steps
from services.staff import StaffPrincipal
from services.staff_lists import PatientFields, list_runs, patient_brief

router = APIRouter(prefix="/api/runs", tags=["runs"])
ReaderDep = Annotated[StaffPrincipal, Depends(require(Permission.RUNS_READ))]
log = get_logger(__name__)


def run_out(
    container: ContainerDep, run: PathwayRun, patient: PatientFields, role: StaffRole
) -> RunOut:
    settings = container.settings
    ui = (
        f"{settings.temporal_ui_url.rstrip('/')}/namespaces/{settings.temporal_namespace}"
        f"/workflows/{quote(run.workflow_id, safe='')}"
    )
    return response_of(
        RunOut,
        run,
        patient=PatientBrief.model_validate(patient_brief(patient, role)),
        temporal_ui_url=ui,
    )


@router.get("", response_model=Page[RunOut])
async def get_runs(
    container: ContainerDep,
    session: SessionDep,
    staff: ReaderDep,
    run_status: Annotated[RunStatus | None, Query(alias="status")] = None,
    patient_id: Key | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[Count, Query()] = 0,
) -> Page[RunOut]:
    rows, total = await list_runs(
        session,
        staff,
        status=run_status.value if run_status else None,
        patient_id=patient_id,
        limit=limit,
        offset=offset,
    )
    return Page(
        items=[run_out(container, r, p, staff.role) for r, p in rows],
        total=total,
        limit=limit,
        offset=offset,
    )


@router.get("/{workflow_id}", response_model=RunProgressOut)
async def get_run(
    workflow_id: Key, container: ContainerDep, session: SessionDep, staff: ReaderDep
) -> RunProgressOut:
    run = await session.get(PathwayRun, workflow_id)
    if run is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no run with id '{workflow_id}'")
    await ensure_visible(
        session, staff, patient_id=run.patient_id, department_code=run.department_code
    )
    patient = await session.get(Patient, run.patient_id)
    assert patient is not None
    base = run_out(container, run, patient, staff.role).model_dump()
    try:
        progress = await container.temporal.get_workflow_handle(workflow_id).query(
            QUERY_PROGRESS,
            result_type=RunProgress,
            # A query needs a worker to replay the workflow; do not hang when none is up.
            rpc_timeout=timedelta(seconds=container.settings.temporal_query_timeout_seconds),
        )
    except (RPCError, WorkflowQueryFailedError) as exc:
        log.warning("progress query failed, answering from the projection", error=str(exc))
        steps = await projected_steps(session, workflow_id)
        return RunProgressOut.model_validate({**base, "source": "projection", "steps": steps})
    return RunProgressOut.model_validate(
        {**base, "status": progress.status, "source": "workflow", "steps": progress.steps}
    )
