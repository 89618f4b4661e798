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

from api.deps import ContainerDep
from api.schemas import field_error
from core.crypto import blind_index
from core.logs import get_logger
from core.models import utcnow
from core.validation import Key
from services.delivery_reports import ProviderReport

router = APIRouter(prefix="/webhooks", tags=["provider webhooks"])
log = get_logger(__name__)

MAX_BODY_BYTES = 64 * 1024

# WeChat signs the server URL's query: a SHA-1 hex digest over the token, a Unix timestamp and a
# nonce. Anything else in those places is not WeChat and is refused before it is compared.
WeChatSignature = Annotated[str, Query(min_length=40, max_length=40, pattern=r"^[0-9a-fA-F]{40}$")]
WeChatTimestamp = Annotated[str, Query(min_length=1, max_length=12, pattern=r"^[0-9]{1,12}$")]
WeChatNonce = Annotated[str, Query(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9]{1,64}$")]


TWILIO_FORM = {
    "application/x-www-form-urlencoded": {
        "schema": {
            "type": "object",
            "properties": {
                "MessageSid": {"type": "string", "maxLength": 128},
                "MessageStatus": {"type": "string", "maxLength": 32},
                "ErrorCode": {"type": "string", "maxLength": 32},
            },
            "required": ["MessageSid", "MessageStatus"],
        }
    }
}
# The template send-job event WeChat posts (XML), read by hand after the signature check.
WECHAT_XML = {"application/xml": {"schema": {"type": "string", "maxLength": MAX_BODY_BYTES}}}


@router.post(
    "/twilio/status",
    status_code=status.HTTP_204_NO_CONTENT,
    openapi_extra={"requestBody": {"required": True, "content": TWILIO_FORM}},
)
async def twilio_status(request: Request, container: ContainerDep) -> Response:
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
        missing = "MessageSid" if not sid else "MessageStatus"
        raise field_error(("body", missing), f"{missing} is required")
    await container.reports.record(
        ProviderReport(
            channel="sms",
            provider_message_id=sid[:128],
            provider_status=reported[:32],
            error_code=params.get("ErrorCode"),
            at=utcnow(),
        )
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _check_wechat_signature(
    container: ContainerDep, signature: str, timestamp: str, nonce: str
) -> None:
    token = container.settings.wechat_token.get_secret_value()
    expected = hashlib.sha1("".join(sorted([token, timestamp, nonce])).encode()).hexdigest()  # noqa: S324 - WeChat's scheme
    if not hmac.compare_digest(expected, signature.lower()):
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
    signature: WeChatSignature,
    timestamp: WeChatTimestamp,
    nonce: WeChatNonce,
    echostr: Annotated[Key, Query(max_length=200)],
) -> str:
    """WeChat's one-time check of the server URL configured for the official account."""
    _check_wechat_signature(container, signature, timestamp, nonce)
    return echostr


@router.post(
    "/wechat",
    response_class=PlainTextResponse,
    openapi_extra={"requestBody": {"required": True, "content": WECHAT_XML}},
)
async def wechat_event(
    request: Request,
    container: ContainerDep,
    signature: WeChatSignature,
    timestamp: WeChatTimestamp,
    nonce: WeChatNonce,
) -> str:
    _check_wechat_signature(container, signature, timestamp, nonce)
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, "body too large")
    try:
        root = SafeXml.fromstring(body)
    except SafeXml.ParseError as exc:
        raise field_error(("body",), "body is not XML") from exc
    fields = {child.tag: (child.text or "") for child in root}
    # Events we do not handle (subscribe, menu clicks) are acknowledged, as WeChat requires.
    if fields.get("MsgType") != "event" or fields.get("Event") != "TEMPLATESENDJOBFINISH":
        return "success"
    msgid, outcome = fields.get("MsgID", ""), fields.get("Status", "")
    if msgid:
        await container.reports.record(
            ProviderReport(
                channel="wechat",
                provider_message_id=msgid[:128],
                provider_status=outcome[:32],
                error_code=None if outcome == "success" else outcome[:32],
                at=utcnow(),
                recipient_index=blind_index("openid", fields.get("FromUserName")),
            )
        )
    return "success"
