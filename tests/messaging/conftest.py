"""Messaging tests: the real API (over ASGITransport and on a loopback port, for the providers'
callbacks), real PostgreSQL, a real Temporal server, and the Twilio and WeChat simulators on
loopback ports, which our real clients (the Twilio SDK, httpx) talk to."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlmodel import col, select
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from api.container import Container
from api.main import create_app
from core.db import SessionFactory, transaction
from core.hospitals import HospitalConfig, QuietHours
from core.models import Hospital, MessageAttempt, OutboundMessage, Patient, StaffRole
from core.settings import Settings
from harness.postgres import free_port
from harness.servers import serve
from harness.settings import TEST_HIS_API_KEY, TEST_WEBHOOK_SECRET, make_settings
from harness.staff import add_staff
from harness.waiting import eventually
from harness.workers import running_worker
from integrations.his import HisClient
from services.messages import Composer
from simulators.his.app import HisState
from simulators.his.app import create_app as create_his
from simulators.twilio.app import TwilioState
from simulators.twilio.app import create_app as create_twilio
from simulators.wechat.app import WeChatState
from simulators.wechat.app import create_app as create_wechat
from tests.factories import add_patient

TWILIO_SID = "AC" + "1" * 32
TWILIO_TOKEN = "twilio-test-auth-token-0123456789ab"
WECHAT_APPID = "wx1234567890abcdef"
WECHAT_SECRET = "wechat-test-secret-0123456789abcd"
WECHAT_TOKEN = "wechatservertoken"
WECHAT_TEMPLATES = {
    "followup_invite": "TPL-FOLLOWUP",
    "notice_generic": "TPL-NOTICE",
    "critical_value": "TPL-CRITICAL",
}
NOTICE = {"title": "停诊通知", "content": "王医生11月26日上午停诊，已预约患者请改约。"}


@dataclass
class Stack:
    http: httpx.AsyncClient
    url: str
    settings: Settings
    sessions: SessionFactory
    env: WorkflowEnvironment
    twilio: TwilioState
    wechat: WeChatState
    token: str
    composer: Composer

    def workers(self, **kwargs: Any) -> AbstractAsyncContextManager[list[Worker]]:
        return running_worker(
            self.env.client,
            self.settings.temporal_task_queue,
            self.settings,
            self.sessions,
            **kwargs,
        )

    def auth(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.token}"}

    async def push(self, **body: Any) -> httpx.Response:
        body.setdefault("template", "notice_generic")
        body.setdefault("variables", NOTICE)
        return await self.http.post("/api/messages", json=body, headers=self.auth())

    async def patient(
        self,
        *,
        phone: str = "13800138001",
        openid: str | None = None,
        follower: bool = True,
        opt_outs: list[str] | None = None,
        preferred: str | None = None,
    ) -> Patient:
        patient, _ = await add_patient(self.sessions, phone=phone)
        async with transaction(self.sessions) as session:
            row = await session.get(Patient, patient.id)
            assert row is not None
            row.wechat_openid = openid
            row.message_opt_outs = opt_outs or []
            row.preferred_channel = preferred
        if openid and follower:
            self.wechat.followers.add(openid)
        return patient

    async def message(self, message_id: str) -> OutboundMessage:
        async with self.sessions() as session:
            row = await session.get(OutboundMessage, message_id)
            assert row is not None
            return row

    async def attempts(self, message_id: str) -> dict[str, MessageAttempt]:
        async with self.sessions() as session:
            rows = await session.exec(
                select(MessageAttempt)
                .where(MessageAttempt.message_id == message_id)
                .order_by(col(MessageAttempt.created_at))
            )
            return {row.channel: row for row in rows.all()}

    async def wait_status(
        self, message_id: str, *statuses: str, within: float = 30.0
    ) -> OutboundMessage:
        async def probe() -> OutboundMessage | None:
            row = await self.message(message_id)
            return row if row.status in statuses else None

        return await eventually(probe, within=within, what=f"message to become {statuses}")


StackFactory = Callable[..., AbstractAsyncContextManager[Stack]]


@pytest.fixture
def messaging_stack(database_url: str, sessions: SessionFactory, task_queue: str) -> StackFactory:
    @asynccontextmanager
    async def build(
        env: WorkflowEnvironment,
        channels: str = "wechat,sms,outbox",
        *,
        quiet_hours: bool = False,
        **overrides: Any,
    ) -> AsyncIterator[Stack]:
        # Tests run at any hour; only the quiet-hours tests keep the hospital's night rule.
        async with transaction(sessions) as session:
            session.add(
                Hospital(
                    code="default",
                    name="示例医院",
                    phone="12320",
                    config=HospitalConfig(quiet_hours=QuietHours(enabled=quiet_hours)).model_dump(
                        mode="json"
                    ),
                )
            )
        api_port = free_port()
        api_url = f"http://127.0.0.1:{api_port}"
        twilio = TwilioState(account_sid=TWILIO_SID, auth_token=TWILIO_TOKEN)
        wechat = WeChatState(
            appid=WECHAT_APPID,
            secret=WECHAT_SECRET,
            server_token=WECHAT_TOKEN,
            event_url=f"{api_url}/webhooks/wechat",
            template_ids=set(WECHAT_TEMPLATES.values()),
        )
        his_app = create_his(
            webhook_target=api_url,
            webhook_secret=TEST_WEBHOOK_SECRET,
            api_key=TEST_HIS_API_KEY,
            state=HisState.seeded(),
        )
        async with (
            serve(create_twilio(twilio)) as twilio_url,
            serve(create_wechat(wechat)) as wechat_url,
            serve(his_app) as his_url,
        ):
            settings = make_settings(
                database_url=database_url,
                his_base_url=his_url,
                temporal_task_queue=task_queue,
                temporal_query_timeout_seconds=1.0,
                public_base_url=api_url,
                message_channels=channels,
                twilio_account_sid=TWILIO_SID,
                twilio_auth_token=TWILIO_TOKEN,
                twilio_api_base_url=twilio_url,
                wechat_appid=WECHAT_APPID,
                wechat_secret=WECHAT_SECRET,
                wechat_token=WECHAT_TOKEN,
                wechat_api_base_url=wechat_url,
                wechat_template_ids=WECHAT_TEMPLATES,
                **overrides,
            )
            his = HisClient.create(his_url, TEST_HIS_API_KEY, timeout_seconds=2.0)
            container = Container.build(settings, sessions, env.client, his)
            app = create_app(container=container)
            token = await add_staff(sessions, StaffRole.INTEGRATION, None, name="随访平台接口")
            async with (
                serve(app, port=api_port),
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app), base_url="http://carepath.test"
                ) as http,
            ):
                composer = container.composer
                yield Stack(http, api_url, settings, sessions, env, twilio, wechat, token, composer)
            await his.close()

    return build
