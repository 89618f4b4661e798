"""The platform stopped and started again mid-plan, with its data kept, as `make stop` and
`make run` do: every process (API, worker, HIS, WeChat and Twilio simulators) goes down after
the day-7 invitation and comes back before day 30. Each invitation reaches the patient exactly
once, counted at the simulators, whatever ids a restarted provider hands out."""

from __future__ import annotations

import functools
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from core.db import SessionFactory
from core.models import StaffRole
from harness.his_events import discharge_through_his
from harness.postgres import free_port
from harness.processes import Process, settings_env, start_process
from harness.settings import make_settings
from harness.staff import add_staff
from harness.waiting import answers_ok, eventually

pytestmark = pytest.mark.e2e

# One plan day lasts 1.5 seconds: day 3 at about 4.5 s, day 7 at 10.5 s, day 30 at 45 s.
SPEEDUP = 86400 / 1.5
TWILIO_SID = "AC" + "2" * 32
TEMPLATES = {"followup_invite": "TPL-FOLLOWUP", "notice_generic": "TPL-NOTICE"}
OPENID = "oDemo0003"  # a follower the WeChat simulator starts with


@dataclass
class Platform:
    urls: dict[str, str]
    env: dict[str, str]
    logs: Path
    processes: dict[str, Process] = field(default_factory=dict)
    generation: int = 0

    def start(self) -> None:
        self.generation += 1
        api_port = self.urls["api"].rsplit(":", 1)[1]
        commands = {
            "his-sim": ["-m", "simulators.his"],
            "wechat-sim": ["-m", "simulators.wechat"],
            "twilio-sim": ["-m", "simulators.twilio"],
            "worker": ["-m", "workers.main"],
            "api": ["-m", "uvicorn", "api.main:app", "--host", "127.0.0.1", "--port", api_port],
        }
        for name, args in commands.items():
            self.processes[name] = start_process(
                f"{name}-{self.generation}", args, self.env, self.logs
            )

    def stop(self) -> None:
        for process in self.processes.values():
            process.stop()

    def diagnostics(self) -> str:
        return "\n".join(p.tail() for p in self.processes.values())


@pytest.fixture
def platform(database_url: str, dev_env: WorkflowEnvironment, tmp_path: Path) -> Iterator[Platform]:
    ports = {name: free_port() for name in ("api", "his", "wechat", "twilio")}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    settings = make_settings(
        log_json=True,
        database_url=database_url,
        temporal_address=dev_env.client.service_client.config.target_host,
        temporal_task_queue=f"restart-{uuid.uuid4()}",
        api_host="127.0.0.1",
        api_port=ports["api"],
        public_base_url=urls["api"],
        his_base_url=urls["his"],
        message_channels="wechat,sms,outbox",
        twilio_account_sid=TWILIO_SID,
        twilio_auth_token="twilio-restart-auth-token-0123456789",
        twilio_api_base_url=urls["twilio"],
        wechat_api_base_url=urls["wechat"],
        wechat_secret="wechat-restart-secret-0123456789abcd",
        wechat_token="wechatrestarttoken",
        wechat_template_ids=TEMPLATES,
    )
    platform = Platform(urls=urls, env=settings_env(settings), logs=tmp_path)
    platform.start()
    try:
        yield platform
    finally:
        platform.stop()


async def _wait_ready(http: httpx.AsyncClient, platform: Platform) -> None:
    urls = platform.urls
    for url in (
        f"{urls['api']}/readyz",
        f"{urls['his']}/sim/patients",
        f"{urls['wechat']}/sim/messages",
        f"{urls['twilio']}/sim/messages",
    ):
        await eventually(functools.partial(answers_ok, http, url), within=60, what=url)


async def test_each_invitation_is_delivered_once_across_a_restart_of_every_process(
    platform: Platform, sessions: SessionFactory
) -> None:
    token = await add_staff(sessions, StaffRole.NURSE, "orthopedics", name="骨科护士")
    staff = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(timeout=30) as http:
        try:
            await _scenario(platform, http, staff)
        except BaseException:
            print(platform.diagnostics())  # noqa: T201 - shown by pytest on failure only
            raise


async def _scenario(platform: Platform, http: httpx.AsyncClient, staff: dict[str, str]) -> None:
    urls = platform.urls
    await _wait_ready(http, platform)
    # Orthopaedics: only the discharge follow-up plan starts, so its three invitations are
    # all the platform sends.
    ward = {"department_code": "orthopedics", "department_name": "骨科", "ward": "骨科二病区"}
    workflow_id = await discharge_through_his(http, urls["his"], "P0003", SPEEDUP, **ward)

    async def run() -> dict[str, Any] | None:
        got = await http.get(f"{urls['api']}/api/runs/{workflow_id}", headers=staff)
        return got.json() if got.status_code == 200 else None

    patient_id = (await eventually(run, what="the run in the database"))["patient"]["id"]
    bound = await http.put(
        f"{urls['api']}/api/patients/{patient_id}/messaging",
        json={"wechat_openid": OPENID, "preferred_channel": "wechat"},
        headers=staff,
    )
    assert bound.status_code == 200, bound.text

    async def sent(*titles: str) -> dict[str, dict[str, Any]] | None:
        got = await http.get(
            f"{urls['api']}/api/messages", params={"workflow_id": workflow_id}, headers=staff
        )
        finished = {
            title: m
            for m in got.json()["items"]
            for title in titles
            if title in m["body"] and m["status"] in ("sent", "delivered", "failed")
        }
        return finished if len(finished) == len(titles) else None

    async def received() -> list[dict[str, Any]]:
        wechat = (await http.get(f"{urls['wechat']}/sim/messages")).json()
        sms = (await http.get(f"{urls['twilio']}/sim/messages")).json()
        return [*wechat, *sms]

    before = await eventually(
        lambda: sent("出院第3天随访", "出院第7天随访"), within=60, what="day 3 and day 7 sent"
    )
    at_providers = await received()
    # Everything down, as `make stop` leaves it, then up again on the same data.
    platform.stop()
    platform.start()
    await _wait_ready(http, platform)
    after = await eventually(lambda: sent("出院第30天随访"), within=90, what="day 30 sent")
    at_providers += await received()

    # The providers saw each invitation exactly once, and nothing else.
    sends = Counter(_link(m.get("url") or m.get("body") or "") for m in at_providers)
    links = {_link(m["body"]) for m in [*before.values(), *after.values()]}
    assert sends == Counter(dict.fromkeys(links, 1)), sends
    assert after["出院第30天随访"]["channel"] == "wechat"
    assert {m["status"] for m in [*before.values(), *after.values()]} <= {"sent", "delivered"}


def _link(text: str) -> str | None:
    return next((w for w in text.replace("：", " ").split() if "/p/" in w), None)
