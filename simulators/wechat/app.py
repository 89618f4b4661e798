"""A WeChat official-account API simulator: access tokens and template messages.

- ``POST /cgi-bin/stable_token`` and ``GET /cgi-bin/token``: access tokens with expiry; the
  stable token is the same for every caller until it expires or a caller forces a refresh.
- ``POST /cgi-bin/message/template/send?access_token=``: errcode 40001 (invalid token), 42001
  (expired), 43004 (the user does not follow the account), 40037 (invalid template id), -1
  (system busy, injected); otherwise a msgid, followed by the TEMPLATESENDJOBFINISH event pushed
  to our server URL as XML, signed the way WeChat signs (sha1 of the sorted token, timestamp and
  nonce), naming the recipient (FromUserName), and pushed again up to twice while our server
  does not answer 200.

A /sim control API adds followers, expires tokens and injects faults; ``PUT /sim/random-faults``
(simulators/faults.py) makes any API call fail at random, before acting or by acting and losing
the answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field

from simulators.faults import FaultInjector, add_fault_control, install
from simulators.notifier import Notifier

TOKEN_LIFETIME = 7200
EVENT_PUSH_TRIES = 3
EVENT_PUSH_RETRY_SECONDS = 1.0


class Faults(BaseModel):
    latency_ms: int = Field(default=0, ge=0, le=60_000)
    # The next N template sends answer errcode -1 (system busy), or HTTP 500 if http_500.
    fail_next: int = Field(default=0, ge=0)
    http_500: bool = False
    # Openids whose delivery fails afterwards (event Status "failed:user block").
    blocked_openids: list[str] = Field(default_factory=list)
    event_delay_ms: int = Field(default=20, ge=0, le=60_000)
    # Every send answers the msgid of the send before it, as a provider that lost its memory
    # would: the platform must store the repeat, not send again.
    repeat_last_msgid: bool = False
    # Sends after the first N are never reported (WeChat's event push lost for good).
    report_only_first: int | None = Field(default=None, ge=0)


@dataclass
class SentTemplate:
    msgid: int
    touser: str
    template_id: str
    url: str | None
    data: dict[str, Any]
    sent_at: float = field(default_factory=time.time)


@dataclass
class WeChatState:
    appid: str
    secret: str
    server_token: str
    event_url: str | None
    followers: set[str] = field(default_factory=set)
    # Empty: every template id is accepted.
    template_ids: set[str] = field(default_factory=set)
    tokens: dict[str, float] = field(default_factory=dict)
    stable_token: str | None = None
    sent: list[SentTemplate] = field(default_factory=list)
    token_requests: int = 0
    faults: Faults = field(default_factory=Faults)
    events: list[dict[str, Any]] = field(default_factory=list)
    # Random faults on every API call (none until a plan is put).
    random_faults: FaultInjector = field(
        default_factory=lambda: FaultInjector(scope_prefix="/cgi-bin")
    )
    # Counted from the start-up time in microseconds, so a restarted simulator never hands out
    # an id it gave before it stopped.
    _ids: itertools.count[int] = field(
        default_factory=lambda: itertools.count(time.time_ns() // 1000)
    )

    def next_msgid(self) -> int:
        if self.faults.repeat_last_msgid and self.sent:
            return self.sent[-1].msgid
        return next(self._ids)

    def issue_token(self) -> str:
        token = secrets.token_urlsafe(48)
        self.tokens[token] = time.time() + TOKEN_LIFETIME
        return token


def wechat_signature(token: str, timestamp: str, nonce: str) -> str:
    return hashlib.sha1("".join(sorted([token, timestamp, nonce])).encode()).hexdigest()  # noqa: S324 - WeChat's scheme


def _err(code: int, message: str) -> dict[str, Any]:
    return {"errcode": code, "errmsg": message}


def create_app(state: WeChatState) -> FastAPI:
    http = Notifier()
    pending: set[asyncio.Task[None]] = set()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        for task in list(pending):
            task.cancel()
        await http.aclose()

    app = FastAPI(title="WeChat official-account simulator", version="1", lifespan=lifespan)
    app.state.wechat = state
    api = APIRouter(prefix="/cgi-bin")

    def _token_for(appid: str, secret: str, force: bool) -> dict[str, Any]:
        if appid != state.appid:
            return _err(40013, "invalid appid")
        if secret != state.secret:
            return _err(40125, "invalid appsecret")
        state.token_requests += 1
        current = state.stable_token
        if force or current is None or state.tokens.get(current, 0) <= time.time():
            current = state.stable_token = state.issue_token()
        return {
            "access_token": current,
            "expires_in": int(state.tokens[current] - time.time()),
        }

    @api.post("/stable_token")
    async def stable_token(request: Request) -> dict[str, Any]:
        body = await request.json()
        if body.get("grant_type") != "client_credential":
            return _err(40002, "invalid grant_type")
        return _token_for(
            str(body.get("appid")), str(body.get("secret")), bool(body.get("force_refresh"))
        )

    @api.get("/token")
    async def classic_token(appid: str, secret: str, grant_type: str) -> dict[str, Any]:
        if grant_type != "client_credential":
            return _err(40002, "invalid grant_type")
        return _token_for(appid, secret, force=True)

    @api.post("/message/template/send")
    async def send_template(access_token: str, request: Request) -> Any:
        faults = state.faults
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        expires = state.tokens.get(access_token)
        if expires is None:
            return _err(40001, "invalid credential, access_token is invalid or not latest")
        if expires <= time.time():
            return _err(42001, "access_token expired")
        if faults.fail_next > 0:
            faults.fail_next -= 1
            if faults.http_500:
                return PlainTextResponse("upstream error", status_code=500)
            return _err(-1, "system error")
        body = await request.json()
        touser = str(body.get("touser", ""))
        template_id = str(body.get("template_id", ""))
        if touser not in state.followers:
            return _err(43004, "require subscribe")
        if state.template_ids and template_id not in state.template_ids:
            return _err(40037, "invalid template_id")
        if not isinstance(body.get("data"), dict):
            return _err(47001, "data format error")
        sent = SentTemplate(
            msgid=state.next_msgid(),
            touser=touser,
            template_id=template_id,
            url=body.get("url"),
            data=body["data"],
        )
        state.sent.append(sent)
        limit = state.faults.report_only_first
        if limit is not None and len(state.sent) > limit:
            return {"errcode": 0, "errmsg": "ok", "msgid": sent.msgid}
        task = asyncio.create_task(_push_event(sent))
        pending.add(task)
        task.add_done_callback(pending.discard)
        return {"errcode": 0, "errmsg": "ok", "msgid": sent.msgid}

    async def _push_event(sent: SentTemplate) -> None:
        if not state.event_url:
            return
        await asyncio.sleep(state.faults.event_delay_ms / 1000)
        outcome = "failed:user block" if sent.touser in state.faults.blocked_openids else "success"
        xml = (
            "<xml><ToUserName><![CDATA[gh_simulated]]></ToUserName>"
            f"<FromUserName><![CDATA[{sent.touser}]]></FromUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime>"
            "<MsgType><![CDATA[event]]></MsgType>"
            "<Event><![CDATA[TEMPLATESENDJOBFINISH]]></Event>"
            f"<MsgID>{sent.msgid}</MsgID>"
            f"<Status><![CDATA[{outcome}]]></Status></xml>"
        )
        timestamp, nonce = str(int(time.time())), secrets.token_hex(8)
        params = {
            "signature": wechat_signature(state.server_token, timestamp, nonce),
            "timestamp": timestamp,
            "nonce": nonce,
        }
        code: int | None = None
        # As WeChat does, the push is tried three times while our server does not answer 200.
        for attempt in range(EVENT_PUSH_TRIES):
            if attempt:
                await asyncio.sleep(EVENT_PUSH_RETRY_SECONDS)
            try:
                response = await http.post(
                    state.event_url,
                    params=params,
                    content=xml.encode(),
                    headers={"Content-Type": "text/xml"},
                )
                code = response.status_code
            except httpx.HTTPError:
                code = None
            if code == 200:
                break
        state.events.append(
            {"msgid": sent.msgid, "status": outcome, "response": code, "at": time.time()}
        )

    control = APIRouter(prefix="/sim", tags=["simulation control"])

    @control.get("/messages")
    async def sim_messages() -> list[dict[str, Any]]:
        return [s.__dict__ for s in state.sent]

    @control.post("/followers/{openid}")
    async def follow(openid: str) -> dict[str, str]:
        state.followers.add(openid)
        return {"openid": openid}

    @control.post("/expire-tokens")
    async def expire_tokens() -> dict[str, int]:
        for token in state.tokens:
            state.tokens[token] = 0
        return {"expired": len(state.tokens)}

    @control.put("/faults")
    async def set_faults(faults: Faults) -> Faults:
        state.faults = faults
        return faults

    @control.get("/events")
    async def sim_events() -> list[dict[str, Any]]:
        return state.events

    add_fault_control(control, state.random_faults, "/random-faults")
    install(app, state.random_faults)
    app.include_router(api)
    app.include_router(control)
    return app
