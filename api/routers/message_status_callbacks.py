"""Delivery reports from the message providers (MSG-3): Twilio status callbacks and WeChat
template send-job events. Each is authenticated the provider's way, deduplicated by provider id
and status, and applied without ever moving a message backwards, even when a report outruns our own
record of the send."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Annotated

import defusedxml.ElementTree as SafeXml
from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from fastapi.responses import PlainTextResponse
from twilio.request_validator import RequestValidator

from api.deps import ContainerDep, SessionDep
from core.logs import get_logger
from core.models import utcnow
from services.message_status import record_delivery_report

router = APIRouter(prefix="/webhooks", tags=["provider webhooks"])
log = get_logger(__name__)

MAX_BODY_BYTES = 64 * 1024


@router.post("/twilio/status", status_code=status.HTTP_204_NO_CONTENT)
async def twilio_status(request: Request, container: ContainerDep, session: SessionDep) -> Response:
    if len(await request.body()) > MAX_BODY_BYTES:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, "body too large")
    form = await request.form()
    params = {key: str(value) for key, value in form.items()}
    settings = container.settings
    validator = RequestValidator(settings.twilio_auth_token.get_secret_value())
    # Twilio signs the URL it was given, not the one a proxy forwards us: validate against it.
    signature = request.headers.get("X-Twilio-Signature", "")
    if not validator.validate(settings.twilio_status_callback_url, params, signature):
        log.warning("twilio callback refused", reason="bad signature")
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "X-Twilio-Signature does not match")
    sid, reported = params.get("MessageSid", ""), params.get("MessageStatus", "")
    if not sid or not reported:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "MessageSid and MessageStatus")
    await record_delivery_report(
        session,
        channel="sms",
        provider_message_id=sid[:128],
        provider_status=reported[:32],
        error_code=params.get("ErrorCode"),
        at=utcnow(),
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _check_wechat_signature(
    container: ContainerDep, signature: str, timestamp: str, nonce: str
) -> None:
    token = container.settings.wechat_token.get_secret_value()
    expected = hashlib.sha1("".join(sorted([token, timestamp, nonce])).encode()).hexdigest()  # noqa: S324 - WeChat's scheme
    if not hmac.compare_digest(expected, signature):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "signature does not match")
    try:
        sent_at = int(timestamp)
    except ValueError as exc:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "timestamp is not a number") from exc
    if abs(time.time() - sent_at) > container.settings.his_webhook_tolerance_seconds:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "timestamp outside the window")


@router.get("/wechat", response_class=PlainTextResponse)
async def wechat_verify(
    container: ContainerDep,
    signature: str,
    timestamp: str,
    nonce: str,
    echostr: Annotated[str, Query(max_length=200)],
) -> str:
    """WeChat's one-time check of the server URL configured for the official account."""
    _check_wechat_signature(container, signature, timestamp, nonce)
    return echostr


@router.post("/wechat", response_class=PlainTextResponse)
async def wechat_event(
    request: Request,
    container: ContainerDep,
    session: SessionDep,
    signature: str,
    timestamp: str,
    nonce: str,
) -> str:
    _check_wechat_signature(container, signature, timestamp, nonce)
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, "body too large")
    try:
        root = SafeXml.fromstring(body)
    except SafeXml.ParseError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "body is not XML") from exc
    fields = {child.tag: (child.text or "") for child in root}
    # Events we do not handle (subscribe, menu clicks) are acknowledged, as WeChat requires.
    if fields.get("MsgType") != "event" or fields.get("Event") != "TEMPLATESENDJOBFINISH":
        return "success"
    msgid, outcome = fields.get("MsgID", ""), fields.get("Status", "")
    if msgid:
        await record_delivery_report(
            session,
            channel="wechat",
            provider_message_id=msgid[:128],
            provider_status=outcome[:32],
            error_code=None if outcome == "success" else outcome[:32],
            at=utcnow(),
        )
    return "success"
