"""The WeChat client's calls in flight: those past the limit wait their turn, but no longer than
httpx waits for a free connection, so a try its activity has given up on never sends later."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from integrations import wechat
from integrations.wechat import WeChatApi


async def test_a_call_that_cannot_get_a_turn_in_time_fails_and_never_sends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(wechat, "_CONNECTIONS", 2)
    hung, both_in = asyncio.Event(), asyncio.Event()
    sent: list[bytes] = []

    async def provider(request: httpx.Request) -> httpx.Response:
        sent.append(request.content)
        if len(sent) == 2:
            both_in.set()
        await hung.wait()  # the provider holds its answers back
        return httpx.Response(200, json={"errcode": 0, "msgid": len(sent)})

    http = httpx.AsyncClient(
        transport=httpx.MockTransport(provider), timeout=httpx.Timeout(5.0, pool=0.2)
    )
    api = WeChatApi(http, base_url="http://wechat.test", appid="wx", secret="s")
    holding = [
        asyncio.create_task(api._call("POST", "/cgi-bin/message/template/send", json={"n": n}))
        for n in range(2)
    ]
    await both_in.wait()  # both at the provider, holding the two turns
    # Unbounded, the third would wait here for as long as WeChat holds the two back.
    with pytest.raises(httpx.PoolTimeout):
        async with asyncio.timeout(5):
            await api._call("POST", "/cgi-bin/message/template/send", json={"n": 2})
    hung.set()
    await asyncio.gather(*holding)
    await http.aclose()

    assert len(sent) == 2  # the third never reached WeChat, before or after its turn came
