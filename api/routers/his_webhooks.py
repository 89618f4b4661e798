"""Encounter events the HIS pushes (HIS-1): discharges, visits, admissions, surgeries,
consultations, examinations and registrations. Authenticated by HMAC signature, deduplicated by
event id; each may enrol the patient in pathways or satisfy an expected revisit."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import Field, TypeAdapter, ValidationError
from temporalio.service import RPCError

from api.deps import ContainerDep, SessionDep
from api.signed import parse, signed_body, signed_json
from core.logs import get_logger
from integrations.his import HisUnavailable
from integrations.his_events import DischargeEvent, EncounterEvent, RegistrationEvent
from services.enrolment import (
    EventConflict,
    EventOutcome,
    InvalidEvent,
    accept_encounter_event,
    accept_registration,
)
from services.patients import UnknownPatient

router = APIRouter(prefix="/webhooks/his", tags=["HIS webhooks"])
log = get_logger(__name__)

RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "Duplicate event: the runs it started before", "model": EventOutcome},
    401: {"description": "Bad signature or stale timestamp"},
    404: {"description": "The HIS does not know the patient"},
    409: {"description": "Event id reused with a different body"},
    422: {"description": "Malformed event; the error names the field"},
    503: {"description": "HIS or Temporal unreachable; retry later"},
}
AnyEvent = Annotated[EncounterEvent | RegistrationEvent, Field(discriminator="event_type")]
_EVENTS: TypeAdapter[EncounterEvent | RegistrationEvent] = TypeAdapter(AnyEvent)


async def _handle(
    response: Response, run: Callable[[], Awaitable[EventOutcome]], event_id: str
) -> EventOutcome:
    try:
        outcome = await run()
    except UnknownPatient as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    except EventConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    except InvalidEvent as exc:
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ("body", *exc.field.split(".")),
                    "msg": str(exc),
                    "input": None,
                }
            ]
        ) from exc
    except HisUnavailable as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from exc
    except RPCError as exc:
        log.error("workflow call failed", event_id=event_id, error=str(exc))
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, "workflow service unavailable, retry later"
        ) from exc
    if outcome.duplicate:
        response.status_code = status.HTTP_200_OK
    log.info(
        "HIS event handled",
        event_id=event_id,
        duplicate=outcome.duplicate,
        runs=[r.workflow_id for r in outcome.runs],
        candidates=outcome.candidates,
    )
    return outcome


async def _body(request: Request, container: ContainerDep) -> bytes:
    settings = container.settings
    return await signed_body(
        request,
        settings.his_webhook_secret.get_secret_value(),
        settings.his_webhook_tolerance_seconds,
    )


@router.post(
    "/discharge",
    response_model=EventOutcome,
    status_code=status.HTTP_202_ACCEPTED,
    responses=RESPONSES,
    openapi_extra=signed_json(DischargeEvent),
)
async def discharge(
    request: Request, response: Response, container: ContainerDep, session: SessionDep
) -> EventOutcome:
    body = await _body(request, container)
    event = parse(DischargeEvent, body)

    async def run() -> EventOutcome:
        outcome = await accept_encounter_event(
            session, container.enrolment, event, hashlib.sha256(body).hexdigest()
        )
        await session.commit()
        return outcome

    return await _handle(response, run, event.event_id)


@router.post(
    "/events",
    response_model=EventOutcome,
    status_code=status.HTTP_202_ACCEPTED,
    responses=RESPONSES,
)
async def encounter_event(
    request: Request, response: Response, container: ContainerDep, session: SessionDep
) -> EventOutcome:
    """Visits, admissions, surgeries, consultations, examinations (enrol patients in pathways
    anchored on them) and registrations (satisfy expected revisits)."""
    body = await _body(request, container)
    try:
        event = _EVENTS.validate_json(body)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        ) from exc
    sha = hashlib.sha256(body).hexdigest()

    async def run() -> EventOutcome:
        if isinstance(event, RegistrationEvent):
            outcome = await accept_registration(session, container.enrolment, event, sha)
        else:
            outcome = await accept_encounter_event(session, container.enrolment, event, sha)
        await session.commit()
        return outcome

    return await _handle(response, run, event.event_id)
