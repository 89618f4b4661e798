"""Messages per second through the Twilio path: ``make bench``, or
``python -m bench.messages_throughput --messages 500``.

Three figures, all against the Twilio simulator over loopback with the real Twilio SDK client:
- the channel alone (SDK → HTTP → simulator), many sends in flight;
- pushes end to end: one message per call to the HTTP API (its processes, as production runs
  them), gathered by the push outboxes on the Temporal dev server and sent many at a time by a
  separate worker process, with PostgreSQL as the send log, until the simulator has every
  message;
- a batch end to end: one call creating a batch send to every recipient, sent in bulk by one
  MessageBatchSend workflow on the same server and worker, until the simulator has every message.
Each phase also runs with SMS limited to 5/s, to show the limit holds. Twilio's status callbacks
are off in these phases; the batch runs once more with them on, as production has them (two per
message, each a request to the API, applied in groups), to show what they cost on the same
machine. Then a batch to WeChat
followers through the WeChat simulator (whose send reports come back to the API, which the
client alone does not pay for), against the WeChat client alone. Prints figures; asserts
nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from bench.cpu_split import CpuSplit
from bench.infra import BenchInfra, bench_infra, process_env, start_workers
from core.db import SessionFactory, transaction
from core.hospitals import HospitalConfig, QuietHours
from core.logs import configure_logging
from core.models import Hospital, Patient, StaffRole, new_id
from core.settings import Settings
from harness.postgres import free_port
from harness.processes import api_ready, start_api
from harness.servers import serve
from harness.settings import make_settings
from harness.staff import add_staff
from harness.waiting import eventually
from integrations.twilio_sms import TwilioSmsChannel
from integrations.wechat import WeChatTemplateChannel
from messaging.channel import MessageChannel, OutgoingMessage
from simulators.twilio.app import Faults, TwilioState
from simulators.twilio.app import create_app as create_twilio
from simulators.wechat.app import WeChatState
from simulators.wechat.app import create_app as create_wechat

SID = "AC" + "2" * 32
TOKEN = "bench-twilio-token-0123456789abcdef"
WECHAT_APPID = "wx00bench00000000"
WECHAT_SECRET = "bench-wechat-secret-0123456789ab"
WECHAT_TEMPLATE = "TPL-NOTICE"


def _openid(n: int) -> str:
    return f"oBench{n:07d}"


async def _seed(sessions: SessionFactory, count: int, prefix: str, *, wechat: bool = False) -> None:
    """The hospital, quiet hours off (a benchmark runs at any hour), and ``count`` patients
    numbered ``<prefix>00000`` on; following the WeChat account with ``wechat``."""
    async with transaction(sessions) as session:
        session.add(
            Hospital(
                code="default",
                name="示例医院",
                config=HospitalConfig(quiet_hours=QuietHours(enabled=False)).model_dump(
                    mode="json"
                ),
            )
        )
        for n in range(count):
            session.add(
                Patient(
                    id=new_id(),
                    his_patient_id=f"{prefix}{n:05d}",
                    name=f"患者{n}",
                    phone=f"139{n:08d}",
                    wechat_openid=_openid(n) if wechat else None,
                )
            )


async def _send_batch(http: httpx.AsyncClient, nurse: str, count: int, prefix: str) -> None:
    response = await http.post(
        "/api/messages/batches",
        json={
            "name": "停诊通知",
            "template": "notice_generic",
            "variables": {"title": "停诊通知", "content": "王医生周五停诊"},
            "recipients": {"patient_ids": [f"{prefix}{n:05d}" for n in range(count)]},
        },
        headers={"Authorization": f"Bearer {nurse}"},
    )
    response.raise_for_status()


async def channel_only(twilio_url: str, count: int, concurrency: int) -> float:
    channel = TwilioSmsChannel(
        account_sid=SID,
        auth_token=TOKEN,
        from_number="+15005550006",
        api_base_url=twilio_url,
        status_callback_url=None,
    )
    return await _sends(channel, "Twilio channel (SDK only)", count, concurrency)


async def _sends(channel: MessageChannel, label: str, count: int, concurrency: int) -> float:
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []

    async def one(n: int) -> None:
        async with gate:
            start = time.perf_counter()
            await channel.deliver(
                OutgoingMessage(
                    message_id=str(n),
                    idempotency_key=str(n),
                    category="notice",
                    template="notice_generic",
                    phone=f"+86139{n:08d}",
                    openid=_openid(n),
                    sms_body=f"【示例医院】停诊通知：第{n}条测试消息。",
                    wechat={"data": {"first": {"value": f"第{n}条测试消息"}}, "url": None},
                )
            )
            latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    await asyncio.gather(*(one(n) for n in range(count)))
    wall = time.perf_counter() - start
    await channel.close()
    ordered = sorted(latencies)
    rate = count / wall
    print(
        f"{label:<34} n={count:<5} {count / wall:7.1f} msg/s  "
        f"p50={ordered[len(ordered) // 2] * 1000:6.1f}ms  "
        f"p95={ordered[int(len(ordered) * 0.95)] * 1000:6.1f}ms  "
        f"mean={statistics.fmean(ordered) * 1000:6.1f}ms"
    )
    return rate


@asynccontextmanager
async def _platform(
    infra: BenchInfra, settings: Settings, api_port: int
) -> AsyncIterator[httpx.AsyncClient]:
    """One worker process and the API's processes on ``api_port``, as production runs them, and
    a client of the API once it answers; both stopped afterwards."""
    env = process_env(infra, settings)
    (worker,) = start_workers(infra, env, 1, review=False)
    api = start_api(env, infra.workdir, api_port, os.cpu_count() or 1)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}", timeout=60) as http:
            await api_ready(http)
            yield http
    finally:
        worker.stop()
        api.stop()


async def end_to_end(
    count: int, rate: float, label: str, *, batch: bool, callbacks: bool = False
) -> None:
    """``callbacks``: Twilio posts its status callbacks (sent, then delivered) to the API, as in
    production; off, the API has only the sends to handle."""
    async with bench_infra() as infra:
        url, sessions = infra.database_url, infra.sessions
        twilio = TwilioState(account_sid=SID, auth_token=TOKEN)
        twilio.faults = Faults(send_callbacks=callbacks)
        async with serve(create_twilio(twilio)) as twilio_url:
            alone = None
            if rate >= 1000:
                # The median of three: one measurement of the channel alone varied from
                # 590 to 920 msg/s on the same machine.
                alone = statistics.median(
                    [await channel_only(twilio_url, count, concurrency=20) for _ in range(3)]
                )
                twilio.messages.clear()
            api_port = free_port()
            settings = make_settings(
                database_url=url,
                temporal_task_queue="bench-messages",
                public_base_url=f"http://127.0.0.1:{api_port}",
                message_channels="sms",
                twilio_account_sid=SID,
                twilio_auth_token=TOKEN,
                twilio_api_base_url=twilio_url,
                twilio_rate_per_second=rate,
            )
            await _seed(sessions, count, "M")
            token = await add_staff(sessions, StaffRole.INTEGRATION, None, name="bench")
            nurse = await add_staff(sessions, StaffRole.NURSE, "cardiology", name="bench")
            async with _platform(infra, settings, api_port) as http:
                headers = {"Authorization": f"Bearer {token}"}
                gate = asyncio.Semaphore(10)

                async def push(n: int) -> None:
                    async with gate:
                        response = await http.post(
                            "/api/messages",
                            json={
                                "idempotency_key": f"bench-{n}",
                                "to": {"patient_id": f"M{n:05d}"},
                                "template": "notice_generic",
                                "variables": {"title": "停诊通知", "content": f"第{n}条"},
                            },
                            headers=headers,
                        )
                        response.raise_for_status()

                split = CpuSplit.start()
                start = time.perf_counter()
                if batch:
                    await _send_batch(http, nurse, count, "M")
                else:
                    await asyncio.gather(*(push(n) for n in range(count)))
                accepted = time.perf_counter() - start

                async def all_received() -> bool:
                    return len(twilio.messages) >= count

                await eventually(all_received, within=3600, what="every message")
                wall = time.perf_counter() - start
                cpu = split.report(count, "message")
        # Sustained rate at the provider: first to last message received, worker start-up aside.
        stamps = sorted(m.date_created for m in twilio.messages.values())
        sustained = (count - 1) / max((stamps[-1] - stamps[0]).total_seconds(), 1e-6)
        print(
            f"{label:<34} n={count:<5} {sustained:7.1f} msg/s sustained  "
            f"(API accepted all in {accepted:.1f}s; all delivered {wall:.1f}s after the first "
            "push, worker start-up included)"
        )
        recipients = [m.to for m in twilio.messages.values()]
        print(
            f"{'':<34} at the provider: {len(recipients)} messages, to {len(set(recipients))} "
            f"distinct recipients, for {count} {'recipients' if batch else 'pushes'}"
        )
        print(f"{'':<34} {cpu}")
        if alone:
            print(
                f"{'':<34} end to end / channel alone (median of 3) = "
                f"{sustained:.1f} / {alone:.1f}: "
                f"ratio {sustained / alone:.2f} (goal ≥ 0.5)"
            )


async def wechat_batch(count: int) -> None:
    """A batch to ``count`` WeChat followers, against the WeChat client alone."""
    async with bench_infra() as infra:
        api_port = free_port()
        wechat = WeChatState(
            appid=WECHAT_APPID,
            secret=WECHAT_SECRET,
            server_token="benchwechattoken",
            event_url=None,  # until the API is up: the client alone has no one to report to
            followers={_openid(n) for n in range(count)},
            template_ids={WECHAT_TEMPLATE},
        )
        async with serve(create_wechat(wechat)) as wechat_url:
            rates = []
            for _ in range(3):
                channel = WeChatTemplateChannel.create(
                    base_url=wechat_url,
                    appid=WECHAT_APPID,
                    secret=WECHAT_SECRET,
                    template_ids={"notice_generic": WECHAT_TEMPLATE},
                )
                rates.append(await _sends(channel, "WeChat channel (client only)", count, 20))
                await channel.close()
            alone = statistics.median(rates)
            wechat.sent.clear()
            wechat.event_url = f"http://127.0.0.1:{api_port}/webhooks/wechat"
            settings = make_settings(
                database_url=infra.database_url,
                temporal_task_queue="bench-wechat",
                public_base_url=f"http://127.0.0.1:{api_port}",
                message_channels="wechat",
                wechat_appid=WECHAT_APPID,
                wechat_secret=WECHAT_SECRET,
                wechat_token="benchwechattoken",
                wechat_api_base_url=wechat_url,
                wechat_template_ids={"notice_generic": WECHAT_TEMPLATE},
                wechat_rate_per_second=1000.0,
            )
            await _seed(infra.sessions, count, "W", wechat=True)
            nurse = await add_staff(infra.sessions, StaffRole.NURSE, "cardiology", name="bench")
            async with _platform(infra, settings, api_port) as http:
                split = CpuSplit.start()
                await _send_batch(http, nurse, count, "W")

                async def all_received() -> bool:
                    return len(wechat.sent) >= count

                await eventually(all_received, within=3600, what="every WeChat notice")
                cpu = split.report(count, "message")
        stamps = sorted(m.sent_at for m in wechat.sent)
        sustained = (count - 1) / max(stamps[-1] - stamps[0], 1e-6)
        label = "batch API → bulk sends → WeChat"
        print(f"{label:<34} n={count:<5} {sustained:7.1f} msg/s sustained")
        touser = [m.touser for m in wechat.sent]
        print(
            f"{'':<34} at the provider: {len(touser)} notices, to {len(set(touser))} "
            f"distinct followers, for {count} recipients"
        )
        print(f"{'':<34} {cpu}")
        print(
            f"{'':<34} end to end / channel alone (median of 3) = {sustained:.1f} / "
            f"{alone:.1f}: ratio {sustained / alone:.2f}"
        )


PHASES = ("push", "batch", "callbacks", "wechat")


async def main(count: int, phases: set[str]) -> None:
    configure_logging(json=True, level="WARNING")
    print(f"messages through the Twilio path, {count} messages, 2-core box")
    if "push" in phases:
        await end_to_end(count, 1000.0, "push API → outbox → Twilio", batch=False)
        # The channel's rate, held by each worker's pacing of the outbox's sends.
        await end_to_end(60, 5.0, "same, SMS limited to 5/s", batch=False)
    if "batch" in phases:
        await end_to_end(count, 1000.0, "batch API → bulk sends → Twilio", batch=True)
        await end_to_end(60, 5.0, "same, SMS limited to 5/s", batch=True)
    if "callbacks" in phases:
        await end_to_end(count, 1000.0, "same, Twilio's callbacks on", batch=True, callbacks=True)
    if "wechat" in phases:
        await wechat_batch(count)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument(
        "--phases", default=",".join(PHASES), help=f"comma-separated, of {', '.join(PHASES)}"
    )
    args = parser.parse_args()
    phases = set(args.phases.split(","))
    if not phases <= set(PHASES):
        parser.error(f"--phases: unknown {', '.join(sorted(phases - set(PHASES)))}")
    asyncio.run(main(args.messages, phases))
