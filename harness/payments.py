"""The payment world the payment tests and ``bench/payment_faults.py`` drive: the real API (ASGI
for our calls, and a loopback port for the provider's notifications), real PostgreSQL, a real
Temporal server, and three simulators over loopback HTTP: the HIS (with its charging interface,
which calls the insurance centre for refunds), the insurance centre and the WeChat Pay v3
provider, all with fault injection."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlmodel import col, select
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.worker import Worker

from api.container import Container
from api.main import create_app
from contracts.payment import out_trade_no, payment_workflow_id, refund_workflow_id
from core.db import SessionFactory, transaction
from core.hospitals import HospitalConfig, NursingPolicy, PaymentConfig, PaymentPolicy, QuietHours
from core.models import (
    Hospital,
    LedgerEntryRow,
    OutboundMessage,
    PaymentOrder,
    PaymentRefund,
    StaffRole,
)
from core.settings import Settings
from harness.postgres import free_port
from harness.servers import serve
from harness.settings import (
    TEST_APIV3_KEY,
    TEST_HIS_API_KEY,
    TEST_INSURANCE_SECRET,
    TEST_PAYMENT_KEYS,
    TEST_WEBHOOK_SECRET,
    make_settings,
)
from harness.staff import add_staff
from harness.waiting import eventually
from harness.workers import running_worker
from integrations.his import HisClient
from integrations.wechatpay import load_private_key, load_public_key
from simulators.his.app import HisState
from simulators.his.app import create_app as create_his
from simulators.his.charging import ChargeItem, ChargingState, InsuranceAccount, NewOrder
from simulators.insurance.app import InsuranceState
from simulators.insurance.app import create_app as create_insurance
from simulators.wechatpay.app import WeChatPayState
from simulators.wechatpay.app import create_app as create_wechatpay

HOSPITAL = "H-PAY01"
INSURED = "P0001"  # insured (参保) in the seeded HIS
UNINSURED = "P0003"
HIS_APP_ID, HIS_APP_SECRET = "his", "his-app-secret-for-tests-0123456789"

# Fast timings so that a pay window or a lost answer costs seconds, not minutes.
FAST = PaymentPolicy(
    pay_window_seconds=20,
    poll_interval_seconds=1,
    call_timeout_seconds=4,
    confirm_give_up_seconds=30,
    forward_give_up_seconds=60,
)


def items(self_pay_fen: int = 0, insurable_fen: int = 0) -> list[ChargeItem]:
    """Order lines: with the 70% insurance ratio, ``insurable_fen`` splits 70/30."""
    lines = []
    if insurable_fen:
        lines.append(
            ChargeItem(name="阿托伐他汀钙片", amount_fen=insurable_fen, insurable_fen=insurable_fen)
        )
    if self_pay_fen:
        lines.append(ChargeItem(name="心电图检查", amount_fen=self_pay_fen))
    return lines


@dataclass
class PayWorld:
    http: httpx.AsyncClient
    api_url: str
    settings: Settings
    sessions: SessionFactory
    client: Client
    his: HisState
    charging: ChargingState
    insurance: InsuranceState
    provider: WeChatPayState
    provider_url: str
    token: str
    doctor: str
    workflows: list[str] = field(default_factory=list)

    def workers(self, **kwargs: Any) -> AbstractAsyncContextManager[list[Worker]]:
        return running_worker(
            self.client,
            self.settings.temporal_task_queue,
            self.settings,
            self.sessions,
            **kwargs,
        )

    def auth(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.token}"}

    def his_order(
        self, patient: str = INSURED, *, kind: str = "prescription", **amounts: int
    ) -> str:
        lines = items(**amounts)
        order = self.charging.add(
            NewOrder(patient_id=patient, kind=kind, title="心内科门诊缴费", items=lines)
        )
        return order.order_no

    async def create(
        self,
        his_order_no: str,
        *,
        patient: str = INSURED,
        amount_fen: int | None = None,
        use_insurance: bool = True,
        pay: bool = True,
    ) -> httpx.Response:
        known = self.charging.orders.get(his_order_no)
        total = known.total_fen if known else 100
        response = await self.http.post(
            "/api/payments/orders",
            json={
                "his_order_no": his_order_no,
                "patient_id": patient,
                "amount_fen": total if amount_fen is None else amount_fen,
                "use_insurance": use_insurance,
                "pay": pay,
            },
            headers=self.auth(),
        )
        if response.status_code in (200, 201) and pay:
            order_id = response.json()["id"]
            self.workflows.append(payment_workflow_id(order_id))
        return response

    async def order(self, order_id: str, *, outage_seconds: float = 0) -> dict[str, Any]:
        """The order as the API shows it; through an outage (the API answering 5xx) asked
        again for up to ``outage_seconds``, as the hospital's app would."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + outage_seconds
        while True:
            try:
                response = await self.http.get(
                    f"/api/payments/orders/{order_id}", headers=self.auth()
                )
            except httpx.TransportError:
                if loop.time() > give_up:
                    raise
                await asyncio.sleep(0.5)
                continue
            if response.status_code < 500 or loop.time() > give_up:
                break
            await asyncio.sleep(0.5)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    async def wait(
        self,
        order_id: str,
        *,
        status: str | None = None,
        saga: str | None = None,
        within: float = 60,
    ) -> dict[str, Any]:
        async def probe() -> dict[str, Any] | None:
            order = await self.order(order_id)
            if status is not None and order["status"] != status:
                return None
            if saga is not None and order["saga_status"] != saga:
                return None
            return order

        return await eventually(probe, within=within, what=f"order {status or saga}")

    async def patient_pays(self, order_id: str) -> dict[str, Any]:
        """The patient confirms on the provider's payment page once it exists."""
        await self.wait(order_id, saga="awaiting_payment")
        async with httpx.AsyncClient(base_url=self.provider_url) as sim:
            response = await sim.post(f"/sim/orders/{out_trade_no(order_id)}/pay")
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    async def refund(
        self,
        order_id: str,
        amount_fen: int,
        *,
        key: str | None = None,
        reason: str = "患者申请退费",
    ) -> httpx.Response:
        # Each call is a new refund unless the caller repeats a key on purpose.
        headers = self.auth() | {"Idempotency-Key": key or f"refund-{uuid.uuid4().hex}"}
        response = await self.http.post(
            f"/api/payments/orders/{order_id}/refunds",
            json={"amount_fen": amount_fen, "reason": reason},
            headers=headers,
        )
        if response.status_code == 202:
            self.workflows.append(refund_workflow_id(response.json()["id"]))
        return response

    async def wait_refund(self, refund_id: str, status: str, within: float = 60) -> PaymentRefund:
        async def probe() -> PaymentRefund | None:
            async with self.sessions() as session:
                row = await session.get(PaymentRefund, refund_id)
                return row if row is not None and row.status == status else None

        return await eventually(probe, within=within, what=f"refund {status}")

    async def ledger(self, order_id: str) -> list[LedgerEntryRow]:
        async with self.sessions() as session:
            found = await session.exec(
                select(LedgerEntryRow).where(LedgerEntryRow.order_id == order_id)
            )
            return list(found.all())

    async def messages(self, workflow_id: str) -> list[OutboundMessage]:
        """The payment messages a saga sent (keys are "<workflow id>/notify/<kind>")."""
        async with self.sessions() as session:
            found = await session.exec(
                select(OutboundMessage)
                .where(col(OutboundMessage.idempotency_key).startswith(f"{workflow_id}/"))
                .order_by(col(OutboundMessage.created_at))
            )
            return list(found.all())

    async def books(self) -> dict[str, int]:
        """What our orders say moved, next to what the provider and the insurance centre hold."""
        async with self.sessions() as session:
            rows = list((await session.exec(select(PaymentOrder))).all())
            refunds = list((await session.exec(select(PaymentRefund))).all())
        settled = [o for o in rows if o.status in ("settled", "partially_refunded", "refunded")]
        done = [r for r in refunds if r.status == "succeeded"]
        provider = self.provider.ledger()
        insurance = self.insurance.ledger()
        return {
            "settled_orders": len(settled),
            "failed_orders": sum(1 for o in rows if o.status == "failed"),
            "orders_net_fen": sum(o.amount_fen for o in settled) - sum(r.amount_fen for r in done),
            "self_pay_net_fen": sum(o.self_pay_fen or 0 for o in settled)
            - sum(r.self_pay_fen or 0 for r in done),
            "insurance_net_fen": sum(o.insurance_fen or 0 for o in settled)
            - sum(r.insurance_fen or 0 for r in done),
            "provider_net_fen": provider["net_fen"],
            "insurance_centre_net_fen": insurance["net_fen"],
            "his_settled_orders": self.charging.ledger()["settled_orders"],
        }

    async def terminate_started(self) -> None:
        """Leaves nothing running on the shared Temporal server."""
        for workflow_id in self.workflows:
            with contextlib.suppress(RPCError):
                await self.client.get_workflow_handle(workflow_id).terminate("test finished")


def hospital_config(
    policy: PaymentPolicy, accept_seconds: int = 1800, nursing: NursingPolicy | None = None
) -> dict[str, Any]:
    config = HospitalConfig(
        quiet_hours=QuietHours(enabled=False),
        payments=PaymentConfig(policy=policy, consultation_accept_seconds=accept_seconds),
        nursing=nursing or NursingPolicy(),
    )
    return config.model_dump(mode="json")


@asynccontextmanager
async def payment_world(
    client: Client,
    sessions: SessionFactory,
    database_url: str,
    task_queue: str,
    *,
    policy: PaymentPolicy = FAST,
    accept_seconds: int = 1800,
    nursing: NursingPolicy | None = None,
    client_timeout: float = 2.0,
    over_loopback: bool = False,
    library: bool = False,
    **overrides: Any,
) -> AsyncIterator[PayWorld]:
    """``over_loopback``: our calls go to the API's loopback port instead of straight into the
    ASGI app, so that an outage behind the API reaches the caller as a 5xx, not an exception.
    ``library``: the shipped pathway library is published, as the API does at start-up, so
    that HIS events enrol patients."""
    async with transaction(sessions) as session:
        session.add(
            Hospital(
                code=HOSPITAL,
                name="静安区中心医院",
                phone="021-12345678",
                config=hospital_config(policy, accept_seconds, nursing),
            )
        )
    api_port = free_port()
    api_url = f"http://127.0.0.1:{api_port}"
    provider_port = free_port()
    provider_url = f"http://127.0.0.1:{provider_port}"
    insurance = InsuranceState(apps={"carepath": TEST_INSURANCE_SECRET, HIS_APP_ID: HIS_APP_SECRET})
    provider = WeChatPayState(
        mchid="1900000001",
        appid="wx0000000000000000",
        apiv3_key=TEST_APIV3_KEY.encode(),
        merchant_public_key=load_public_key(TEST_PAYMENT_KEYS.merchant.public_pem),
        platform_private_key=load_private_key(TEST_PAYMENT_KEYS.platform.private_pem),
        platform_serial="SIMPLATFORM0001",
        public_url=provider_url,
    )
    # A lost answer is held longer than our client waits for it.
    for injector in (insurance.faults, provider.faults):
        injector.plan.hang_seconds = client_timeout + 3
    async with serve(create_insurance(insurance)) as insurance_url:
        charging = ChargingState.seeded()
        charging.faults.plan.hang_seconds = client_timeout + 3
        his_state = HisState.seeded()
        his_app = create_his(
            webhook_target=api_url,
            webhook_secret=TEST_WEBHOOK_SECRET,
            api_key=TEST_HIS_API_KEY,
            state=his_state,
            charging=charging,
            insurance=InsuranceAccount(insurance_url, HIS_APP_ID, HIS_APP_SECRET),
        )
        async with (
            serve(his_app) as his_url,
            serve(create_wechatpay(provider), port=provider_port),
        ):
            settings = make_settings(
                database_url=database_url,
                temporal_task_queue=task_queue,
                temporal_query_timeout_seconds=2.0,
                his_base_url=his_url,
                his_timeout_seconds=client_timeout,
                insurance_base_url=insurance_url,
                insurance_timeout_seconds=client_timeout,
                wechatpay_api_base_url=provider_url,
                wechatpay_timeout_seconds=client_timeout,
                public_base_url=api_url,
                default_hospital_code=HOSPITAL,
                **overrides,
            )
            his = HisClient.create(his_url, TEST_HIS_API_KEY, timeout_seconds=client_timeout)
            container = Container.build(settings, sessions, client, his)
            if library:
                await container.sync_library()
            app = create_app(container=container)
            token = await add_staff(sessions, StaffRole.INTEGRATION, None, name="掌上医院")
            doctor = await add_staff(sessions, StaffRole.DOCTOR, "cardiology", name="王医生")
            async with (
                serve(app, port=api_port),
                (
                    httpx.AsyncClient(base_url=api_url, timeout=60)
                    if over_loopback
                    else httpx.AsyncClient(
                        transport=httpx.ASGITransport(app=app), base_url="http://carepath.test"
                    )
                ) as http,
            ):
                world = PayWorld(
                    http,
                    api_url,
                    settings,
                    sessions,
                    client,
                    his_state,
                    charging,
                    insurance,
                    provider,
                    provider_url,
                    token,
                    doctor,
                )
                try:
                    yield world
                finally:
                    await world.terminate_started()
                    # Held answers would keep the simulators from shutting down.
                    for injector in (charging.faults, insurance.faults, provider.faults):
                        injector.release()
            await container.close()
