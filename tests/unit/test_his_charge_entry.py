"""The HIS charge-entry interface (home nursing): the platform bills a service it sells as an
HIS order, once per key, and the order is then read like any other, ready to be paid."""

from __future__ import annotations

import httpx

from integrations.his import API_KEY_HEADER
from integrations.his_charging import HisChargeOrder, HisChargingClient
from simulators.his.app import create_app

KEY = "test-his-key-0123456789abcdef0123456789abcd"


async def test_a_service_charge_is_entered_once_and_is_payable() -> None:
    app = create_app(webhook_target="http://127.0.0.1:9", webhook_secret="s" * 40, api_key=KEY)
    http = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://his.test",
        headers={API_KEY_HEADER: KEY},
    )
    client = HisChargingClient(http)
    try:

        async def enter(key: str) -> HisChargeOrder:
            return await client.enter_charge(
                patient_id="P0001",
                title="上门护理：PICC导管维护",
                department_code="home_nursing",
                department_name="护理部",
                amount_fen=20000,
                key=key,
            )

        entered = await enter("nursing-order-1")
        again = await enter("nursing-order-1")
        other = await enter("nursing-order-2")
        read = await client.get_order(entered.order_no)
    finally:
        await http.aclose()
    assert again.order_no == entered.order_no  # a retry bills nothing twice
    assert other.order_no != entered.order_no
    assert read is not None
    assert (read.kind, read.total_fen, read.status, read.patient_id) == (
        "nursing",
        20000,
        "pending",
        "P0001",
    )
