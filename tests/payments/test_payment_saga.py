"""The payment saga end to end (PAY-1..PAY-4, PAY-6): the three scenarios, the insurance token
expiring mid-saga, lost and duplicated notifications, and every failure path compensated."""

from __future__ import annotations

import base64
import json
import secrets
import time
from datetime import timedelta
from typing import Any

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlmodel import select
from temporalio.testing import WorkflowEnvironment

from contracts.payment import (
    QUERY_PAYMENT,
    PaymentState,
    out_trade_no,
    payment_workflow_id,
)
from core.dev_keys import generate_pair
from core.models import InboundEvent, OutboundMessage
from harness.payments import FAST, INSURED, UNINSURED
from harness.settings import TEST_APIV3_KEY, TEST_PAYMENT_KEYS
from harness.waiting import eventually
from simulators.faults import FaultRule
from simulators.wechatpay.app import CallbackFaults
from tests.payments.conftest import WorldFactory


def notice_body(resource: dict[str, Any], apiv3_key: str) -> bytes:
    nonce = secrets.token_hex(6)
    ciphertext = AESGCM(apiv3_key.encode()).encrypt(
        nonce.encode(), json.dumps(resource).encode(), b"transaction"
    )
    return json.dumps(
        {
            "id": secrets.token_hex(8),
            "event_type": "TRANSACTION.SUCCESS",
            "resource_type": "encrypt-resource",
            "resource": {
                "algorithm": "AEAD_AES_256_GCM",
                "associated_data": "transaction",
                "nonce": nonce,
                "ciphertext": base64.b64encode(ciphertext).decode(),
            },
        }
    ).encode()


def notice_headers(body: bytes, private_pem: str, timestamp: int | None = None) -> dict[str, str]:
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    ts, nonce = str(timestamp or int(time.time())), secrets.token_hex(8)
    message = f"{ts}\n{nonce}\n".encode() + body + b"\n"
    signature = key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    return {
        "Content-Type": "application/json",
        "Wechatpay-Timestamp": ts,
        "Wechatpay-Nonce": nonce,
        "Wechatpay-Serial": "SIMPLATFORM0001",
        "Wechatpay-Signature": base64.b64encode(signature).decode(),
    }


async def test_self_pay_order_is_settled_when_the_provider_notifies(
    dev_env: WorkflowEnvironment, pay_world: WorldFactory, record_history: Any
) -> None:
    async with pay_world(dev_env.client) as world, world.workers():
        his_no = world.his_order(UNINSURED, self_pay_fen=2500)
        created = await world.create(his_no, patient=UNINSURED)
        assert created.status_code == 201, created.text
        order_id = created.json()["id"]
        await world.patient_pays(order_id)
        order = await world.wait(order_id, status="settled")

        assert order["scenario"] == "self_pay"
        assert (order["insurance_fen"], order["self_pay_fen"]) == (0, 2500)
        assert order["receipt_no"]
        assert order["transaction_id"]
        # The trail has each step once, even though the projection is refreshed when the
        # payment is seen without a change of step.
        assert [e["status"] for e in order["events"]] == [
            "presettling",
            "awaiting_payment",
            "confirming",
            "settled",
        ]
        assert world.charging.orders[his_no].status == "settled"
        assert world.provider.ledger()["paid_fen"] == 2500
        assert world.insurance.settlements == {}
        ledger = await world.ledger(order_id)
        assert [(e.party, e.kind, e.amount_fen) for e in ledger] == [("provider", "payment", 2500)]
        # Payment due (with the pay page link) and paid.
        wid = payment_workflow_id(order_id)

        async def two_messages() -> list[str] | None:
            sent = [m.variables["status_text"] for m in await world.messages(wid)]
            return sent if len(sent) == 2 else None

        texts = await eventually(two_messages, what="due and paid messages")
        handle = world.client.get_workflow_handle(wid)
        await handle.result()
        await record_history(handle, "payment_v1_self_pay")
        assert any("待缴费" in t for t in texts)
        assert any("已缴费" in t for t in texts)


async def test_pure_insurance_order_settles_without_the_provider(
    dev_env: WorkflowEnvironment, pay_world: WorldFactory
) -> None:
    async with pay_world(dev_env.client) as world, world.workers():
        # 100% covered by the catalogue, 70% by the fund: not pure. Make the ratio 100%.
        world.charging.insurance_ratio = 1.0
        his_no = world.his_order(INSURED, insurable_fen=8800)
        order_id = (await world.create(his_no)).json()["id"]
        order = await world.wait(order_id, status="settled")

    assert order["scenario"] == "insurance"
    assert (order["insurance_fen"], order["self_pay_fen"]) == (8800, 0)
    assert world.provider.trades == {}
    assert world.insurance.ledger()["net_fen"] == 8800


async def test_mixed_order_splits_between_insurance_and_self_pay(
    dev_env: WorkflowEnvironment, pay_world: WorldFactory
) -> None:
    async with pay_world(dev_env.client) as world, world.workers():
        his_no = world.his_order(INSURED, insurable_fen=6200, self_pay_fen=2500)
        order_id = (await world.create(his_no)).json()["id"]
        await world.patient_pays(order_id)
        order = await world.wait(order_id, status="settled")
        books = await world.books()

    assert order["scenario"] == "mixed"
    # 70% of the insurable 62.00 by the fund; the rest and the uncovered item out of pocket.
    assert (order["insurance_fen"], order["self_pay_fen"]) == (4340, 4360)
    assert books["provider_net_fen"] == books["self_pay_net_fen"] == 4360
    assert books["insurance_centre_net_fen"] == books["insurance_net_fen"] == 4340


async def test_an_expired_insurance_token_is_applied_for_again_not_a_failure(
    dev_env: WorkflowEnvironment, pay_world: WorldFactory
) -> None:
    async with pay_world(dev_env.client) as world, world.workers():
        world.charging.insurance_ratio = 1.0
        first = (await world.create(world.his_order(INSURED, insurable_fen=1000))).json()["id"]
        await world.wait(first, status="settled")
        assert world.insurance.tokens_issued == 1
        # The centre ends every token early (e.g. a key rotation) while we still cache ours.
        for token in world.insurance.tokens:
            world.insurance.tokens[token] = world.insurance.tokens[token].replace(year=2000)
        second = (await world.create(world.his_order(INSURED, insurable_fen=2000))).json()["id"]
        order = await world.wait(second, status="settled")

    assert order["insurance_fen"] == 2000
    assert world.insurance.expired_rejections == 1
    assert world.insurance.tokens_issued == 2
    assert world.insurance.ledger()["net_fen"] == 3000


async def test_unpaid_order_is_compensated_in_reverse_when_the_window_closes(
    dev_env: WorkflowEnvironment, pay_world: WorldFactory, record_history: Any
) -> None:
    policy = FAST.model_copy(update={"pay_window_seconds": 5})
    async with pay_world(dev_env.client, policy=policy) as world, world.workers():
        his_no = world.his_order(INSURED, insurable_fen=6200, self_pay_fen=2500)
        order_id = (await world.create(his_no)).json()["id"]
        order = await world.wait(order_id, status="failed", within=40)

        async def failure_message() -> list[OutboundMessage] | None:
            sent = await world.messages(payment_workflow_id(order_id))
            return [m for m in sent if m.idempotency_key.endswith("/failed")] or None

        failed = await eventually(failure_message, what="the failure message")
        handle = world.client.get_workflow_handle(payment_workflow_id(order_id))
        await handle.result()
        await record_history(handle, "payment_v1_compensated")
        books = await world.books()
        # The HIS order can be paid again, by a new payment order.
        again = await world.create(his_no, pay=False)

    assert order["saga_status"] == "failed"
    assert "超过支付时限" in order["failure_reason"]
    assert [c["step"] for c in order["compensations"]] == ["provider", "insurance", "his"]
    trade = world.provider.trades[out_trade_no(order_id)]
    assert trade.state == "CLOSED"
    assert trade.transaction_id is None
    settlement = next(iter(world.insurance.settlements.values()))
    assert settlement.status == "cancelled"
    assert world.charging.orders[his_no].status == "pending"
    assert books["provider_net_fen"] == books["insurance_centre_net_fen"] == 0
    assert failed[0].urgent
    assert "超过支付时限" in failed[0].body
    assert again.status_code == 201
    assert again.json()["id"] != order_id


async def test_a_lost_notification_is_made_up_for_by_polling(
    dev_env: WorkflowEnvironment, pay_world: WorldFactory
) -> None:
    async with pay_world(dev_env.client) as world, world.workers():
        world.provider.callbacks = CallbackFaults(drop_rate=1.0)
        order_id = (
            await world.create(world.his_order(UNINSURED, self_pay_fen=3000), patient=UNINSURED)
        ).json()["id"]
        await world.patient_pays(order_id)
        await world.wait(order_id, status="settled")
        state = await world.client.get_workflow_handle(payment_workflow_id(order_id)).query(
            QUERY_PAYMENT, result_type=PaymentState
        )

    assert state.notices_accepted == 0
    assert state.polls >= 1
    assert world.provider.notices[0].deliveries == [-1]


async def test_duplicate_and_late_notifications_never_advance_the_saga_twice(
    dev_env: WorkflowEnvironment, pay_world: WorldFactory
) -> None:
    async with pay_world(dev_env.client) as world, world.workers():
        world.provider.callbacks = CallbackFaults(duplicate_rate=1.0)
        order_id = (
            await world.create(world.his_order(UNINSURED, self_pay_fen=3000), patient=UNINSURED)
        ).json()["id"]
        await world.patient_pays(order_id)
        await world.wait(order_id, status="settled")
        # The provider delivers the same notification again long after (its own retry).
        async with httpx.AsyncClient(base_url=world.provider_url) as sim:
            again = await sim.post(f"/sim/orders/{out_trade_no(order_id)}/notify")
        assert again.json()["deliveries"][-1] == 204

        async def notices_seen() -> PaymentState | None:
            state = await world.client.get_workflow_handle(payment_workflow_id(order_id)).query(
                QUERY_PAYMENT, result_type=PaymentState
            )
            return state if state.notices_accepted + state.notices_ignored >= 1 else None

        state = await eventually(notices_seen, what="the notification")
        async with world.sessions() as session:
            seen = (
                await session.exec(select(InboundEvent).where(InboundEvent.source == "wechatpay"))
            ).all()

    assert state.notices_accepted <= 1
    assert len(seen) == 1  # one notification id, however many deliveries
    assert len(world.charging.settlements) == 1
    assert world.provider.ledger()["paid_fen"] == 3000


async def test_forged_tampered_and_replayed_notifications_are_refused(
    dev_env: WorkflowEnvironment, pay_world: WorldFactory
) -> None:
    async with pay_world(dev_env.client) as world, world.workers():
        world.provider.callbacks = CallbackFaults(drop_rate=1.0)
        policy_window = await world.create(
            world.his_order(UNINSURED, self_pay_fen=3000), patient=UNINSURED
        )
        order_id = policy_window.json()["id"]
        await world.wait(order_id, saga="awaiting_payment")
        trade = world.provider.trades[out_trade_no(order_id)]
        resource = {
            "out_trade_no": trade.out_trade_no,
            "trade_state": "SUCCESS",
            "transaction_id": "4200FORGED",
            "amount": {"total": 3000},
            "attach": order_id,
        }
        forger = generate_pair()  # not the platform's key
        forged = notice_body(resource, TEST_APIV3_KEY)
        responses = [
            await world.http.post(
                "/webhooks/wechatpay/notify",
                content=forged,
                headers=notice_headers(forged, forger.private_pem),
            ),
            await world.http.post(
                "/webhooks/wechatpay/notify",
                content=forged.replace(b"TRANSACTION", b"TRANSACTIOM"),
                headers=notice_headers(forged, TEST_PAYMENT_KEYS.platform.private_pem),
            ),
            await world.http.post(
                "/webhooks/wechatpay/notify",
                content=forged,
                headers=notice_headers(
                    forged,
                    TEST_PAYMENT_KEYS.platform.private_pem,
                    timestamp=int(time.time()) - 3600,
                ),
            ),
            await world.http.post("/webhooks/wechatpay/notify", content=forged),
        ]
        order = await world.order(order_id)

    assert [r.status_code for r in responses] == [401, 401, 401, 401]
    assert order["saga_status"] == "awaiting_payment"
    assert order["transaction_id"] is None


async def test_a_payment_seen_only_after_the_window_is_refunded_and_its_late_notice_ignored(
    dev_env: WorkflowEnvironment, pay_world: WorldFactory
) -> None:
    policy = FAST.model_copy(update={"pay_window_seconds": 5})
    async with pay_world(dev_env.client, policy=policy) as world, world.workers():
        # The patient pays in time, but neither the notification nor any query gets through
        # until the window has closed.
        world.provider.callbacks = CallbackFaults(drop_rate=1.0)
        world.provider.faults.plan.rules.append(
            FaultRule(
                path_prefix="/v3/pay/transactions/out-trade-no/",
                method="GET",
                status=503,
                count=10_000,
            )
        )
        his_no = world.his_order(INSURED, insurable_fen=6200, self_pay_fen=2500)
        order_id = (await world.create(his_no)).json()["id"]
        await world.patient_pays(order_id)
        await world.wait(order_id, saga="compensating", within=30)
        world.provider.faults.plan.rules.clear()
        order = await world.wait(order_id, status="failed", within=60)
        async with httpx.AsyncClient(base_url=world.provider_url) as sim:
            late = await sim.post(f"/sim/orders/{out_trade_no(order_id)}/notify")
        after = await world.order(order_id)
        books = await world.books()

    assert late.json()["deliveries"][-1] == 204  # received, so the provider stops retrying
    assert after["status"] == "failed"
    assert "已原路退回" in order["compensations"][0]["outcome"]
    assert world.provider.ledger()["net_fen"] == 0
    assert books["insurance_centre_net_fen"] == 0
    kinds = sorted((e.party, e.kind) for e in await world.ledger(order_id))
    assert kinds == [
        ("insurance", "cancel"),
        ("insurance", "settle"),
        ("provider", "payment"),
        ("provider", "refund"),
    ]


async def test_a_provider_that_stays_down_is_given_up_on_and_the_fund_is_made_whole(
    dev_env: WorkflowEnvironment, pay_world: WorldFactory
) -> None:
    policy = FAST.model_copy(update={"forward_give_up_seconds": 8})
    async with pay_world(dev_env.client, policy=policy) as world, world.workers():
        # Every attempt to open the provider order times out (the answer never comes).
        world.provider.faults.plan.rules.append(
            FaultRule(path_prefix="/v3/pay/transactions/h5", status=504, count=10_000)
        )
        his_no = world.his_order(INSURED, insurable_fen=6200, self_pay_fen=2500)
        order_id = (await world.create(his_no)).json()["id"]
        failed = await world.wait(order_id, status="failed", within=60)
        books = await world.books()

    assert "支付下单未能完成" in failed["failure_reason"]
    assert [c["step"] for c in failed["compensations"]] == ["provider", "insurance", "his"]
    assert world.provider.trades == {}
    assert next(iter(world.insurance.settlements.values())).status == "cancelled"
    assert world.charging.orders[his_no].status == "pending"
    assert books["insurance_centre_net_fen"] == books["provider_net_fen"] == 0


async def test_his_refusing_the_confirmation_undoes_the_money_already_taken(
    dev_env: WorkflowEnvironment, pay_world: WorldFactory
) -> None:
    # The HIS's refusals here are answers (409s), never delays: a generous timeout keeps a busy
    # machine's slow answer (a 503, rightly; one CI run) from standing in for them.
    async with pay_world(dev_env.client, client_timeout=15.0) as world, world.workers():
        world.charging.faults.plan.rules.append(
            FaultRule(
                path_prefix="/his/api/v1/charging/orders/", method="POST", status=409, count=1
            )
        )
        # The rule catches the first POST, the pre-settlement: refused before any money moved.
        his_no = world.his_order(INSURED, insurable_fen=6200, self_pay_fen=2500)
        refused_early = (await world.create(his_no)).json()["id"]
        early = await world.wait(refused_early, status="failed")
        assert early["compensations"] == []

        his_no = world.his_order(INSURED, insurable_fen=6200, self_pay_fen=2500)
        order_id = (await world.create(his_no)).json()["id"]
        await world.patient_pays(order_id)
        await world.wait(order_id, saga="confirming")
        order = await world.wait(order_id, status="settled")
        assert order["receipt_no"]

        # Now the HIS refuses the confirmation itself (its pre-settlement expired meanwhile).
        world.charging.presettle_ttl = timedelta(seconds=0)
        his_no = world.his_order(INSURED, insurable_fen=6200, self_pay_fen=2500)
        order_id = (await world.create(his_no)).json()["id"]
        await world.patient_pays(order_id)
        failed = await world.wait(order_id, status="failed")
        books = await world.books()

    assert "医院确认结算被拒绝" in failed["failure_reason"]
    assert [c["step"] for c in failed["compensations"]] == ["provider", "insurance", "his"]
    assert books["provider_net_fen"] == books["self_pay_net_fen"]
    assert books["insurance_centre_net_fen"] == books["insurance_net_fen"]
    assert books["settled_orders"] == books["his_settled_orders"] == 1


async def test_lost_answers_are_retried_under_the_same_keys_without_charging_twice(
    dev_env: WorkflowEnvironment, pay_world: WorldFactory
) -> None:
    async with pay_world(dev_env.client) as world, world.workers():
        # Every party handles our first call and then never answers it.
        world.charging.faults.plan.rules += [
            FaultRule(
                path_prefix="/his/api/v1/charging/orders/",
                method="POST",
                hang_after_commit=True,
                count=1,
            ),
        ]
        world.insurance.faults.plan.rules.append(
            FaultRule(path_prefix="/api/v1/settlements", method="POST", hang_after_commit=True)
        )
        world.provider.faults.plan.rules.append(
            FaultRule(path_prefix="/v3/pay/transactions/h5", hang_after_commit=True)
        )
        his_no = world.his_order(INSURED, insurable_fen=6200, self_pay_fen=2500)
        order_id = (await world.create(his_no)).json()["id"]
        await world.patient_pays(order_id)
        world.charging.faults.plan.rules.append(
            FaultRule(
                path_prefix=f"/his/api/v1/charging/orders/{his_no}/settlements",
                hang_after_commit=True,
            )
        )
        order = await world.wait(order_id, status="settled", within=90)

    assert world.charging.faults.injected["rule"] >= 2
    assert sum(1 for p in world.charging.presettlements.values() if p.order_no == his_no) == 1
    assert len(world.insurance.settlements) == 1
    assert len(world.provider.trades) == 1
    assert world.charging.settlements[his_no].receipt_no == order["receipt_no"]
