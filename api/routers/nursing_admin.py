"""Home nursing's catalogue and roster (NUR-1), maintained by administrators: the items patients
can order with their prices, home-visit fees, expected durations, the qualification a nurse
needs and the nursing-document template (a published form) filled in after the visit; and the
nurses registered for home visits with their qualifications and which of them are head nurses.
Every change is audited."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Self

from fastapi import APIRouter, Depends, HTTPException, Path, status
from pydantic import BaseModel, Field, model_validator
from sqlmodel import col, select

from api.deps import SessionDep
from api.permissions import Permission, require
from api.schemas import field_error
from core.models import NursingItem, NursingNurse, StaffRole, StaffUser, utcnow
from core.phones import to_e164
from core.validation import Line, Slug, Text
from services import audit
from services.form_definitions import published_forms
from services.staff import StaffPrincipal

router = APIRouter(prefix="/api/nursing", tags=["home nursing"])
ReaderDep = Annotated[StaffPrincipal, Depends(require(Permission.NURSING_READ))]
AdminDep = Annotated[StaffPrincipal, Depends(require(Permission.NURSING_ADMIN))]
ItemCode = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9-]{1,31}$")]


class ItemIn(BaseModel):
    name: Annotated[Line, Field(min_length=1, max_length=100)]
    description: Annotated[Text, Field(max_length=1000)] = ""
    price_fen: int = Field(ge=1, le=10_000_000)
    visit_fee_fen: int = Field(default=0, ge=0, le=10_000_000)
    expected_minutes: int = Field(ge=10, le=600)
    qualification: Slug | None = None
    assessment_form: Slug
    active: bool = True

    @model_validator(mode="after")
    def _fee_within_price(self) -> Self:
        if self.visit_fee_fen > self.price_fen:
            raise ValueError("visit_fee_fen cannot exceed price_fen")
        return self


class ItemOut(ItemIn):
    code: str
    updated_by: str
    updated_at: datetime


class NurseIn(BaseModel):
    qualifications: list[Slug] = Field(default_factory=list, max_length=20)
    head_nurse: bool = False
    on_duty: bool = True
    phone: Line | None = Field(default=None, max_length=20, description="for alarms by SMS")


class NurseOut(BaseModel):
    staff_id: str
    name: str
    qualifications: list[str]
    head_nurse: bool
    on_duty: bool
    has_phone: bool


def _item_out(row: NursingItem) -> ItemOut:
    return ItemOut.model_validate(row.model_dump())


@router.get("/items", response_model=list[ItemOut])
async def items(session: SessionDep, staff: ReaderDep) -> list[ItemOut]:  # noqa: ARG001
    rows = await session.exec(select(NursingItem).order_by(col(NursingItem.code)))
    return [_item_out(r) for r in rows.all()]


@router.put("/items/{code}", response_model=ItemOut)
async def put_item(code: ItemCode, body: ItemIn, session: SessionDep, staff: AdminDep) -> ItemOut:
    """Adds or changes an item; orders already placed keep the price they were placed at."""
    if body.assessment_form not in await published_forms(session):
        raise field_error(("body", "assessment_form"), "not a published form")
    row = await session.get(NursingItem, code)
    before = row.model_dump(mode="json") if row is not None else None
    if row is None:
        row = NursingItem(code=code, updated_by=staff.id, **body.model_dump())
        session.add(row)
    else:
        for name, value in body.model_dump().items():
            setattr(row, name, value)
    row.updated_by, row.updated_at = staff.id, utcnow()
    audit.record(
        session,
        actor_type="staff",
        actor_id=staff.id,
        action="nursing.item_saved",
        target_type="nursing_item",
        target_id=code,
        price_fen=body.price_fen,
        previous_price_fen=before["price_fen"] if before else None,
    )
    await session.commit()
    return _item_out(row)


@router.get("/nurses", response_model=list[NurseOut])
async def nurses(session: SessionDep, staff: ReaderDep) -> list[NurseOut]:  # noqa: ARG001
    rows = await session.exec(
        select(NursingNurse, StaffUser)
        .join(StaffUser, col(StaffUser.id) == NursingNurse.staff_id)
        .order_by(col(StaffUser.name), col(StaffUser.id))
    )
    return [
        NurseOut(
            staff_id=nurse.staff_id,
            name=user.name,
            qualifications=list(nurse.qualifications),
            head_nurse=nurse.head_nurse,
            on_duty=nurse.on_duty,
            has_phone=bool(nurse.phone),
        )
        for nurse, user in rows.all()
    ]


@router.put("/nurses/{staff_id}", response_model=NurseOut)
async def put_nurse(
    staff_id: Annotated[str, Path(max_length=36)],
    body: NurseIn,
    session: SessionDep,
    staff: AdminDep,
) -> NurseOut:
    """Registers a nurse for home visits, or changes their qualifications, duty or role."""
    user = await session.get(StaffUser, staff_id)
    if user is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no staff member '{staff_id}'")
    if user.role != StaffRole.NURSE:
        raise field_error(("path", "staff_id"), "only nurses make home visits")
    phone = to_e164(body.phone) if body.phone else None
    if body.phone and phone is None:
        raise field_error(("body", "phone"), "not a mainland mobile number")
    if body.head_nurse and phone is None:
        raise field_error(("body", "phone"), "a head nurse needs a phone for alarms")
    row = await session.get(NursingNurse, staff_id)
    if row is None:
        row = NursingNurse(staff_id=staff_id)
        session.add(row)
    row.qualifications = sorted(set(body.qualifications))
    row.head_nurse, row.on_duty, row.phone = body.head_nurse, body.on_duty, phone
    row.updated_at = utcnow()
    audit.record(
        session,
        actor_type="staff",
        actor_id=staff.id,
        action="nursing.nurse_saved",
        target_type="staff_user",
        target_id=staff_id,
        qualifications=row.qualifications,
        head_nurse=row.head_nurse,
        on_duty=row.on_duty,
    )
    await session.commit()
    return NurseOut(
        staff_id=staff_id,
        name=user.name,
        qualifications=row.qualifications,
        head_nurse=row.head_nurse,
        on_duty=row.on_duty,
        has_phone=phone is not None,
    )
