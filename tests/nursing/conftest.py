"""A home-nursing order's world: the payment world (HIS charging, insurance, WeChat Pay
simulators and the API on loopback), the identity service and the Twilio simulators, short
hospital windows, an item, two home-care nurses qualified for it and a head nurse."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlmodel import select
from temporalio.client import Client

from core.db import SessionFactory, transaction
from core.hospitals import NursingPolicy
from core.models import NursingItem, NursingOrder, StaffRole, StaffUser
from harness.payments import INSURED, PayWorld, payment_world
from harness.servers import serve
from harness.settings import TEST_IDENTITY_API_KEY
from harness.staff import add_staff
from harness.waiting import eventually
from services.staff import token_digest
from simulators.identity.app import IdentityState
from simulators.identity.app import create_app as create_identity
from simulators.twilio.app import TwilioState
from simulators.twilio.app import create_app as create_twilio

TWILIO_SID = "AC" + "2" * 32
TWILIO_TOKEN = "twilio-test-auth-token-nursing-0123456"
HEAD_PHONE = "+8613900139111"
FAST_NURSING = NursingPolicy(
    take_window_seconds=5,
    overrun_grace_seconds=2,
    signature_wait_seconds=600,
    rating_window_seconds=600,
)

# A complete nursing record on the home-nursing assessment template.
RECORD = {
    "temperature": ["36.8"],
    "systolic": ["128"],
    "diastolic": ["80"],
    "performed": ["picc"],
    "site": ["good"],
    "tolerance": ["good"],
    "educated": ["yes"],
}


@dataclass
class Nurse:
    id: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class NursingWorld:
    pay: PayWorld
    twilio: TwilioState
    admin: dict[str, str]
    nurses: dict[str, Nurse]

    @property
    def http(self) -> httpx.AsyncClient:
        return self.pay.http

    @property
    def app(self) -> dict[str, str]:
        """The hospital's WeChat app, acting for its patient."""
        return self.pay.auth()

    async def nurse(self, name: str, **roster: Any) -> Nurse:
        token = await add_staff(self.pay.sessions, StaffRole.NURSE, None, name=name)
        async with self.pay.sessions() as session:
            user = (
                await session.exec(
                    select(StaffUser).where(StaffUser.token_sha256 == token_digest(token))
                )
            ).one()
        saved = await self.http.put(
            f"/api/nursing/nurses/{user.id}", json=roster, headers=self.admin
        )
        assert saved.status_code == 200, saved.text
        self.nurses[name] = Nurse(user.id, token)
        return self.nurses[name]

    async def place(self, item: str = "picc", **body: Any) -> dict[str, Any]:
        placed = await self.http.post(
            "/api/nursing/orders",
            json={
                "patient_id": INSURED,
                "item_code": item,
                "visit_at": (datetime.now(UTC) + timedelta(hours=3)).isoformat(),
                "address": "静安区南京西路1号3室",
                "consent_accepted": True,
                "idempotency_key": uuid.uuid4().hex,
                **body,
            },
            headers=self.app,
        )
        assert placed.status_code == 201, placed.text
        order: dict[str, Any] = placed.json()
        self.pay.workflows.append(order["workflow_id"])
        return order

    async def row(self, order_id: str) -> NursingOrder:
        async with self.pay.sessions() as session:
            found = await session.get(NursingOrder, order_id)
        assert found is not None
        return found

    async def status(self, order_id: str, wanted: str, within: float = 60) -> NursingOrder:
        async def probe() -> NursingOrder | None:
            row = await self.row(order_id)
            return row if row.status == wanted else None

        return await eventually(probe, within=within, what=f"nursing order {wanted}")

    async def paid(self, order_id: str) -> NursingOrder:
        async def charged() -> NursingOrder | None:
            row = await self.row(order_id)
            return row if row.payment_order_id else None

        row = await eventually(charged, within=60, what="the visit billed")
        assert row.payment_order_id is not None
        await self.pay.patient_pays(row.payment_order_id)
        return await self.status(order_id, "waiting_nurse")

    def texts_to(self, phone: str) -> list[str]:
        return [m.body for m in self.twilio.messages.values() if m.to == phone]


WorldFactory = Callable[..., AbstractAsyncContextManager[NursingWorld]]


@pytest.fixture
def nursing_world(database_url: str, sessions: SessionFactory, task_queue: str) -> WorldFactory:
    @asynccontextmanager
    async def build(
        client: Client,
        *,
        item: dict[str, Any] | None = None,
        policy: NursingPolicy = FAST_NURSING,
    ) -> AsyncIterator[NursingWorld]:
        twilio = TwilioState(account_sid=TWILIO_SID, auth_token=TWILIO_TOKEN)
        async with (
            serve(
                create_identity(api_key=TEST_IDENTITY_API_KEY, state=IdentityState.seeded())
            ) as identity_url,
            serve(create_twilio(twilio)) as twilio_url,
            payment_world(
                client,
                sessions,
                database_url,
                task_queue,
                nursing=policy,
                library=True,
                identity_base_url=identity_url,
                message_channels="sms",
                twilio_account_sid=TWILIO_SID,
                twilio_auth_token=TWILIO_TOKEN,
                twilio_api_base_url=twilio_url,
            ) as pay,
        ):  # fmt: skip
            admin = {"Authorization": f"Bearer {await add_staff(sessions, StaffRole.ADMIN, None)}"}
            async with transaction(sessions) as session:
                session.add(
                    NursingItem(
                        code="picc",
                        name="PICC导管维护",
                        price_fen=20000,
                        visit_fee_fen=5000,
                        expected_minutes=60,
                        qualification="picc",
                        assessment_form="home-nursing-assessment",
                        updated_by="test",
                        **(item or {}),
                    )
                )
            yield NursingWorld(pay, twilio, admin, {})

    return build
