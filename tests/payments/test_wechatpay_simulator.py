"""The WeChat Pay simulator driven by an independent, widely used client library (wechatpayv3,
public-key mode), not by our own client: what it accepts and answers, headers, optional fields,
error bodies and statuses, is what WeChat Pay documents, so our client and the simulator cannot
drift apart together."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from wechatpayv3 import WeChatPay, WeChatPayType
from wechatpayv3.type import RequestType

from harness.postgres import free_port
from harness.servers import serve
from harness.settings import TEST_APIV3_KEY, TEST_PAYMENT_KEYS
from integrations.wechatpay import load_private_key, load_public_key
from simulators.wechatpay.app import WeChatPayState, create_app

MCHID = "1900000001"
APPID = "wx0000000000000000"
PLATFORM_KEY_ID = "PUB_KEY_ID_0114232134912024110600112233440001"


@dataclass
class Provider:
    client: WeChatPay
    state: WeChatPayState
    url: str

    async def call(self, method: str, *args: Any, **kwargs: Any) -> tuple[int, Any]:
        # The library is synchronous (requests): off the event loop the simulator runs on.
        code, body = await asyncio.to_thread(getattr(self.client, method), *args, **kwargs)
        return code, json.loads(body) if body else None


@pytest.fixture
async def provider() -> AsyncIterator[Provider]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    state = WeChatPayState(
        mchid=MCHID,
        appid=APPID,
        apiv3_key=TEST_APIV3_KEY.encode(),
        merchant_public_key=load_public_key(TEST_PAYMENT_KEYS.merchant.public_pem),
        platform_private_key=load_private_key(TEST_PAYMENT_KEYS.platform.private_pem),
        platform_serial=PLATFORM_KEY_ID,
        public_url=url,
    )
    client = WeChatPay(
        wechatpay_type=WeChatPayType.H5,
        mchid=MCHID,
        private_key=TEST_PAYMENT_KEYS.merchant.private_pem,
        cert_serial_no="MERCHANTSERIAL0001",
        appid=APPID,
        apiv3_key=TEST_APIV3_KEY,
        notify_url=f"{url}/nowhere",
        public_key=TEST_PAYMENT_KEYS.platform.public_pem,
        public_key_id=PLATFORM_KEY_ID,
        timeout=(5, 10),
    )
    # The library has no setting for the gateway; point it at the simulator.
    client._core._gate_way = url
    async with serve(create_app(state), port=port):
        yield Provider(client, state, url)


async def test_an_independent_client_creates_queries_pays_refunds_and_closes(
    provider: Provider,
) -> None:
    # No time_expire: optional in the real API.
    created = await provider.call(
        "pay",
        description="门诊缴费-检查费",
        out_trade_no="CP20261202000001",
        amount={"total": 8700, "currency": "CNY"},
        scene_info={"payer_client_ip": "127.0.0.1", "h5_info": {"type": "Wap"}},
    )
    assert created[0] == 200, created
    assert created[1]["h5_url"].startswith(provider.url)
    queried = await provider.call("query", out_trade_no="CP20261202000001")
    assert (queried[0], queried[1]["trade_state"]) == (200, "NOTPAY")

    async with httpx.AsyncClient(base_url=provider.url) as sim:
        paid = await sim.post("/sim/orders/CP20261202000001/pay")
        assert paid.status_code == 200, paid.text
    settled = await provider.call("query", out_trade_no="CP20261202000001")
    assert settled[1]["trade_state"] == "SUCCESS"
    assert settled[1]["amount"]["total"] == 8700

    refunded = await provider.call(
        "refund",
        out_refund_no="RF20261202000001",
        amount={"refund": 2500, "total": 8700, "currency": "CNY"},
        out_trade_no="CP20261202000001",
        reason="检查取消",
    )
    assert refunded[0] == 200, refunded
    assert refunded[1]["status"] in ("SUCCESS", "PROCESSING")
    followed = await provider.call("query_refund", out_refund_no="RF20261202000001")
    assert (followed[0], followed[1]["amount"]["refund"]) == (200, 2500)

    second = await provider.call(
        "pay",
        description="门诊缴费-挂号费",
        out_trade_no="CP20261202000002",
        amount={"total": 1500, "currency": "CNY"},
        scene_info={"payer_client_ip": "127.0.0.1", "h5_info": {"type": "Wap"}},
    )
    assert second[0] == 200
    closed = await provider.call("close", out_trade_no="CP20261202000002")
    assert closed[0] == 204
    after = await provider.call("query", out_trade_no="CP20261202000002")
    assert after[1]["trade_state"] == "CLOSED"


async def test_refusals_come_back_as_wechat_pay_shapes_them(provider: Provider) -> None:
    # A refund larger than the order, an unknown order, and a body missing a required field:
    # 4xx with a top-level {"code", "message"}, as WeChat Pay answers.
    await provider.call(
        "pay",
        description="门诊缴费",
        out_trade_no="CP20261202000003",
        amount={"total": 100, "currency": "CNY"},
        scene_info={"payer_client_ip": "127.0.0.1", "h5_info": {"type": "Wap"}},
    )
    unknown = await provider.call("query", out_trade_no="CP20261202999999")
    too_much = await provider.call(
        "refund",
        out_refund_no="RF20261202000003",
        amount={"refund": 500, "total": 100, "currency": "CNY"},
        out_trade_no="CP20261202000003",
    )
    # The library insists on a description; the raw call shows a missing field's answer.
    missing = await asyncio.to_thread(
        provider.client._core.request,
        "/v3/pay/transactions/h5",
        RequestType.POST,
        {"appid": APPID, "mchid": MCHID, "out_trade_no": "CP20261202000004"},
    )

    assert unknown[0] == 404
    assert unknown[1]["code"] == "ORDER_NOT_EXIST"
    assert too_much[0] == 400
    assert set(too_much[1]) == {"code", "message"}
    assert missing[0] == 400
    assert json.loads(missing[1])["code"] == "PARAM_ERROR"
