"""The pharmacist's review queue (RX-3): each prescription under review with what the rules
found and a live countdown to the system's own conclusion at the deadline; approving, or
rejecting with a reason, before it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from temporalio.service import RPCError

from api.deps import ContainerDep, SessionDep
from api.permissions import Permission
from api.workbench.auth import (
    PageError,
    Viewer,
    page_requires,
    posted_form,
    visible_record,
)
from api.workbench.render import render
from contracts.prescription import UPDATE_DECIDE, Conclusion, Decision
from core.models import Prescription, utcnow
from core.validation import Key
from services.prescription_queries import review_queue
from services.prescriptions import PrescriptionConflict, apply
from services.staff_lists import patient_brief

router = APIRouter(include_in_schema=False)
PharmacistPage = Annotated[Viewer, Depends(page_requires(Permission.PRESCRIPTIONS_REVIEW))]
QUEUE_LIMIT = 100
REASON_LIMIT = 500


async def _queue_page(
    request: Request,
    container: ContainerDep,
    session: SessionDep,
    seen: Viewer,
    status_code: int = status.HTTP_200_OK,
    **context: object,
) -> HTMLResponse:
    rows = await review_queue(session, seen.staff, hospital_code=None, limit=QUEUE_LIMIT)
    return render(
        container,
        request,
        "review.html",
        seen,
        status_code,
        prescriptions=[(row, patient_brief(patient, seen.staff.role)) for row, patient in rows],
        now=utcnow(),
        errors=context.pop("errors", {}),
        **context,
    )


@router.get("/w/review", response_class=HTMLResponse)
async def queue(
    request: Request, container: ContainerDep, session: SessionDep, seen: PharmacistPage
) -> HTMLResponse:
    done = request.query_params.get("done")
    notice = {"approve": "已审核通过", "reject": "已驳回，医生将收到驳回原因"}.get(done or "")
    return await _queue_page(request, container, session, seen, notice=notice)


@router.post("/w/review/{prescription_id}/decision")
async def decide(
    prescription_id: Key,
    request: Request,
    container: ContainerDep,
    session: SessionDep,
    seen: PharmacistPage,
) -> Response:
    fields = await posted_form(request, seen)
    row = await visible_record(session, seen.staff, Prescription, prescription_id, "处方")
    outcome = fields.get("outcome", "")
    raw_round = fields.get("round", "")
    reason = fields.get("reason", "").strip()
    error = None
    if outcome not in ("approve", "reject"):
        error = "请选择审核结论"
    elif outcome == "reject" and not reason:
        error = "驳回须填写原因"
    elif len(reason) > REASON_LIMIT:
        error = f"原因不能超过{REASON_LIMIT}字"
    if error is not None:
        return await _queue_page(
            request,
            container,
            session,
            seen,
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            errors={row.id: error},
        )
    try:
        await apply(
            session,
            container.temporal,
            row,
            update=UPDATE_DECIDE,
            argument=Decision(
                round=int(raw_round) if raw_round.isdigit() else row.round,
                outcome=outcome,
                reason=reason or None,
                pharmacist_id=seen.staff.id,
                pharmacist_name=seen.staff.name,
            ),
            result_type=Conclusion,
            source="staff",
            event_id=None,
            actor=("staff", seen.staff.id),
        )
        await session.commit()
    except PrescriptionConflict as conflict:
        # The deadline passed (the system concluded), or another pharmacist decided first.
        return await _queue_page(
            request,
            container,
            session,
            seen,
            status.HTTP_409_CONFLICT,
            notice=f"未保存：{conflict}",
            notice_tone="warn",
        )
    except RPCError:
        raise PageError(
            status.HTTP_503_SERVICE_UNAVAILABLE, "系统繁忙", "审方服务暂时不可用，请稍后重试。"
        ) from None
    return RedirectResponse(f"/w/review?done={outcome}", status.HTTP_303_SEE_OTHER)
