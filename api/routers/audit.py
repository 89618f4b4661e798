"""The audit trail for administrators (SEC-2): search by actor, patient, action, target and
time, newest first, with keyset pagination. Searching is itself audited."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel

from api.deps import SessionDep
from api.permissions import Permission, require
from core.models import AuditEntry
from core.validation import Key, SaneDateTime
from services import audit
from services.staff import StaffPrincipal

router = APIRouter(prefix="/api/audit", tags=["audit"])

AdminDep = Annotated[StaffPrincipal, Depends(require(Permission.AUDIT_READ))]


class AuditEntryOut(BaseModel):
    seq: int
    id: str
    at: datetime
    actor_type: str
    actor_id: str | None
    action: str
    target_type: str
    target_id: str
    patient_id: str | None
    detail: dict[str, Any]
    mac: str


class AuditPage(BaseModel):
    items: list[AuditEntryOut]
    # Pass as ``cursor`` for the next (older) page; null on the last page.
    next_cursor: str | None


def _cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"seq:{seq}".encode()).decode().rstrip("=")


def _before_seq(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, number = raw.partition(":")
        if prefix != "seq" or not number.isdigit():
            raise ValueError(raw)
        return int(number)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ("query", "cursor"),
                    "msg": "not a cursor this API returned",
                }
            ]
        ) from None


def _check_times(since: datetime | None, until: datetime | None) -> None:
    errors: list[dict[str, Any]] = [
        {
            "type": "value_error",
            "loc": ("query", name),
            "msg": "must carry a timezone offset, e.g. 2026-12-01T08:00:00+08:00",
        }
        for name, value in (("since", since), ("until", until))
        if value is not None and value.tzinfo is None
    ]
    if not errors and since is not None and until is not None and since >= until:
        errors.append(
            {"type": "value_error", "loc": ("query", "until"), "msg": "must be after since"}
        )
    if errors:
        raise RequestValidationError(errors)


@router.get("", response_model=AuditPage)
async def search_audit(
    session: SessionDep,
    staff: AdminDep,
    actor_id: Annotated[Key | None, Query(max_length=128)] = None,
    patient_id: Annotated[Key | None, Query(max_length=36)] = None,
    action: Annotated[Key | None, Query(max_length=64)] = None,
    target_type: Annotated[Key | None, Query(max_length=32)] = None,
    target_id: Annotated[Key | None, Query(max_length=200)] = None,
    since: SaneDateTime | None = None,
    until: SaneDateTime | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[Key | None, Query(max_length=64)] = None,
) -> AuditPage:
    """Entries matching every given filter, newest first; ``since`` inclusive, ``until``
    exclusive."""
    _check_times(since, until)
    before = _before_seq(cursor) if cursor else None
    where = audit.AuditFilter(
        actor_id=actor_id,
        patient_id=patient_id,
        action=action,
        target_type=target_type,
        target_id=target_id,
        since=since,
        until=until,
    )
    rows, next_seq = await audit.search(session, where, limit=limit, before_seq=before)
    page = AuditPage(
        items=[_out(r) for r in rows],
        next_cursor=_cursor(next_seq) if next_seq is not None else None,
    )
    filters = {k: v for k, v in vars(where).items() if v is not None}
    audit.record(
        session,
        actor_type="staff",
        actor_id=staff.id,
        action="audit.searched",
        target_type="audit_entry",
        target_id=patient_id or "*",
        patient_id=patient_id,
        filters={k: v.isoformat() if isinstance(v, datetime) else v for k, v in filters.items()},
        cursor=cursor,
    )
    await session.commit()
    return page


def _out(entry: AuditEntry) -> AuditEntryOut:
    return AuditEntryOut.model_validate(entry.model_dump())
