"""Home-nursing orders (NUR-1..3): placing one (its row and its workflow, together; the same
key from the same caller finds the order it placed), the steps nurses and the patient take on
it (workflow updates), and the statistics by status, item and nurse, money and ratings."""

from __future__ import annotations

import statistics
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy

from contracts.nursing import (
    NURSING_WORKFLOW,
    ItemTerms,
    NursingInput,
    NursingState,
    nursing_workflow_id,
)
from contracts.search import search_attributes
from core.models import Encounter, NursingItem, NursingNurse, NursingOrder, Patient
from core.settings import Settings
from nursing.consent import CONSENT_VERSION
from services import audit
from services.hospitals import hospital_profile
from services.scope import record_filter
from services.staff import StaffPrincipal
from services.updates import run_update

DEPARTMENT = "home_nursing"
# How far ahead a visit may be booked, and how soon at the earliest (a nurse must get there).
BOOKING_HORIZON = timedelta(days=14)
EARLIEST_AHEAD = timedelta(hours=1)
_KEYS = uuid.UUID("3d1f6b7e-2c4a-4f58-9e0b-7a6c5d4e3f21")


class OrderRefused(Exception):
    """The order cannot be placed; ``field`` names what to change."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field


@dataclass(frozen=True)
class NewOrder:
    patient: Patient
    item_code: str
    visit_at: datetime
    address: str
    idempotency_key: str
    # Whose order it is when the patient has no encounter yet: the placing nurse's department
    # (so they see what they placed), else home nursing's.
    department_code: str | None = None


async def place_order(
    session: AsyncSession,
    temporal: Client,
    settings: Settings,
    new: NewOrder,
    *,
    actor_type: str,
    actor_id: str,
    now: datetime,
) -> tuple[NursingOrder, bool]:
    """The order and whether it is new: its row, its workflow started before the row is
    committed (a start that fails writes nothing; the workflow's first write waits for it).
    The same key from the same caller (a staff account, or the patient) finds the order."""
    order_id = str(uuid.uuid5(_KEYS, f"{actor_type}:{actor_id}\n{new.idempotency_key}"))
    existing = await session.get(NursingOrder, order_id)
    if existing is not None:
        return existing, False
    item = await session.get(NursingItem, new.item_code)
    if item is None or not item.active:
        raise OrderRefused("item_code", "no such item on offer")
    if not now + EARLIEST_AHEAD <= new.visit_at <= now + BOOKING_HORIZON:
        raise OrderRefused("visit_at", "between one hour and 14 days from now")
    profile = await hospital_profile(session, settings, settings.default_hospital_code)
    latest = (
        await session.exec(
            select(Encounter)
            .where(Encounter.patient_id == new.patient.id)
            .order_by(col(Encounter.created_at).desc())
        )
    ).first()
    row = NursingOrder(
        id=order_id,
        workflow_id=nursing_workflow_id(order_id),
        patient_id=new.patient.id,
        item_code=item.code,
        department_code=latest.department_code if latest else new.department_code or DEPARTMENT,
        price_fen=item.price_fen,
        visit_fee_fen=item.visit_fee_fen,
        address=new.address,
        visit_at=new.visit_at,
    )
    session.add(row)
    audit.record(
        session,
        actor_type=actor_type,
        actor_id=actor_id,
        action="nursing.ordered",
        target_type="nursing_order",
        target_id=row.id,
        patient_id=new.patient.id,
        item_code=item.code,
        price_fen=item.price_fen,
        # The informed consent the patient accepted with the order, by version.
        consent_version=CONSENT_VERSION,
    )
    await session.flush()
    await temporal.start_workflow(
        NURSING_WORKFLOW,
        NursingInput(
            order_id=row.id,
            patient_id=new.patient.id,
            item=ItemTerms(
                code=item.code,
                name=item.name,
                price_fen=item.price_fen,
                visit_fee_fen=item.visit_fee_fen,
                expected_minutes=item.expected_minutes,
                qualification=item.qualification,
                assessment_form=item.assessment_form,
            ),
            visit_at=new.visit_at,
            hospital_code=profile.code,
            department_code=row.department_code,
            timezone=str(profile.tz),
            policy=profile.config.nursing,
        ),
        id=row.workflow_id,
        task_queue=settings.temporal_task_queue,
        search_attributes=search_attributes(
            patient=new.patient.his_patient_id,
            department=row.department_code,
            hospital=profile.code,
            order_no=row.id,
        ),
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
    )
    return row, True


async def take_step(
    session: AsyncSession, temporal: Client, row: NursingOrder, update: str, argument: BaseModel
) -> NursingState:
    """One update on the order's workflow; UpdateConflict with its reason when it does not
    apply, or when the order has ended."""
    return await run_update(
        session, temporal, row.workflow_id, update, argument, NursingState, ended="该订单已结束"
    )


async def registered_nurse(session: AsyncSession, staff_id: str) -> NursingNurse | None:
    return await session.get(NursingNurse, staff_id)


async def order_statistics(
    session: AsyncSession, staff: StaffPrincipal, *, placed_from: datetime, placed_to: datetime
) -> dict[str, Any]:
    """Orders placed in [from, to) in the caller's scope: counts by status, item and nurse,
    the money taken and refunded, and the patients' ratings."""
    rows = (
        await session.exec(
            select(NursingOrder).where(
                record_filter(staff, NursingOrder.patient_id, NursingOrder.department_code),
                NursingOrder.created_at >= placed_from,
                NursingOrder.created_at < placed_to,
            )
        )
    ).all()
    paid = [r for r in rows if r.status not in ("verifying", "paying", "failed")]
    ratings = [r.rating for r in rows if r.rating is not None]
    return {
        "total": len(rows),
        "by_status": dict(Counter(r.status for r in rows)),
        "by_item": dict(Counter(r.item_code for r in rows)),
        "by_nurse": dict(Counter(r.nurse_id for r in rows if r.nurse_id)),
        "paid_fen": sum(r.price_fen for r in paid),
        "refunded_fen": sum(r.refunded_fen for r in rows),
        "net_fen": sum(r.price_fen for r in paid) - sum(r.refunded_fen for r in rows),
        "rated": len(ratings),
        "mean_rating": round(statistics.fmean(ratings), 2) if ratings else None,
        "escalated": sum(1 for r in rows if r.escalated),
    }
