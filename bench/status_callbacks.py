"""What a provider's delivery report costs us: ``python -m bench.status_callbacks``.

Twilio posts two status callbacks per SMS (sent, then delivered), and WeChat one event per
template message, each a signed request to the API that stores the report and applies it to
the send log with the others that arrived meanwhile (services.delivery_reports). A batch with
the callbacks on spends more of the machine on them than on the sends
(bench.messages_throughput), so here they are alone: ``--callbacks`` signed Twilio
callbacks posted 8 at a time, as the simulators' notifier does, to the API's processes on
PostgreSQL, twice:
- for messages we have no record of yet (the report outran the send's record, which is how
  most of a bulk page's reports arrive);
- for messages recorded as sent, which the report moves to delivered.
Prints the rate, the CPU per callback on the whole machine and its split, and the counts that
show each report stored and applied once (a hundred of them are posted a second time).
Asserts nothing."""

from __future__ import annotations

import argparse
import asyncio
import os
import time

import httpx
from sqlmodel import col, func, select

from bench.cpu_split import CpuSplit
from bench.infra import BenchInfra, bench_infra, process_env
from core.db import transaction
from core.logs import configure_logging
from core.models import AttemptStatus, DeliveryReport, MessageAttempt, OutboundMessage, utcnow
from harness.postgres import free_port
from harness.processes import api_ready, start_api
from harness.settings import make_settings
from simulators.notifier import IN_FLIGHT
from simulators.twilio.app import twilio_signature

SID = "AC" + "3" * 32
TOKEN = "bench-twilio-token-0123456789abcdef"


def _sid(n: int) -> str:
    return f"SM{n:032d}"


async def _recorded(infra: BenchInfra, first: int, count: int) -> None:
    """``count`` messages recorded as sent by SMS, numbered from ``first``."""
    now = utcnow()
    async with transaction(infra.sessions) as session:
        messages = {
            n: OutboundMessage(
                idempotency_key=f"bench-callback-{n}",
                category="notice",
                template="notice_generic",
                recipient_phone="13800000000",
                body="停诊通知",
                status="sent",
                channel="sms",
                scheduled_for=now,
                sent_at=now,
            )
            for n in range(first, first + count)
        }
        session.add_all(messages.values())
        await session.flush()  # the attempts' foreign keys
        session.add_all(
            MessageAttempt(
                message_id=message.id,
                channel="sms",
                recipient="13800000000",
                status=AttemptStatus.SENT,
                provider_message_id=_sid(n),
                tries=1,
            )
            for n, message in messages.items()
        )


async def _post_all(http: httpx.AsyncClient, url: str, sids: list[str], status: str) -> None:
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def one(sid: str) -> None:
        params = {
            "AccountSid": SID,
            "ApiVersion": "2010-04-01",
            "MessageSid": sid,
            "MessageStatus": status,
            "To": "+8613800000000",
        }
        headers = {"X-Twilio-Signature": twilio_signature(TOKEN, url, params)}
        async with gate:
            response = await http.post("/webhooks/twilio/status", data=params, headers=headers)
        response.raise_for_status()

    await asyncio.gather(*map(one, sids))


async def main(count: int) -> None:
    configure_logging(json=True, level="WARNING")
    print(f"Twilio status callbacks, {count} per phase, {os.cpu_count()}-core box")
    async with bench_infra() as infra:
        port = free_port()
        settings = make_settings(
            database_url=infra.database_url,
            temporal_task_queue="bench-callbacks",
            public_base_url=f"http://127.0.0.1:{port}",
            message_channels="sms",
            twilio_account_sid=SID,
            twilio_auth_token=TOKEN,
        )
        await _recorded(infra, count, count)
        api = start_api(process_env(infra, settings), infra.workdir, port, os.cpu_count() or 1)
        try:
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{port}",
                timeout=60,
                limits=httpx.Limits(max_connections=IN_FLIGHT),
            ) as http:
                await api_ready(http)
                url = settings.twilio_status_callback_url
                await _post_all(http, url, [f"SMwarmup{n:026d}" for n in range(200)], "sent")
                phases = (
                    ("ahead of our record of the send", range(count), "sent"),
                    ("for sends on record (to delivered)", range(count, 2 * count), "delivered"),
                )
                for label, numbers, status in phases:
                    split = CpuSplit.start()
                    start = time.perf_counter()
                    await _post_all(http, url, [_sid(n) for n in numbers], status)
                    wall = time.perf_counter() - start
                    print(f"{label:<36} {count / wall:7.1f} callbacks/s")
                    print(f"{'':<36} {split.report(count, 'callback')}")
                await _post_all(http, url, [_sid(n) for n in range(100)], "sent")
        finally:
            api.stop()
        async with infra.sessions() as session:
            stored = (await session.exec(select(func.count()).select_from(DeliveryReport))).one()
            delivered = (
                await session.exec(
                    select(func.count())
                    .select_from(OutboundMessage)
                    .where(col(OutboundMessage.status) == "delivered")
                )
            ).one()
        print(
            f"reports stored: {stored} for {2 * count + 200} distinct callbacks (100 posted "
            f"twice); messages delivered: {delivered} of {count} on record"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--callbacks", type=int, default=4000)
    asyncio.run(main(parser.parse_args().callbacks))
