"""Messages sent to patients (the outbox in development), scoped like the runs they belong to."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import SessionDep, StaffDep
from api.schemas import MessageOut, Page
from services.queries import list_messages, mask_phone

router = APIRouter(prefix="/api/messages", tags=["messages"])


@router.get("", response_model=Page[MessageOut])
async def get_messages(
    session: SessionDep,
    staff: StaffDep,
    workflow_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Page[MessageOut]:
    rows, total = await list_messages(
        session, staff, workflow_id=workflow_id, limit=limit, offset=offset
    )
    items = [
        MessageOut.model_validate({**m.model_dump(), "recipient_masked": mask_phone(m.recipient)})
        for m in rows
    ]
    return Page(items=items, total=total, limit=limit, offset=offset)
