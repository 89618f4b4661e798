"""Messages sent to patients (the outbox in development), scoped like the runs they belong to."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import ContainerDep, SessionDep, StaffDep
from api.schemas import MessageOut, Page
from core.logs import mask_text
from services.queries import list_messages, mask_phone

router = APIRouter(prefix="/api/messages", tags=["messages"])


@router.get("", response_model=Page[MessageOut])
async def get_messages(
    container: ContainerDep,
    session: SessionDep,
    staff: StaffDep,
    workflow_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Page[MessageOut]:
    rows, total = await list_messages(
        session, staff, workflow_id=workflow_id, limit=limit, offset=offset
    )
    # A patient link is the patient's credential: in production staff see the text without it.
    # Elsewhere the outbox doubles as the demo's and the tests' view of what a patient received.
    hide_links = container.settings.environment == "production"
    items = [
        MessageOut.model_validate(
            {
                **m.model_dump(),
                "body": mask_text(m.body) if hide_links else m.body,
                "recipient_masked": mask_phone(m.recipient),
            }
        )
        for m in rows
    ]
    return Page(items=items, total=total, limit=limit, offset=offset)
