"""The WeChat official-account simulator driven by an independent client library (wechatpy),
not by our own client: tokens, template messages, the errors a real account answers with, and
the signed send-job event it pushes, so that our client and the simulator cannot drift apart
together."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from wechatpy import WeChatClient, parse_message
from wechatpy.exceptions import WeChatClientException
from wechatpy.utils import check_signature

from harness.servers import serve
from harness.waiting import eventually
from simulators.wechat.app import WeChatState, create_app

APPID = "wx1234567890abcdef"
SECRET = "wechat-test-secret-0123456789abcd"
SERVER_TOKEN = "wechatservertoken"
FOLLOWER = "oFollower0001"


class SimulatedAccountClient(WeChatClient):  # type: ignore[misc]
    """wechatpy's client, with the token URL the library hard-codes moved to the simulator;
    everything else (token cache, retry on an expired token, the calls) is the library's."""

    def fetch_access_token(self) -> dict[str, Any]:
        token: dict[str, Any] = self._fetch_access_token(
            url=f"{self.API_BASE_URL}token",
            params={"grant_type": "client_credential", "appid": self.appid, "secret": self.secret},
        )
        return token


@dataclass
class Account:
    client: SimulatedAccountClient
    state: WeChatState
    url: str
    events: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    async def send(self, touser: str, **kwargs: Any) -> dict[str, Any]:
        # wechatpy is synchronous (requests): off the event loop the simulator runs on.
        result: dict[str, Any] = await asyncio.to_thread(
            self.client.message.send_template,
            touser,
            "TPL-NOTICE",
            {"first": {"value": "停诊通知"}, "keyword1": {"value": "王医生11月26日上午停诊"}},
            **kwargs,
        )
        return result


@pytest.fixture
async def account() -> AsyncIterator[Account]:
    received: list[tuple[dict[str, str], bytes]] = []
    ours = FastAPI()

    @ours.post("/webhooks/wechat")
    async def event(request: Request) -> Response:
        received.append((dict(request.query_params), await request.body()))
        return Response("success")

    async with serve(ours) as our_url:
        state = WeChatState(
            appid=APPID,
            secret=SECRET,
            server_token=SERVER_TOKEN,
            event_url=f"{our_url}/webhooks/wechat",
            followers={FOLLOWER},
            template_ids={"TPL-NOTICE"},
        )
        async with serve(create_app(state)) as url:
            client = SimulatedAccountClient(APPID, SECRET)
            client.API_BASE_URL = f"{url}/cgi-bin/"
            yield Account(client, state, url, received)


async def test_an_independent_client_sends_a_template_message_and_gets_the_event(
    account: Account,
) -> None:
    sent = await account.send(FOLLOWER, url="http://patient.test/p/abc")
    # The token WeChat invalidates: wechatpy fetches a new one and retries, as it does live.
    async with httpx.AsyncClient(base_url=account.url) as sim:
        await sim.post("/sim/expire-tokens")
    again = await account.send(FOLLOWER)
    [(query, body), _] = await eventually(lambda: _two(account.events), what="the send-job events")
    event = parse_message(body)

    assert (sent["errcode"], again["errcode"]) == (0, 0)
    assert sent["msgid"] != again["msgid"]
    assert account.state.token_requests == 2
    assert [s.url for s in account.state.sent] == ["http://patient.test/p/abc", None]
    check_signature(SERVER_TOKEN, query["signature"], query["timestamp"], query["nonce"])
    assert event.event == "templatesendjobfinish"
    assert event.status == "success"
    assert int(event.id) == sent["msgid"]


async def test_refusals_come_back_as_a_real_account_answers_them(account: Account) -> None:
    with pytest.raises(WeChatClientException) as not_following:
        await account.send("oStranger0001")
    impostor = SimulatedAccountClient(APPID, "wrong-secret")
    impostor.API_BASE_URL = account.client.API_BASE_URL
    with pytest.raises(WeChatClientException) as bad_secret:
        await asyncio.to_thread(impostor.fetch_access_token)

    assert not_following.value.errcode == 43004
    assert bad_secret.value.errcode == 40125


async def _two(events: list[tuple[dict[str, str], bytes]]) -> list[Any] | None:
    return list(events) if len(events) >= 2 else None
