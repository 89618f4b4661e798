"""SMS through Twilio's Messages API with the official SDK (its asyncio client).

Production talks to api.twilio.com; tests and ``make run`` point ``api_base_url`` at the local
simulator, which speaks the same API. Status callbacks (queued → sent → delivered / undelivered)
come back to /webhooks/twilio/status and are verified there with the SDK's RequestValidator.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import aiohttp
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from core.logs import get_logger
from messaging.channel import (
    DeliveryReceipt,
    OutgoingMessage,
    PermanentDeliveryError,
    TransientDeliveryError,
)

log = get_logger(__name__)

# Twilio answers 429 when we exceed our account's rate; that is worth retrying.
_RETRYABLE_STATUS = frozenset({408, 409, 429})
# The clocks of Twilio and of our database may differ a little.
_LOOKUP_SLACK = timedelta(minutes=2)


class TwilioSmsChannel:
    name = "sms"
    reports_sends_within: timedelta | None = None  # find_sent looks the message up at Twilio

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        from_number: str,
        api_base_url: str,
        status_callback_url: str | None,
        timeout_seconds: float = 10.0,
    ) -> None:
        # Built inside the running event loop: the SDK opens its aiohttp session here.
        self._http = AsyncTwilioHttpClient()
        # Applied around each call: the SDK's async client keeps a timeout given to it but never
        # passes it on to aiohttp, whose default is five minutes.
        self._timeout = timeout_seconds
        self._client = Client(account_sid, auth_token, http_client=self._http)
        # The SDK's API domain is a plain attribute; the simulator speaks the same paths.
        self._client.api.base_url = api_base_url.rstrip("/")
        self._from = from_number
        self._callback = status_callback_url

    def unavailable_reason(self, message: OutgoingMessage) -> str | None:
        return None if message.phone else "没有有效的手机号码"

    async def deliver(self, message: OutgoingMessage) -> DeliveryReceipt:
        assert message.phone is not None
        try:
            async with asyncio.timeout(self._timeout):
                sent = await self._client.messages.create_async(
                    to=message.phone,
                    from_=self._from,
                    body=message.sms_body,
                    # None is dropped from the form by the SDK.
                    status_callback=self._callback,
                )
        except TwilioRestException as exc:
            raise _classify(exc) from exc
        except (TimeoutError, aiohttp.ClientError, TwilioException) as exc:
            raise TransientDeliveryError(f"Twilio unreachable: {exc.__class__.__name__}") from exc
        log.info("sms accepted", message_id=message.message_id, sid=sent.sid, status=sent.status)
        return DeliveryReceipt(provider_message_id=str(sent.sid), provider_status=str(sent.status))

    async def find_sent(self, message: OutgoingMessage, since: datetime) -> DeliveryReceipt | None:
        if message.phone is None:
            return None
        try:
            # Every message to the number since the try (newest first, all pages): a patient
            # sent many notices at once must not push the one we look for off a first page.
            async with asyncio.timeout(self._timeout):
                found = await self._client.messages.list_async(
                    to=message.phone, date_sent_after=since - _LOOKUP_SLACK, page_size=100
                )
        except TwilioRestException as exc:
            raise _classify(exc) from exc
        except (TimeoutError, aiohttp.ClientError, TwilioException) as exc:
            raise TransientDeliveryError(f"Twilio unreachable: {exc.__class__.__name__}") from exc
        for candidate in found:
            if candidate.body == message.sms_body:
                log.warning(
                    "sms found already sent after an interrupted try; not sending again",
                    message_id=message.message_id,
                    sid=candidate.sid,
                )
                return DeliveryReceipt(str(candidate.sid), str(candidate.status))
        return None

    async def close(self) -> None:
        await self._http.close()
        # aiohttp closes its connectors on the next loop iteration.
        await asyncio.sleep(0)


def _classify(exc: TwilioRestException) -> PermanentDeliveryError | TransientDeliveryError:
    code = str(exc.code) if exc.code is not None else str(exc.status)
    reason = f"Twilio {exc.status} ({code}): {exc.msg}"
    if 400 <= exc.status < 500 and exc.status not in _RETRYABLE_STATUS:
        return PermanentDeliveryError(reason, code)
    return TransientDeliveryError(reason, code)
