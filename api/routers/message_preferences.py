"""A patient's messaging preferences (MSG-1, MSG-6): WeChat binding, preferred channel and the
message categories they switched off. Staff set them on the patient's behalf; the hospital's
patient portal (WeChat menu, app) sets them through an integration token."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from sqlalchemy.exc import IntegrityError

from api.deps import SessionDep
from api.permissions import Permission, ensure_patient_visible, require
from core.models import Patient, StaffRole
from core.settings import KNOWN_CHANNELS
from core.validation import Key, Line
from messaging.categories import OPTIONAL_CATEGORIES
from services import audit
from services.staff import StaffPrincipal

router = APIRouter(prefix="/api/patients", tags=["patients"])

ReaderDep = Annotated[StaffPrincipal, Depends(require(Permission.PREFERENCES_READ))]
EditorDep = Annotated[StaffPrincipal, Depends(require(Permission.PREFERENCES_WRITE))]


class MessagingPreferences(BaseModel):
    preferred_channel: Line | None = None
    wechat_openid: Line | None = Field(default=None, min_length=6, max_length=64)
    opt_outs: list[Line] = Field(default_factory=list)


class MessagingPreferencesOut(MessagingPreferences):
    patient_id: str
    optional_categories: list[str]


async def _patient(session: SessionDep, staff: StaffPrincipal, patient_id: str) -> Patient:
    patient = await session.get(Patient, patient_id)
    if patient is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no patient with id '{patient_id}'")
    # Staff manage patients in their data scope (department staff: ones their department saw).
    await ensure_patient_visible(session, staff, patient.id)
    return patient


def _out(patient: Patient) -> MessagingPreferencesOut:
    return MessagingPreferencesOut(
        patient_id=patient.id,
        preferred_channel=patient.preferred_channel,
        wechat_openid=patient.wechat_openid,
        opt_outs=list(patient.message_opt_outs),
        optional_categories=sorted(OPTIONAL_CATEGORIES),
    )


@router.get("/{patient_id}/messaging", response_model=MessagingPreferencesOut)
async def get_preferences(
    patient_id: Key, session: SessionDep, staff: ReaderDep
) -> MessagingPreferencesOut:
    return _out(await _patient(session, staff, patient_id))


@router.put("/{patient_id}/messaging", response_model=MessagingPreferencesOut)
async def set_preferences(
    patient_id: Key, body: MessagingPreferences, session: SessionDep, staff: EditorDep
) -> MessagingPreferencesOut:
    errors: list[dict[str, object]] = []
    if body.preferred_channel is not None and body.preferred_channel not in KNOWN_CHANNELS:
        errors.append(
            {
                "type": "value_error",
                "loc": ("body", "preferred_channel"),
                "msg": f"must be one of {', '.join(KNOWN_CHANNELS)}",
            }
        )
    for index, category in enumerate(body.opt_outs):
        if category not in OPTIONAL_CATEGORIES:
            errors.append(
                {
                    "type": "value_error",
                    "loc": ("body", "opt_outs", index),
                    "msg": f"'{category}' cannot be switched off",
                }
            )
    if errors:
        raise RequestValidationError(errors)
    patient = await _patient(session, staff, patient_id)
    patient.preferred_channel = body.preferred_channel
    patient.wechat_openid = body.wechat_openid
    patient.message_opt_outs = sorted(set(body.opt_outs))
    audit.record(
        session,
        actor_type="staff" if staff.role != StaffRole.INTEGRATION else "api",
        actor_id=staff.id,
        action="patient.messaging_preferences_set",
        target_type="patient",
        target_id=patient.id,
        preferred_channel=body.preferred_channel,
        opt_outs=patient.message_opt_outs,
        wechat_bound=body.wechat_openid is not None,
    )
    try:
        await session.commit()
    except IntegrityError as exc:
        raise HTTPException(
            status.HTTP_409_CONFLICT, "this WeChat openid is bound to another patient"
        ) from exc
    return _out(patient)
