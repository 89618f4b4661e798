"""Many active pathway runs on one node (issue 15, goal 6): ``python -m bench.active_runs``
(``--runs 100000 --due 10000 --workers 1``). Runs on the Temporal server on PostgreSQL unless
CAREPATH_BENCH_TEMPORAL=dev.

The library's inpatient follow-up plan (questionnaires on day 3, 7 and 30 at 10:00) is started for
``--runs`` discharges through the enrolment service's ``start_run``, the call an HIS discharge
makes, and executed by ``--workers`` worker processes, with the Twilio simulator as the SMS
provider. The first ``runs - due`` patients were discharged now: their runs open (run and tasks
written) and then wait on timers. The last ``--due`` were discharged three days ago, so all their
day-3 questionnaires fall due at the same local minute: the day's "10:00". The benchmark cannot
wait for the real 10:00, so those runs' snapshot pins the day-3 step to a minute chosen a little
after they have all started; nothing else about the plan changes.

Prints the start rate (accepted by Temporal; and opened by the worker), the worker's and the
server's peak RSS, history sizes, and how long the due questionnaires take to reach the provider
once due. Counts messages and recipients (exactly once). Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlmodel import col, func, select
from temporalio.client import Client

from api.container import Container
from bench.cpu_split import CpuSplit
from bench.infra import bench_infra, process_env, start_workers
from contracts.pathway import pathway_workflow_id
from core.db import SessionFactory, transaction
from core.hospitals import HospitalConfig, QuietHours
from core.logs import configure_logging
from core.models import Hospital, OutboundMessage, PathwayRun, Patient, new_id
from harness.postgres import free_port
from harness.processes import Process
from harness.servers import serve
from harness.settings import make_settings
from harness.waiting import eventually
from integrations.his import HisClient
from pathways.definition import PathwaySnapshot
from services.enrolment import EnrolmentContext, start_run
from services.hospitals import hospital_profile
from services.pathway_definitions import published_snapshot
from simulators.twilio.app import Faults, TwilioState
from simulators.twilio.app import create_app as create_twilio

SID = "AC" + "3" * 32
TOKEN = "bench-twilio-token-0123456789abcdef"
PATHWAY = "inpatient-discharge"
DUE_STEP = "day3"
GIB = 1024**3


def rss_bytes(pid: int) -> int:
    """Resident memory of a process (Linux), 0 once it has gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except FileNotFoundError:
        pass
    return 0


class PeakMemory:
    """Samples processes' RSS every second; the peak per name."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.peak = dict.fromkeys(pids, 0)

    async def sample(self) -> None:
        while True:
            for name, pid in self.pids.items():
                self.peak[name] = max(self.peak[name], rss_bytes(pid))
            await asyncio.sleep(1)


async def in_parallel(count: int, concurrency: int, one: Callable[[int], Awaitable[None]]) -> None:
    """``one(n)`` for every n below ``count``, ``concurrency`` at a time."""
    numbers = iter(range(count))

    async def lane() -> None:
        for n in numbers:
            await one(n)

    await asyncio.gather(*(lane() for _ in range(concurrency)))


async def add_patients(sessions: SessionFactory, count: int) -> list[Patient]:
    patients = [
        Patient(id=new_id(), his_patient_id=f"A{n:06d}", name=f"患者{n}", phone=f"138{n:08d}")
        for n in range(count)
    ]
    for start in range(0, count, 2000):
        async with transaction(sessions) as session:
            session.add_all(patients[start : start + 2000])
    return patients


def runs_opened(sessions: SessionFactory, count: int) -> Callable[[], Awaitable[bool]]:
    """Whether ``count`` runs have opened: run and tasks written by the worker."""

    async def check() -> bool:
        async with sessions() as session:
            found = await session.exec(select(func.count()).select_from(PathwayRun))
            return found.one() >= count

    return check


def recorded_sent(sessions: SessionFactory, count: int) -> Callable[[], Awaitable[int]]:
    """How many messages the send log records as sent, once at least ``count`` (the provider
    answers before the worker writes its receipt)."""

    async def check() -> int:
        async with sessions() as session:
            found = await session.exec(
                select(func.count())
                .select_from(OutboundMessage)
                .where(col(OutboundMessage.sent_at).is_not(None))
            )
            sent = found.one()
            return sent if sent >= count else 0

    return check


def due_snapshot(snapshot: PathwaySnapshot, local_due: datetime) -> PathwaySnapshot:
    """The plan with its day-3 step pinned to ``local_due``'s clock time instead of 10:00."""
    steps = []
    for step in snapshot.definition.steps:
        if step.id == DUE_STEP:
            assert step.schedule is not None
            schedule = step.schedule.model_copy(update={"time_of_day": local_due.time()})
            step = step.model_copy(update={"schedule": schedule})
        steps.append(step)
    definition = snapshot.definition.model_copy(update={"steps": steps})
    return snapshot.model_copy(update={"definition": definition})


async def history_sizes(client: Client, workflow_ids: list[str]) -> tuple[list[int], list[int]]:
    events: list[int] = []
    sizes: list[int] = []
    for workflow_id in workflow_ids:
        info = (await client.get_workflow_handle(workflow_id).describe()).raw_description
        events.append(info.workflow_execution_info.history_length)
        sizes.append(info.workflow_execution_info.history_size_bytes)
    return events, sizes


def spread(values: list[int] | list[float]) -> str:
    ordered = sorted(values)
    return (
        f"p50 {ordered[len(ordered) // 2]:,}  p95 {ordered[int(len(ordered) * 0.95)]:,}  "
        f"max {ordered[-1]:,}"
    )


async def main(runs: int, due: int, workers: int, concurrency: int) -> None:
    os.environ.setdefault("CAREPATH_BENCH_TEMPORAL", "cluster")
    configure_logging(json=True, level="WARNING")
    if not 0 < due <= runs:
        raise SystemExit("--due must be between 1 and --runs")
    async with bench_infra() as infra:
        sessions, temporal = infra.sessions, infra.temporal
        processes: list[Process] = []
        twilio = TwilioState(account_sid=SID, auth_token=TOKEN)
        twilio.faults = Faults(send_callbacks=False)
        try:
            async with serve(create_twilio(twilio)) as twilio_url:
                settings = make_settings(
                    database_url=infra.database_url,
                    temporal_task_queue="bench-runs",
                    public_base_url=f"http://127.0.0.1:{free_port()}",
                    message_channels="sms",
                    twilio_account_sid=SID,
                    twilio_auth_token=TOKEN,
                    twilio_api_base_url=twilio_url,
                    twilio_rate_per_second=1000.0,
                )
                his = HisClient.create("http://127.0.0.1:9", "unused", timeout_seconds=1)
                await Container.build(settings, sessions, temporal.client, his).sync_library()
                async with transaction(sessions) as session:
                    session.add(
                        Hospital(
                            code=settings.default_hospital_code,
                            name="示例医院",
                            # Quiet hours off: the benchmark's "10:00" may be any hour of the day.
                            config=HospitalConfig(quiet_hours=QuietHours(enabled=False)).model_dump(
                                mode="json"
                            ),
                        )
                    )
                async with sessions() as session:
                    snapshot = await published_snapshot(session, PATHWAY, 1)
                    profile = await hospital_profile(
                        session, settings, settings.default_hospital_code
                    )
                print(
                    f"{runs:,} active runs of {PATHWAY}, {due:,} of them due at the same minute; "
                    f"{workers} worker process(es), {os.cpu_count()} cores"
                )
                started = time.perf_counter()
                patients = await add_patients(sessions, runs)
                print(f"  {runs:,} patients written in {time.perf_counter() - started:.0f} s")

                env = process_env(infra, settings)
                processes.extend(start_workers(infra, env, workers))
                pids = {p.name: p.popen.pid for p in processes}
                server = infra.temporal_pid
                if server is not None:
                    pids["temporal server"] = server
                memory = PeakMemory(pids)
                sampler = asyncio.create_task(memory.sample())
                ctx = EnrolmentContext(settings, temporal.client, his)
                now = datetime.now(UTC)

                async def start(n: int, pinned: PathwaySnapshot, anchor: datetime) -> None:
                    await start_run(
                        ctx,
                        profile,
                        pinned,
                        patients[n],
                        encounter=None,
                        anchor_at=anchor,
                        anchor_event="discharge",
                        anchor_ref=f"D{n}",
                    )

                waiting = runs - due
                clock = time.perf_counter()
                await in_parallel(waiting, concurrency, lambda n: start(n, snapshot, now))
                accepted = time.perf_counter() - clock

                await eventually(
                    runs_opened(sessions, waiting), within=4 * 3600, what="runs opened", interval=1
                )
                rate = waiting / (time.perf_counter() - clock) if waiting else 50.0
                print(
                    f"  start rate: {waiting / max(accepted, 1e-6):,.1f} runs/s accepted by "
                    f"Temporal ({waiting:,} in {accepted:.0f} s, {concurrency} at a time); "
                    f"{rate:,.1f} runs/s opened by the worker (run and tasks written)"
                )

                # The due minute: after every due run has opened, at the rate just measured.
                lead = timedelta(seconds=60 + 2 * due / rate)
                due_at = (datetime.now(UTC) + lead).astimezone(profile.tz)
                due_at = due_at.replace(second=0, microsecond=0) + timedelta(minutes=1)
                pinned = due_snapshot(snapshot, due_at)
                discharged = due_at - timedelta(days=3)
                await in_parallel(
                    due, concurrency, lambda n: start(waiting + n, pinned, discharged)
                )
                await eventually(
                    runs_opened(sessions, runs),
                    within=4 * 3600,
                    what="every run opened",
                    interval=1,
                )
                if datetime.now(UTC) >= due_at:
                    print("  (the due minute came before every due run had opened)")
                ids = [p.his_patient_id for p in patients]
                sample = random.Random(15).sample(range(runs), min(200, runs))
                events, sizes = await history_sizes(
                    temporal.client, [pathway_workflow_id(PATHWAY, ids[n], f"D{n}") for n in sample]
                )
                print(f"  history while waiting: events {spread(events)}; bytes {spread(sizes)}")
                print(f"  peak RSS so far: {describe_memory(memory.peak)}")

                wait = (due_at - datetime.now(UTC)).total_seconds()
                print(
                    f"  {due:,} questionnaires fall due at {due_at:%H:%M} local "
                    f"({max(wait, 0):.0f} s from now)"
                )

                async def all_sent() -> bool:
                    return len(twilio.messages) >= due

                await asyncio.sleep(max(wait, 0))  # the CPU split below is the due messages' own
                split = CpuSplit.start()
                await eventually(all_sent, within=4 * 3600, what="every due message", interval=0.5)
                cpu = split.report(due, "due message")
                stamps = sorted(
                    (m.date_created - due_at).total_seconds() for m in twilio.messages.values()
                )
                last = stamps[-1]
                print(
                    f"  due messages at the provider: first {stamps[0]:.1f} s after they fell "
                    f"due, half by {stamps[len(stamps) // 2]:.1f} s, 95 % by "
                    f"{stamps[int(len(stamps) * 0.95)]:.1f} s, all by {last:.1f} s "
                    f"({due / max(last, 1e-6):,.1f} messages/s)"
                )
                print(f"  {cpu}")
                recipients = {m.to for m in twilio.messages.values()}
                early = sum(1 for s in stamps if s < 0)
                sent = await eventually(
                    recorded_sent(sessions, due), within=300, what="sends recorded", interval=0.5
                )
                print(
                    f"  exactly once: {len(twilio.messages):,} messages at the provider to "
                    f"{len(recipients):,} recipients, {sent:,} recorded as sent, for {due:,} due "
                    f"({early} sent before they were due)"
                )
                due_sample = [n for n in sample if n >= waiting] or [waiting]
                events, sizes = await history_sizes(
                    temporal.client,
                    [pathway_workflow_id(PATHWAY, ids[n], f"D{n}") for n in due_sample],
                )
                print(
                    f"  history after the due step: events {spread(events)}; bytes {spread(sizes)}"
                )
                sampler.cancel()
                worst = max(v for k, v in memory.peak.items() if k.startswith("bench-worker"))
                print(
                    f"  peak RSS: {describe_memory(memory.peak)}; worker / 2 GiB goal: ratio "
                    f"{worst / (2 * GIB):.2f} (goal < 1)"
                )
                await his.close()
        finally:
            for process in processes:
                process.stop()


def describe_memory(peak: dict[str, int]) -> str:
    return ", ".join(f"{name} {math.ceil(value / 2**20):,} MiB" for name, value in peak.items())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--due", type=int, default=10_000, help="runs due at the same minute")
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    parser.add_argument("--concurrency", type=int, default=20, help="starts in flight")
    args = parser.parse_args()
    asyncio.run(main(args.runs, args.due, args.workers, args.concurrency))
