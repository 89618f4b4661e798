"""The whole platform as `make run` wires it: the API's processes, real worker processes, the HIS
simulator, the Temporal dev server with its UI, PostgreSQL, and Chromium as the patient's phone.

A discharge goes in through the simulator; the patient answers both questionnaires in the
browser; the worker is restarted between them; the run finishes and the Temporal UI lists it.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from playwright.async_api import Browser, Page
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from core.db import SessionFactory
from core.temporal import DATA_CONVERTER
from harness.browser import chromium, phone
from harness.his_events import discharge_through_his
from harness.postgres import free_port
from harness.processes import Process, settings_env, start_api, start_process
from harness.settings import make_settings
from harness.staff import add_staff
from harness.waiting import answers_ok, eventually
from infra.toolchain import temporal_cli

pytestmark = pytest.mark.e2e

# One plan day lasts 1.5 seconds: day 3 at about 4.5 s, day 7 at 10.5 s, day 30 at 45 s; each
# link is valid 7.5 s.
SPEEDUP = 86400 / 1.5


@dataclass
class Platform:
    api: str
    his: str
    env: dict[str, str]
    logs: Path
    processes: dict[str, Process]
    temporal: WorkflowEnvironment
    ui: str

    def restart_worker(self) -> None:
        self.processes["worker"].stop()
        self.processes["worker"] = start_process(
            "worker-2", ["-m", "workers.main"], self.env, self.logs
        )

    def diagnostics(self) -> str:
        return "\n".join(p.tail() for p in self.processes.values())


@pytest.fixture
async def temporal_with_ui() -> AsyncIterator[tuple[WorkflowEnvironment, str]]:
    ui_port = free_port()
    env = await WorkflowEnvironment.start_local(
        data_converter=DATA_CONVERTER,
        dev_server_existing_path=str(temporal_cli()),
        dev_server_startup_timeout=timedelta(seconds=60),
        ui=True,
        ui_port=ui_port,
    )
    yield env, f"http://127.0.0.1:{ui_port}"
    await env.shutdown()


@pytest.fixture
def platform(
    database_url: str, temporal_with_ui: tuple[WorkflowEnvironment, str], tmp_path: Path
) -> Iterator[Platform]:
    temporal, ui = temporal_with_ui
    api_port, his_port = free_port(), free_port()
    settings = make_settings(
        log_json=True,
        database_url=database_url,
        temporal_address=temporal.client.service_client.config.target_host,
        temporal_task_queue=f"e2e-{uuid.uuid4()}",
        temporal_ui_url=ui,
        api_host="127.0.0.1",
        api_port=api_port,
        public_base_url=f"http://127.0.0.1:{api_port}",
        his_base_url=f"http://127.0.0.1:{his_port}",
    )
    env = settings_env(settings)
    processes = {
        "his-sim": start_process("his-sim", ["-m", "simulators.his"], env, tmp_path),
        "worker": start_process("worker", ["-m", "workers.main"], env, tmp_path),
        "api": start_api(env, tmp_path, api_port, 2, access_log=True),
    }
    platform = Platform(
        api=f"http://127.0.0.1:{api_port}",
        his=f"http://127.0.0.1:{his_port}",
        env=env,
        logs=tmp_path,
        processes=processes,
        temporal=temporal,
        ui=ui,
    )
    try:
        yield platform
    finally:
        for process in processes.values():
            process.stop()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched


async def _answer(
    page: Page, link: str, choices: list[str], notes: str | None, shot: Path | None = None
) -> str:
    await page.goto(link)
    await page.get_by_role("heading", name="出院康复随访问卷").wait_for()
    for label in choices:
        await page.get_by_text(label, exact=True).click()
    if notes:
        await page.get_by_role("textbox").fill(notes)
    if shot:
        await page.screenshot(path=str(shot), full_page=True)
    await page.get_by_role("button", name="提交").click()
    await page.get_by_role("heading", name="提交成功").wait_for()
    return await page.content()


async def test_discharge_to_finished_follow_up(
    platform: Platform, browser: Browser, sessions: SessionFactory, tmp_path: Path
) -> None:
    token = await add_staff(sessions)
    staff = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(timeout=30) as http:
        try:
            await eventually(
                lambda: answers_ok(http, f"{platform.api}/readyz"), within=60, what="API"
            )
            await eventually(
                lambda: answers_ok(http, f"{platform.his}/sim/patients"), within=30, what="HIS"
            )
            await _run_scenario(platform, browser, http, staff, tmp_path)
        except BaseException:
            print(platform.diagnostics())  # noqa: T201 - shown by pytest on failure only
            raise


async def _run_scenario(
    platform: Platform,
    browser: Browser,
    http: httpx.AsyncClient,
    staff: dict[str, str],
    tmp_path: Path,
) -> None:
    workflow_id = await discharge_through_his(http, platform.his, "P0003", SPEEDUP)

    async def message_for(step_title: str) -> dict[str, Any] | None:
        got = await http.get(
            f"{platform.api}/api/messages", params={"workflow_id": workflow_id}, headers=staff
        )
        return next((m for m in got.json()["items"] if step_title in m["body"]), None)

    def link_in(body: str) -> str:
        return next(w for w in body.replace("：", " ").split() if "/p/" in w)

    handset = await phone(browser)
    page = await handset.new_page()

    day3 = await eventually(
        lambda: message_for("出院第3天随访"), within=40, what="day-3 SMS", interval=0.2
    )
    assert day3["recipient_masked"] == "137****7003"
    assert "王志强您好" in day3["body"]
    html = await _answer(
        page,
        link_in(day3["body"]),
        ["较差", "发热（体温38℃以上）", "按时服药"],
        "夜里38.5度",
        shot=tmp_path / "day3-form.png",
    )
    assert "护士会尽快与您联系" in html
    await page.screenshot(path=str(tmp_path / "day3-submitted.png"), full_page=True)

    async def abnormal_alert() -> dict[str, Any] | None:
        got = await http.get(f"{platform.api}/api/alerts", headers=staff)
        return next((a for a in got.json()["items"] if a["workflow_id"] == workflow_id), None)

    alert = await eventually(abnormal_alert, within=20, what="the nurse's alert", interval=0.2)
    assert "发热" in alert["summary"]

    # A deploy between the two questionnaires: the run continues on the new worker process.
    platform.restart_worker()

    day7 = await eventually(
        lambda: message_for("出院第7天随访"), within=60, what="day-7 SMS", interval=0.2
    )
    await _answer(page, link_in(day7["body"]), ["良好", "以上均无", "按时服药"], None)
    day30 = await eventually(
        lambda: message_for("出院第30天随访"), within=90, what="day-30 SMS", interval=0.2
    )
    await _answer(page, link_in(day30["body"]), ["良好", "以上均无", "按时服药"], None)

    async def finished() -> dict[str, Any] | None:
        got = (await http.get(f"{platform.api}/api/runs/{workflow_id}", headers=staff)).json()
        return got if got["status"] == "completed" else None

    run = await eventually(finished, within=60, what="the run to finish", interval=0.2)
    assert [(s["step_id"], s["status"]) for s in run["steps"] if s["step_id"] != "nurse-call"] == [
        ("day3", "abnormal"),
        ("day7", "completed"),
        ("day30", "completed"),
    ]
    messages = await http.get(
        f"{platform.api}/api/messages", params={"workflow_id": workflow_id}, headers=staff
    )
    # One per questionnaire, nothing re-sent by the restart.
    assert messages.json()["total"] == 3
    description = await platform.temporal.client.get_workflow_handle(workflow_id).describe()
    assert description.status == WorkflowExecutionStatus.COMPLETED

    # The operator finds the patient's runs by their HIS number (a search attribute, never a
    # name or phone). The run sent its questionnaires itself: no workflow per message.
    async def runs_of_patient() -> list[str] | None:
        found = [
            w.id
            async for w in platform.temporal.client.list_workflows(
                'PatientId = "P0003" AND PathwayId = "inpatient-discharge"'
            )
        ]
        return found if workflow_id in found else None

    found = await eventually(runs_of_patient, within=30, what="runs by PatientId")
    assert found == [workflow_id]
    description = await platform.temporal.client.get_workflow_handle(workflow_id).describe()
    attributes = {p.key.name: p.value for p in description.typed_search_attributes}
    assert attributes["PatientId"] == "P0003"
    assert attributes["PathwayVersion"] >= 1
    assert attributes["Department"]
    assert attributes["Hospital"]

    # The operator's view: the Temporal UI lists the finished run for that query.
    ui = await browser.new_page()
    query = quote('PatientId = "P0003"')
    await ui.goto(f"{platform.ui}/namespaces/default/workflows?query={query}")
    await ui.get_by_text(workflow_id).first.wait_for(timeout=30_000)
    await ui.screenshot(path=str(tmp_path / "temporal-ui.png"))
    await handset.close()
