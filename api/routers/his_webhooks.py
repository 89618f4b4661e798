"""Webhooks the HIS calls (HIS-1). Authenticated by HMAC signature, deduplicated by event id."""

from __future__ import annotations

import hashlib

from fastapi import APIRouter, HTTPException, Request, Response, status
from fastapi.exceptions import RequestValidationError
from temporalio.service import RPCError

from api.deps import ContainerDep, SessionDep
from api.signed import parse, signed_body
from core.logs import get_logger
from integrations.his import HisUnavailable
from integrations.his_events import DischargeEvent
from services.discharge import (
    DischargeContext,
    DischargeOutcome,
    EventConflict,
    InvalidEvent,
    accept_discharge,
)
from services.patients import UnknownPatient

router = APIRouter(prefix="/webhooks/his", tags=["HIS webhooks"])
log = get_logger(__name__)


@router.post(
    "/discharge",
    response_model=DischargeOutcome,
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        200: {
            "description": "Duplicate event: the runs it started before",
            "model": DischargeOutcome,
        },
        401: {"description": "Bad signature or stale timestamp"},
        404: {"description": "The HIS does not know the patient"},
        409: {"description": "Event id reused with a different body"},
        422: {"description": "Malformed event; the error names the field"},
        503: {"description": "HIS or Temporal unreachable; retry later"},
    },
)
async def discharge(
    request: Request, response: Response, container: ContainerDep, session: SessionDep
) -> DischargeOutcome:
    settings = container.settings
    body = await signed_body(
        request,
        settings.his_webhook_secret.get_secret_value(),
        settings.his_webhook_tolerance_seconds,
    )
    event = parse(DischargeEvent, body)
    ctx = DischargeContext(container.settings, container.temporal, container.his, container.catalog)
    try:
        outcome = await accept_discharge(session, ctx, event, hashlib.sha256(body).hexdigest())
        await session.commit()
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
        log.error("workflow start failed", event_id=event.event_id, error=str(exc))
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, "workflow service unavailable, retry later"
        ) from exc
    if outcome.duplicate:
        response.status_code = status.HTTP_200_OK
    log.info(
        "discharge event handled",
        event_id=event.event_id,
        duplicate=outcome.duplicate,
        runs=[run.workflow_id for run in outcome.runs],
    )
    return outcome
