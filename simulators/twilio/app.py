"""A Twilio Programmable Messaging simulator, speaking the Messages API our SDK client calls.

- ``POST /2010-04-01/Accounts/{sid}/Messages.json``: form-encoded To/From/Body/StatusCallback,
  HTTP Basic auth with the account SID and auth token; 201 with the message resource, or Twilio's
  error JSON (21211 invalid 'To' number, 21602 missing body, 20003 authentication).
- ``GET .../Messages.json`` (filters To and DateSent>) and ``GET .../Messages/{sid}.json``.
- Status callbacks (sent, then delivered or undelivered) posted to the StatusCallback URL and
  signed with X-Twilio-Signature, computed here independently of the SDK's validator.

A /sim control API injects faults (latency, 5xx bursts, invalid and undeliverable numbers,
duplicate and out-of-order callbacks) and shows what was received; ``PUT /sim/random-faults``
(simulators/faults.py) makes any API call fail at random, before acting or by acting and losing
the answer.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Annotated, Any
from urllib.parse import urlencode

import httpx
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, status
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from pydantic import BaseModel, Field

from simulators.faults import FaultInjector, add_fault_control, install
from simulators.notifier import Notifier

API_PREFIX = "/2010-04-01/Accounts/{account_sid}"
_E164 = re.compile(r"^\+[1-9]\d{7,14}$")
# Module level: FastAPI resolves the string annotations below against module globals.
basic = HTTPBasic(auto_error=False)


class Faults(BaseModel):
    latency_ms: int = Field(default=0, ge=0, le=60_000)
    # The next N message creations answer with this HTTP status (e.g. 500, 503, 429).
    fail_next: int = Field(default=0, ge=0)
    fail_status: int = 503
    # Creations to these numbers answer fail_status, for as long as they are listed (a route
    # down for some recipients while others go through).
    failing_numbers: list[str] = Field(default_factory=list)
    # Numbers Twilio refuses at once (400, code 21211).
    invalid_numbers: list[str] = Field(default_factory=list)
    # Numbers accepted but never delivered: the callback says undelivered (30003).
    undeliverable_numbers: list[str] = Field(default_factory=list)
    # Each status callback is posted this many extra times.
    duplicate_callbacks: int = Field(default=0, ge=0, le=5)
    # 'delivered' arrives before 'sent'.
    out_of_order_callbacks: bool = False
    callback_delay_ms: int = Field(default=20, ge=0, le=60_000)
    # Off: no status callbacks at all (as if none was requested).
    send_callbacks: bool = True


@dataclass
class SimMessage:
    sid: str
    account_sid: str
    to: str
    from_: str
    body: str
    status: str
    status_callback: str | None
    date_created: datetime
    error_code: int | None = None

    def resource(self) -> dict[str, Any]:
        created = format_datetime(self.date_created, usegmt=True)
        return {
            "sid": self.sid,
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "body": self.body,
            "date_created": created,
            "date_updated": created,
            "date_sent": created,
            "direction": "outbound-api",
            "error_code": self.error_code,
            "error_message": None,
            "from": self.from_,
            "messaging_service_sid": None,
            "num_media": "0",
            "num_segments": "1",
            "price": None,
            "price_unit": "USD",
            "status": self.status,
            "subresource_uris": {},
            "to": self.to,
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{self.sid}.json",
        }


@dataclass
class TwilioState:
    account_sid: str
    auth_token: str
    messages: dict[str, SimMessage] = field(default_factory=dict)
    faults: Faults = field(default_factory=Faults)
    callbacks: list[dict[str, Any]] = field(default_factory=list)
    # Random faults on every Messages API call (none until a plan is put).
    random_faults: FaultInjector = field(
        default_factory=lambda: FaultInjector(scope_prefix="/2010-04-01")
    )


def twilio_signature(auth_token: str, url: str, params: dict[str, str]) -> str:
    """Twilio's scheme: HMAC-SHA1 over the URL followed by each POST parameter, sorted by name,
    as name+value; base64 encoded."""
    payload = url + "".join(f"{key}{params[key]}" for key in sorted(params))
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _error(status_code: int, code: int, message: str) -> JSONResponse:
    return JSONResponse(
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status_code,
        },
        status_code=status_code,
    )


def create_app(state: TwilioState) -> FastAPI:
    http = Notifier()
    pending: set[asyncio.Task[None]] = set()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        for task in list(pending):
            task.cancel()
        await http.aclose()

    app = FastAPI(title="Twilio simulator", version="1", lifespan=lifespan)
    app.state.twilio = state

    def authenticate(
        account_sid: str,
        credentials: Annotated[HTTPBasicCredentials | None, Depends(basic)],
    ) -> None:
        ok = (
            credentials is not None
            and hmac.compare_digest(credentials.username, state.account_sid)
            and hmac.compare_digest(credentials.password, state.auth_token)
            and account_sid == state.account_sid
        )
        if not ok:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, {"code": 20003})

    api = APIRouter(prefix=API_PREFIX, dependencies=[Depends(authenticate)])

    @api.post("/Messages.json")
    async def create_message(account_sid: str, request: Request) -> JSONResponse:
        form = await request.form()
        faults = state.faults
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        if faults.fail_next > 0:
            faults.fail_next -= 1
            return _error(faults.fail_status, 20500, "Internal Server Error (injected)")
        to = str(form.get("To", ""))
        if to in faults.failing_numbers:
            return _error(faults.fail_status, 20500, "Internal Server Error (injected)")
        body = str(form.get("Body", ""))
        if not _E164.match(to) or to in faults.invalid_numbers:
            return _error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if not body:
            return _error(400, 21602, "Message body is required.")
        callback = form.get("StatusCallback")
        message = SimMessage(
            sid="SM" + secrets.token_hex(16),
            account_sid=account_sid,
            to=to,
            from_=str(form.get("From", "")),
            body=body,
            status="queued",
            status_callback=str(callback) if callback else None,
            date_created=datetime.now(UTC),
        )
        state.messages[message.sid] = message
        task = asyncio.create_task(_progress(message))
        pending.add(task)
        task.add_done_callback(pending.discard)
        return JSONResponse(message.resource(), status_code=201)

    @api.get("/Messages.json")
    async def list_messages(account_sid: str, request: Request) -> dict[str, Any]:
        """As Twilio lists them: newest first, a page of PageSize (50 by default) at a time."""
        query = request.query_params
        to = query.get("To")
        after = query.get("DateSent>")
        since = datetime.fromisoformat(after.replace("Z", "+00:00")) if after else None
        size = min(max(int(query.get("PageSize", "50") or 50), 1), 1000)
        page = max(int(query.get("Page", "0") or 0), 0)
        matching = sorted(
            (
                m
                for m in state.messages.values()
                if m.account_sid == account_sid
                and (to is None or m.to == to)
                and (since is None or m.date_created >= since)
            ),
            key=lambda m: m.date_created,
            reverse=True,
        )
        found = [m.resource() for m in matching[page * size : (page + 1) * size]]
        path = str(request.url.path)

        def uri(n: int) -> str:
            return f"{path}?{urlencode({**dict(query), 'PageSize': size, 'Page': n})}"

        return {
            "messages": found,
            "page": page,
            "page_size": size,
            "start": page * size,
            "end": page * size + max(len(found) - 1, 0),
            "first_page_uri": uri(0),
            "next_page_uri": uri(page + 1) if (page + 1) * size < len(matching) else None,
            "previous_page_uri": uri(page - 1) if page > 0 else None,
            "uri": uri(page),
        }

    @api.get("/Messages/{sid}.json")
    async def get_message(sid: str) -> Any:
        message = state.messages.get(sid)
        if message is None:
            return _error(404, 20404, f"The requested resource {sid} was not found")
        return message.resource()

    async def _progress(message: SimMessage) -> None:
        faults = state.faults
        final = "undelivered" if message.to in faults.undeliverable_numbers else "delivered"
        steps = ["sent", final]
        if faults.out_of_order_callbacks:
            steps.reverse()
        for step in steps:
            await asyncio.sleep(faults.callback_delay_ms / 1000)
            # The resource always shows the furthest status, whatever order callbacks go in.
            if step != "sent" or message.status == "queued":
                message.status = step
            if step == "undelivered":
                message.error_code = 30003
            for _ in range(1 + faults.duplicate_callbacks):
                await _callback(message, step)

    async def _callback(message: SimMessage, step: str) -> None:
        if not message.status_callback or not state.faults.send_callbacks:
            return
        params = {
            "AccountSid": message.account_sid,
            "ApiVersion": "2010-04-01",
            "From": message.from_,
            "MessageSid": message.sid,
            "MessageStatus": step,
            "SmsSid": message.sid,
            "SmsStatus": step,
            "To": message.to,
        }
        if step == "undelivered":
            params["ErrorCode"] = "30003"
        headers = {
            "X-Twilio-Signature": twilio_signature(
                state.auth_token, message.status_callback, params
            )
        }
        try:
            response = await http.post(message.status_callback, data=params, headers=headers)
            code: int | None = response.status_code
        except httpx.HTTPError:
            code = None
        state.callbacks.append({"sid": message.sid, "status": step, "response": code})

    control = APIRouter(prefix="/sim", tags=["simulation control"])

    @control.get("/messages")
    async def sim_messages(to: str | None = None) -> list[dict[str, Any]]:
        return [m.resource() for m in state.messages.values() if to is None or m.to == to]

    @control.put("/faults")
    async def set_faults(faults: Faults) -> Faults:
        state.faults = faults
        return faults

    @control.get("/callbacks")
    async def sim_callbacks() -> list[dict[str, Any]]:
        return state.callbacks

    add_fault_control(control, state.random_faults, "/random-faults")
    install(app, state.random_faults)
    app.include_router(api)
    app.include_router(control)
    return app
