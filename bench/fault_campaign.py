"""The fault campaign: ``make fault-campaign``, or ``python -m bench.fault_campaign`` (``--quick``
for a small one while developing).

Pathway runs, payments and prescriptions all at once while everything that can go wrong does:
- each worker process (``workers.main``; one by default, ``--workers``) is SIGKILLed and
  started again a few seconds (``--kill-every``) after it starts serving; each new worker is
  forked from a parent that did the worker's imports once (``harness.worker_fork``), so that it
  serves within about a second rather than spending its few seconds importing
  (``--cold-starts`` starts each from nothing);
- the Temporal server (the dev server with file persistence, or with
  ``CAREPATH_BENCH_TEMPORAL=cluster`` the Temporal server keeping its stores in the same
  PostgreSQL) and PostgreSQL are each restarted once, on the same port and data;
- the WeChat, Twilio, HIS, insurance-centre and payment-provider simulators fail a share of calls
  (20 % by default), half with a 5xx before acting and half by acting and then holding the answer
  past our client's timeout; the provider also drops, repeats and delays its notifications.

Load: discharge events through the HIS simulator's signed webhook, with a compressed plan clock
(one plan day in ``--day-seconds``), so each run sends its day-3, day-7 and day-30 invitations
(WeChat for half the patients, SMS for the others) and completes within the campaign; payment
orders paid, some refunded (``harness/payment_fault_run.py``); herbal prescriptions submitted by
the HIS, some approved by a pharmacist, the rest by the system at the review deadline; a batch
notice to ``--batch`` patients (sent in bulk, WeChat or SMS likewise), created a few seconds in;
``--pushes`` notices pushed one by one through the push API by another system, spread over the
faults (both restarts included), each retried under its idempotency key until it is accepted.

After the faults stop and everything has come to rest (polled, never slept), four figures, each
of which must be 0, computed from our database and from what the simulators received:
- lost steps: invitations of a run never delivered to a provider, runs not completed, orders or
  refunds not at rest, prescriptions without their conclusion in our database and at the HIS,
  recipients of the batch notice it never reached, accepted pushes never delivered;
- duplicate messages: the same message (its link, or its text) received more often by WeChat and
  Twilio together than we sent it;
- double charges: an order or a trade refunded beyond what was paid, or an order holding more
  than one live insurance settlement;
- unbalanced books: an order whose ledger (money movements the sagas recorded) differs from what
  the order says it holds or from what the provider and the insurance centre hold, or the three
  parties' totals differing from ours.
Prints them with the work done and the faults injected; exits 1 if any of the four is not 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import faulthandler
import json
import os
import random
import re
import shutil
import signal
import sys
import threading
import time
import traceback
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import col, select

from bench.infra import RestartableInfra, restartable_infra
from core.db import transaction
from core.hospitals import HospitalConfig, PrescriptionConfig, ReviewPolicy
from core.logs import configure_logging
from core.models import (
    CareTask,
    DeliveryReport,
    Hospital,
    LedgerEntryRow,
    MessageAttempt,
    MessageBatch,
    OutboundMessage,
    PathwayRun,
    Patient,
    PaymentOrder,
    PaymentRefund,
    Prescription,
    StaffRole,
)
from core.webhook_auth import signed_headers
from harness.his_events import discharge_until_accepted
from harness.payment_fault_run import ORDER_DONE, REFUND_DONE, Chaos, calm_parties, run_orders
from harness.payments import HOSPITAL, PayWorld, payment_world
from harness.prescriptions import prescription
from harness.processes import KilledOften, WorkerFork, settings_env
from harness.servers import serve
from harness.settings import TEST_WEBHOOK_SECRET
from harness.staff import add_staff
from simulators.faults import FaultPlan
from simulators.his.app import SimPatient
from simulators.twilio.app import Faults as TwilioFaults
from simulators.twilio.app import SimMessage, TwilioState
from simulators.twilio.app import create_app as create_twilio
from simulators.wechat.app import SentTemplate, WeChatState
from simulators.wechat.app import create_app as create_wechat

TWILIO_SID = "AC" + "7" * 32
TWILIO_TOKEN = "fault-campaign-twilio-token-0123456789"
WECHAT_APPID, WECHAT_SECRET = "wxfaultcampaign0001", "fault-campaign-wechat-secret-0123456789"
TEMPLATES = {"followup_invite": "TPL-FOLLOWUP", "notice_generic": "TPL-NOTICE"}
# Orthopaedics: a discharge there starts only the follow-up plan (day 3, 7 and 30 invitations).
WARD = {"department_code": "orthopedics", "department_name": "骨科", "ward": "骨科二病区"}
INVITATIONS = ("day3", "day7", "day30")
SENT_TASK = {"sent", "read", "expired", "completed", "abnormal", "lost"}
CHANNEL_TIMEOUT = 3.0  # our WeChat/Twilio clients' timeout; a lost answer is held longer
BATCH_TEXT = "骨科李医生下周一上午停诊，请改约。"
BATCH_AT = 8.0  # seconds into the load: after the first worker kills, before the server restarts


@dataclass(frozen=True)
class Options:
    runs: int
    payments: int
    prescriptions: int
    batch: int
    pushes: int
    kill_every: float
    workers: int
    cold_starts: bool
    fault_rate: float
    day_seconds: float
    discharge_rate: float
    rx_deadline: int
    temporal_restart_at: float
    postgres_restart_at: float
    settle_within: float
    seed: int


@dataclass
class Tally:
    started: float = field(default_factory=time.perf_counter)
    runs: list[str] = field(default_factory=list)
    redeliveries: int = 0
    prescriptions: list[str] = field(default_factory=list)
    batch_id: str | None = None
    # Accepted pushes: their message ids.
    pushes: list[str] = field(default_factory=list)
    pharmacist_decisions: int = 0
    api_retries: int = 0
    restarts: list[str] = field(default_factory=list)

    def at(self) -> float:
        return time.perf_counter() - self.started


async def main(options: Options) -> int:
    # Errors (each request a restarting database fails, among others) go to stderr; the
    # figures to stdout.
    configure_logging(json=True, level="ERROR")
    tally = Tally()
    async with restartable_infra() as infra:
        twilio = TwilioState(account_sid=TWILIO_SID, auth_token=TWILIO_TOKEN)
        twilio.faults = TwilioFaults(send_callbacks=False)
        patients = max(options.runs, options.batch)
        openids = {n: f"oFault{n:05d}" for n in range(patients) if n % 2 == 0}
        wechat = WeChatState(
            appid=WECHAT_APPID,
            secret=WECHAT_SECRET,
            server_token="faultcampaigntoken",
            event_url=None,
            followers=set(openids.values()),
        )
        async with (
            serve(create_twilio(twilio)) as twilio_url,
            serve(create_wechat(wechat)) as wechat_url,
            payment_world(
                infra.client,
                infra.sessions,
                infra.database_url,
                "fault-campaign",
                over_loopback=True,
                library=True,
                message_channels="wechat,sms",
                twilio_account_sid=TWILIO_SID,
                twilio_auth_token=TWILIO_TOKEN,
                twilio_api_base_url=twilio_url,
                wechat_appid=WECHAT_APPID,
                wechat_secret=WECHAT_SECRET,
                wechat_token="faultcampaigntoken",
                wechat_api_base_url=wechat_url,
                wechat_template_ids=TEMPLATES,
                channel_timeout_seconds=CHANNEL_TIMEOUT,
            ) as world,
        ):
            # WeChat reports each template send to our server URL (the record of a send whose
            # answer was lost).
            wechat.event_url = f"{world.api_url}/webhooks/wechat"
            await _prepare(infra, world, options, openids)
            worker_env = {
                **settings_env(world.settings),
                "CAREPATH_TEMPORAL_ADDRESS": infra.temporal.address,
                # INFO: the kill schedule waits for the worker's "worker started" line.
                "CAREPATH_LOG_LEVEL": "INFO",
            }
            fork = None if options.cold_starts else WorkerFork(worker_env, infra.workdir)
            workers = [
                KilledOften(f"worker{n}", ["-m", "workers.main"], worker_env, infra.workdir, fork)
                for n in range(1, options.workers + 1)
            ]
            for worker in workers:
                worker.start()
            injectors = [
                twilio.random_faults,
                wechat.random_faults,
                world.his.query_faults,
            ]
            try:
                figures = await _campaign(infra, world, options, tally, workers, twilio, wechat)
            except BaseException:
                traceback.print_exc()
                for worker in workers:
                    print(worker.process.tail() if worker.process else "", flush=True)
                _exit_soon(infra, workers, 2, after=30)
                raise
            else:
                _exit_soon(infra, workers, figures, after=120)
            finally:
                for worker in workers:
                    worker.stop()
                if fork is not None:
                    fork.close()
                for injector in injectors:
                    injector.release()
    return figures


def _exit_soon(
    infra: RestartableInfra, workers: list[KilledOften], code: int, after: float
) -> None:
    """The figures are out: if taking everything down hangs (a server waiting on a connection
    that will never finish), the processes this run started are stopped and it exits anyway."""

    def stop_and_exit() -> None:
        for worker in workers:
            worker.stop()
        infra.temporal.stop()
        with contextlib.suppress(Exception):
            infra.postgres.stop()
        shutil.rmtree(infra.postgres.data_dir.parent, ignore_errors=True)
        shutil.rmtree(infra.workdir, ignore_errors=True)
        sys.stdout.flush()
        os._exit(code)

    timer = threading.Timer(after, stop_and_exit)
    timer.daemon = True
    timer.start()


async def _prepare(
    infra: RestartableInfra, world: PayWorld, options: Options, openids: dict[int, str]
) -> None:
    """The hospital's review deadline, the campaign's patients (in the HIS, and in our database
    with their WeChat binding for half of them), and the simulators' random faults."""
    async with transaction(infra.sessions) as session:
        hospital = await session.get(Hospital, HOSPITAL)
        assert hospital is not None
        config = HospitalConfig.model_validate(hospital.config)
        config = config.model_copy(
            update={
                "prescriptions": PrescriptionConfig(
                    review=ReviewPolicy(deadline_seconds=options.rx_deadline)
                )
            }
        )
        hospital.config = config.model_dump(mode="json")
        for n in range(max(options.runs, options.batch)):
            patient_id, phone = f"F{n:05d}", f"139{n:08d}"
            world.his.patients[patient_id] = SimPatient(
                patient_id=patient_id, name=f"患者{n}", phone=phone
            )
            session.add(
                Patient(
                    his_patient_id=patient_id,
                    name=f"患者{n}",
                    phone=phone,
                    wechat_openid=openids.get(n),
                    preferred_channel="wechat" if n in openids else "sms",
                )
            )


def _plan(options: Options, seed: int, hang: float) -> dict[str, Any]:
    # Half fail before acting, half act and lose the answer: ``fault_rate`` of calls in all.
    half = options.fault_rate / 2
    return FaultPlan(
        seed=seed,
        error_rate=half,
        lost_answer_rate=half / (1 - half),
        hang_seconds=hang,
    ).model_dump()


async def _campaign(
    infra: RestartableInfra,
    world: PayWorld,
    options: Options,
    tally: Tally,
    workers: list[KilledOften],
    twilio: TwilioState,
    wechat: WeChatState,
) -> int:
    async with httpx.AsyncClient(timeout=60) as http:
        channel_plan = _plan(options, options.seed, CHANNEL_TIMEOUT + 2)
        twilio.random_faults.replace(FaultPlan.model_validate(channel_plan))
        wechat.random_faults.replace(FaultPlan.model_validate(_plan(options, options.seed + 1, 5)))
        world.his.query_faults.replace(
            FaultPlan.model_validate(_plan(options, options.seed + 2, 5))
        )
        half = options.fault_rate / 2
        chaos = Chaos(error_rate=half, lost_answer_rate=half / (1 - half))
        load_done = asyncio.Event()
        faults = asyncio.create_task(_faults(infra, options, tally, workers, load_done))
        try:
            # One failing driver stops the others (a TaskGroup cancels its siblings).
            async with asyncio.TaskGroup() as load:
                payments_task = load.create_task(
                    run_orders(
                        world,
                        options.payments,
                        seed=options.seed,
                        chaos=chaos,
                        concurrency=10,
                        settle_within=options.settle_within,
                        calm=False,
                        # The API may answer 5xx for long stretches while the database or
                        # Temporal restarts; the figures, not the drivers, judge the outcome.
                        outage_seconds=options.settle_within,
                        poll_every=1.0,
                    )
                )
                load.create_task(_discharges(http, world, options, tally))
                load.create_task(_prescriptions(http, world, options, tally))
                load.create_task(_batch_notice(http, world, options, tally))
                load.create_task(_pushes(http, world, options, tally))
            payments = payments_task.result()
        except BaseException:
            faults.cancel()
            raise
        finally:
            load_done.set()
            with contextlib.suppress(asyncio.CancelledError):
                await faults
        # The faults stop: every party behaves again, and one worker stays up.
        for injector in (twilio.random_faults, wechat.random_faults, world.his.query_faults):
            injector.replace(FaultPlan(hang_seconds=injector.plan.hang_seconds))
        calm_parties(world)
        faults_ended = tally.at()
        settled = await _settle(world, options, tally)
        figures = await _figures(world, twilio, wechat, tally)
    injected = {
        "wechat": dict(wechat.random_faults.injected),
        "twilio": dict(twilio.random_faults.injected),
        "his": dict(world.his.query_faults.injected),
        **payments.injected,
    }
    total_injected = sum(n for kinds in injected.values() for n in kinds.values())
    orders = payments.order_status
    print(
        f"fault campaign: {len(tally.runs)} pathway runs, {options.payments} payments, "
        f"{len(tally.prescriptions)} prescriptions; "
        f"{options.workers} worker processes, each SIGKILLed {options.kill_every:g}s after it "
        f"starts serving ({'started from nothing' if options.cold_starts else 'forked'}), "
        f"simulators failing {options.fault_rate:.0%} of calls (half 5xx, half lost answers), "
        f"one plan day = {options.day_seconds:g}s, review deadline {options.rx_deadline}s"
    )
    lines = [
        ("wall time", f"{tally.at():.1f} s (faults for {faults_ended:.1f} s, then settling)"),
        ("settled", "yes" if settled else f"NO: gave up after {options.settle_within:g} s"),
        (
            "worker kills",
            f"{sum(w.kills for w in workers)} "
            f"(worker generations: {sum(w.generation for w in workers)})",
        ),
        (
            "worker start",
            f"{_spread([t for w in workers for t in w.start_seconds])} s from start to serving",
        ),
        ("server restarts", ", ".join(tally.restarts) or "none"),
        ("faults injected", f"{total_injected} {injected}"),
        ("HIS redeliveries", f"{tally.redeliveries} discharge events redelivered until accepted"),
        ("runs", f"{figures['runs_completed']} completed of {len(tally.runs)}"),
        ("invitations", f"{figures['invitations']}"),
        ("invitation lateness", f"{figures['lateness']} after due (s)"),
        (
            "past their window",
            f"{figures['past_window']}: invitations the compressed clock made late, not lost",
        ),
        ("payments", f"{dict(orders)}; refunds {dict(payments.refund_status)}"),
        (
            "prescriptions",
            f"{figures['rx_concluded']} concluded of {len(tally.prescriptions)} "
            f"({tally.pharmacist_decisions} by a pharmacist, the rest at the deadline)",
        ),
        ("batch notice", f"{figures['batch']}"),
        ("pushes", f"{figures['pushes']}"),
        ("messages at providers", f"{figures['at_providers']}"),
        ("lost steps", f"{figures['lost_steps']}  {figures['lost_detail']}"),
        ("duplicate messages", f"{figures['duplicate_messages']}  {figures['duplicate_detail']}"),
        ("double charges", f"{figures['double_charges']}"),
        ("unbalanced books", f"{figures['unbalanced_books']}  {figures['books_detail']}"),
    ]
    for label, value in lines:
        print(f"  {label:<22} {value}")
    for story in figures["duplicate_stories"]:
        print(story)
    bad = [
        figures[k]
        for k in ("lost_steps", "duplicate_messages", "double_charges", "unbalanced_books")
    ]
    return 0 if not any(bad) else 1


async def _faults(
    infra: RestartableInfra,
    options: Options,
    tally: Tally,
    workers: list[KilledOften],
    load_done: asyncio.Event,
) -> None:
    """The fault schedule: each worker process killed ``kill_every`` seconds after it starts
    serving, and started again; the Temporal server and PostgreSQL restarted once each at their
    times (at once if the load is done before). Until the load is done and both restarts have
    happened; leaves the workers running."""
    restarted = asyncio.Event()

    async def restarts() -> None:
        due = sorted(
            [(options.temporal_restart_at, "Temporal"), (options.postgres_restart_at, "PostgreSQL")]
        )
        for at, name in due:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(load_done.wait()), max(0, at - tally.at()))
            start = tally.at()
            if name == "Temporal":
                await infra.temporal.restart()
            else:
                await asyncio.to_thread(infra.postgres.restart)
            tally.restarts.append(f"{name} at {start:.0f}s (down {tally.at() - start:.1f}s)")
        restarted.set()

    async def kills(worker: KilledOften) -> None:
        while not (load_done.is_set() and restarted.is_set()):
            await worker.started()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(load_done.wait()), options.kill_every)
            worker.kill_and_restart()
            if load_done.is_set():
                await restarted.wait()

    await asyncio.gather(restarts(), *(kills(worker) for worker in workers))


async def _discharges(
    http: httpx.AsyncClient, world: PayWorld, options: Options, tally: Tally
) -> None:
    gate = asyncio.Semaphore(8)
    speedup = 86400 / options.day_seconds
    his_url = world.settings.his_base_url

    async def one(n: int) -> None:
        if options.discharge_rate:
            # Paced as a hospital discharges: a ward's day, not a thousand patients at once.
            await asyncio.sleep(n / options.discharge_rate)
        async with gate:
            workflow_id, again = await discharge_until_accepted(
                http, his_url, f"F{n:05d}", speedup, within=options.settle_within, **WARD
            )
            tally.runs.append(workflow_id)
            tally.redeliveries += again

    await asyncio.gather(*(one(n) for n in range(options.runs)))


async def _retry_5xx(call: Callable[[], Awaitable[httpx.Response]], tally: Tally) -> httpx.Response:
    """As the HIS's integration engine: the same request again while the platform is down."""
    for _ in range(600):
        try:
            response = await call()
        except httpx.TransportError:
            tally.api_retries += 1
            await asyncio.sleep(0.5)
            continue
        if response.status_code < 500:
            return response
        tally.api_retries += 1
        await asyncio.sleep(0.5)
    return response


async def _batch_notice(
    http: httpx.AsyncClient, world: PayWorld, options: Options, tally: Tally
) -> None:
    """A nurse's notice to the first ``batch`` patients, once the workers are being killed."""
    if not options.batch:
        return
    nurse = await add_staff(world.sessions, StaffRole.NURSE, "orthopedics", name="护士")
    await asyncio.sleep(BATCH_AT)  # a point in the load's schedule, not a wait for anything
    body = {
        "name": "骨科门诊停诊通知",
        "template": "notice_generic",
        "variables": {"title": "停诊通知", "content": BATCH_TEXT},
        "recipients": {"patient_ids": [f"F{n:05d}" for n in range(options.batch)]},
    }
    # Retried only on an answer saying it failed: a batch has no idempotency key, so a request
    # whose answer was lost could have created one.
    for _ in range(600):
        response = await http.post(
            f"{world.api_url}/api/messages/batches",
            json=body,
            headers={"Authorization": f"Bearer {nurse}"},
        )
        if response.status_code < 500:
            break
        tally.api_retries += 1
        await asyncio.sleep(0.5)
    assert response.status_code == 202, response.text
    tally.batch_id = response.json()["id"]


async def _pushes(http: httpx.AsyncClient, world: PayWorld, options: Options, tally: Tally) -> None:
    """Another system's notices, one push at a time, evenly over the faults (until after
    PostgreSQL's restart); each is retried under its key while the platform answers 5xx."""
    if not options.pushes:
        return
    token = await add_staff(world.sessions, StaffRole.INTEGRATION, None, name="预约系统")
    patients = max(options.runs, options.batch)
    every = (options.postgres_restart_at + 20) / options.pushes

    async def one(n: int) -> None:
        body = {
            "idempotency_key": f"campaign-push-{n}",
            "to": {"patient_id": f"F{n % patients:05d}"},
            "template": "notice_generic",
            "variables": {"title": "复诊提醒", "content": f"第{n}号通知：请按时复诊。"},
        }
        response = await _retry_5xx(
            lambda: http.post(
                f"{world.api_url}/api/messages",
                json=body,
                headers={"Authorization": f"Bearer {token}"},
            ),
            tally,
        )
        assert response.status_code in (200, 202), response.text
        tally.pushes.append(response.json()["message_id"])

    async with asyncio.TaskGroup() as pushing:
        for n in range(options.pushes):
            pushing.create_task(one(n))
            await asyncio.sleep(every)  # the load's schedule, not a wait for anything


async def _prescriptions(
    http: httpx.AsyncClient, world: PayWorld, options: Options, tally: Tally
) -> None:
    pharmacist = await add_staff(world.sessions, StaffRole.PHARMACIST, "tcm", name="药师")
    headers = {"Authorization": f"Bearer {pharmacist}"}
    gate = asyncio.Semaphore(4)
    rng = random.Random(options.seed)

    async def one(n: int, reviewed: bool) -> None:
        async with gate:
            body = prescription(f"RXF{n:05d}{uuid.uuid4().hex[:4].upper()}", hospital_code=HOSPITAL)
            raw = json.dumps(body, ensure_ascii=False).encode()
            response = await _retry_5xx(
                lambda: http.post(
                    f"{world.api_url}/webhooks/his/prescriptions",
                    content=raw,
                    headers=signed_headers(TEST_WEBHOOK_SECRET, raw),
                ),
                tally,
            )
            assert response.status_code in (200, 202), response.text
            tally.prescriptions.append(body["prescription_no"])
        if not reviewed:
            return
        # A pharmacist approves it from the review queue, if the deadline has not come first.
        row = await _eventually_row(world, body["prescription_no"])
        decided = await _retry_5xx(
            lambda: http.post(
                f"{world.api_url}/api/prescriptions/{row.id}/decision",
                json={"round": row.round, "outcome": "approve"},
                headers=headers,
            ),
            tally,
        )
        if decided.status_code == 200:
            tally.pharmacist_decisions += 1

    await asyncio.gather(
        *(one(n, reviewed=rng.random() < 0.3) for n in range(options.prescriptions))
    )


async def _eventually_row(world: PayWorld, number: str) -> Prescription:
    while True:
        with contextlib.suppress(OSError, SQLAlchemyError):
            async with world.sessions() as session:
                found = await session.exec(
                    select(Prescription).where(Prescription.prescription_no == number)
                )
                row = found.first()
                if row is not None:
                    return row
        await asyncio.sleep(0.5)


async def _settle(world: PayWorld, options: Options, tally: Tally) -> bool:
    """Polls until every run has completed, every prescription has been concluded, in our
    database and at the HIS, and the batch notice has finished; False if that has not happened
    within ``settle_within``."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + options.settle_within
    runs, numbers = set(tally.runs), set(tally.prescriptions)
    batch_done = tally.batch_id is None
    while loop.time() < give_up:
        with contextlib.suppress(OSError, SQLAlchemyError):
            async with world.sessions() as session:
                done = await session.exec(
                    select(PathwayRun.workflow_id).where(
                        col(PathwayRun.workflow_id).in_(runs), PathwayRun.status != "running"
                    )
                )
                runs -= set(done.all())
                approved = await session.exec(
                    select(Prescription.prescription_no).where(
                        col(Prescription.prescription_no).in_(numbers),
                        Prescription.status != "reviewing",
                    )
                )
                numbers -= set(approved.all()) & _concluded_at_his(world)
                if not batch_done:
                    batch = await session.get(MessageBatch, tally.batch_id)
                    batch_done = batch is not None and batch.status == "completed"
        if not runs and not numbers and batch_done:
            return True
        await asyncio.sleep(1.0)
    return False


def _concluded_at_his(world: PayWorld) -> set[str]:
    return {
        c["prescription_no"]
        for c in world.his.prescription_callbacks.values()
        if c.get("event") == "concluded"
    }


def _link(text: str | None) -> str | None:
    if not text:
        return None
    return next((w for w in text.replace("：", " ").split() if "/p/" in w), None)


# A message as a provider received it: by its link; a campaign notice (a push, or the batch
# notice to one patient) by what it says and to whom, whichever channel carried it, so that one
# sent by WeChat and then by SMS counts twice; else by its recipient and text.
def _twilio_key(m: SimMessage) -> str:
    return _link(m.body) or _notice_key(m.body, m.to) or f"sms:{m.to}:{m.body}"


def _wechat_key(w: SentTemplate) -> str:
    text = json.dumps(w.data, sort_keys=True, ensure_ascii=False)
    return _link(w.url) or _notice_key(text, w.touser) or f"wechat:{w.touser}:{text}"


def _notice_key(text: str | None, recipient: str | None) -> str | None:
    """The campaign's pushes by their number; its batch notice by its patient (the last five
    digits of the campaign's phone numbers and openids)."""
    if not text:
        return None
    if pushed := re.search(r"第(\d+)号通知", text):
        return f"push:{pushed[1]}"
    if BATCH_TEXT in text and recipient:
        return f"batch:{recipient[-5:]}"
    return None


async def _figures(
    world: PayWorld, twilio: TwilioState, wechat: WeChatState, tally: Tally
) -> dict[str, Any]:
    async with world.sessions() as session:
        runs = {
            r.workflow_id: r
            for r in (
                await session.exec(
                    select(PathwayRun).where(col(PathwayRun.workflow_id).in_(tally.runs))
                )
            ).all()
        }
        tasks = list(
            (
                await session.exec(
                    select(CareTask).where(col(CareTask.workflow_id).in_(tally.runs))
                )
            ).all()
        )
        messages = list((await session.exec(select(OutboundMessage))).all())
        batch = await session.get(MessageBatch, tally.batch_id) if tally.batch_id else None
        batch_patients = batch.recipients if batch else []
        orders = list((await session.exec(select(PaymentOrder))).all())
        refunds = list((await session.exec(select(PaymentRefund))).all())
        ledger = list((await session.exec(select(LedgerEntryRow))).all())
        prescriptions = {
            p.prescription_no: p
            for p in (
                await session.exec(
                    select(Prescription).where(
                        col(Prescription.prescription_no).in_(tally.prescriptions)
                    )
                )
            ).all()
        }

    # --- what the providers received, by message ---------------------------------------------
    def sim_key(text: str | None, fallback: str) -> str:
        return _link(text) or fallback

    received: Counter[str] = Counter()
    provider_of: dict[str, Counter[str]] = defaultdict(Counter)
    for m in twilio.messages.values():
        key = _twilio_key(m)
        received[key] += 1
        provider_of[key]["twilio"] += 1
    for w in wechat.sent:
        key = _wechat_key(w)
        received[key] += 1
        provider_of[key]["wechat"] += 1
    sent_keys: Counter[str] = Counter()
    key_of: dict[str, str] = {}
    for message in messages:
        if message.channel == "sms":
            # recipient_phone is E.164 already, as Twilio's "To" is.
            key = sim_key(
                message.body,
                _notice_key(message.body, message.recipient_phone)
                or f"sms:{message.recipient_phone}:{message.body}",
            )
        elif message.channel == "wechat":
            data = (message.wechat_payload or {}).get("data")
            text = json.dumps(data, sort_keys=True, ensure_ascii=False)
            key = sim_key(
                (message.wechat_payload or {}).get("url") or message.body,
                _notice_key(text, message.recipient_openid)
                or f"wechat:{message.recipient_openid}:{text}",
            )
        else:
            continue
        key_of[message.id] = key
        sent_keys[key] += 1
    duplicates: Counter[str] = Counter()
    duplicated: list[str] = []
    for key, n in received.items():
        extra = n - sent_keys.get(key, 0)
        if n > 1 and extra > 0:
            duplicates["+".join(sorted(provider_of[key]))] += extra
            duplicated.append(key)
    # The first 20: enough to read a cause from, where a fault repeated would print hundreds.
    stories = await _duplicate_stories(world, twilio, wechat, duplicated[:20], key_of)
    if len(duplicated) > 20:
        stories.append(f"  ... and {len(duplicated) - 20} more duplicated messages")

    # --- lost steps -----------------------------------------------------------------------------
    by_task: dict[str, OutboundMessage] = {
        m.task_id: m for m in messages if m.task_id and m.idempotency_key.endswith("/msg/0")
    }
    by_run: dict[str, dict[str, CareTask]] = defaultdict(dict)
    for task in tasks:
        by_run[task.workflow_id][task.step_id] = task
    lost: Counter[str] = Counter()
    # Recorded as sent, received by no provider: how each came about is printed.
    unreceived: list[str] = []
    invitations: Counter[str] = Counter()
    past_window: list[float] = []
    for workflow_id in tally.runs:
        run = runs.get(workflow_id)
        if run is None:
            lost["run never projected"] += 1
            continue
        if run.status != "completed":
            lost[f"run {run.status}"] += 1
        for step in INVITATIONS:
            step_task = by_run[workflow_id].get(step)
            invite = by_task.get(step_task.id) if step_task else None
            stale = _late_past_window(step_task, invite)
            if step_task is None:
                lost["invitation task missing"] += 1
            elif stale is not None and step_task.status == "not_needed":
                past_window.append(stale)
            elif step_task.status not in SENT_TASK:
                lost[f"invitation {step_task.status}: {step_task.reason}"] += 1
            elif invite is None or invite.status not in ("sent", "delivered"):
                lost["invitation without a sent message"] += 1
            elif received.get(key_of.get(invite.id, ""), 0) == 0:
                lost["invitation sent but at no provider"] += 1
                unreceived.append(invite.id)
            else:
                invitations[invite.channel or "?"] += 1

    def reached(message: OutboundMessage | None, what: str, reached_by: Counter[str]) -> None:
        if message is None:
            lost[f"{what} never stored"] += 1
        elif message.status not in ("sent", "delivered"):
            lost[f"{what} {message.status}: {message.failure_reason}"] += 1
        elif received.get(key_of.get(message.id, ""), 0) == 0:
            lost[f"{what} sent but at no provider"] += 1
            unreceived.append(message.id)
        else:
            reached_by[message.channel or "?"] += 1

    batch_sent: Counter[str] = Counter()
    if tally.batch_id is not None:
        notices = {m.patient_id: m for m in messages if m.batch_id == tally.batch_id}
        for patient_id in batch_patients:
            reached(notices.get(patient_id), "batch notice", batch_sent)
    pushed: Counter[str] = Counter()
    by_id = {m.id: m for m in messages}
    for message_id in tally.pushes:
        reached(by_id.get(message_id), "push", pushed)
    for order in orders:
        if order.status not in ORDER_DONE:
            lost[f"order {order.status}"] += 1
    for refund in refunds:
        if refund.status not in REFUND_DONE:
            lost[f"refund {refund.status}"] += 1
    concluded = _concluded_at_his(world)
    rx_concluded = 0
    for number in tally.prescriptions:
        row = prescriptions.get(number)
        if row is None:
            lost["prescription never recorded"] += 1
        elif row.status == "reviewing":
            lost["prescription still in review"] += 1
        elif number not in concluded:
            lost["prescription conclusion never reached the HIS"] += 1
        else:
            rx_concluded += 1

    # How late each invitation was composed after it fell due, in real seconds: with the plan
    # clock compressed, a step's validity is seconds long, and an invitation composed after it
    # is (rightly) not sent.
    lateness = sorted(
        (invite.scheduled_for - task.due_at).total_seconds()
        for task in tasks
        if task.step_id in INVITATIONS and (invite := by_task.get(task.id)) is not None
    )

    # --- money ------------------------------------------------------------------------------
    double, unbalanced, books_detail = _books(world, orders, refunds, ledger)

    return {
        "runs_completed": sum(1 for r in runs.values() if r.status == "completed"),
        "invitations": f"{sum(invitations.values())} delivered {dict(invitations)} "
        f"of {3 * len(tally.runs)} due",
        "rx_concluded": rx_concluded,
        "batch": f"{sum(batch_sent.values())} reached {dict(batch_sent)} of {len(batch_patients)}"
        f" recipients, batch {batch.status if batch else 'never created'}",
        "pushes": f"{sum(pushed.values())} reached {dict(pushed)} of {len(tally.pushes)} accepted",
        "at_providers": f"WeChat {len(wechat.sent)}, Twilio {len(twilio.messages)}",
        "lateness": _spread(lateness),
        "lost_steps": sum(lost.values()),
        "lost_detail": dict(lost) if lost else "",
        "duplicate_messages": sum(duplicates.values()),
        "duplicate_detail": dict(duplicates) if duplicates else "",
        "duplicate_stories": stories + await _lost_stories(world, unreceived[:20]),
        "past_window": f"{len(past_window)} (composed {_spread(past_window)} s after due)"
        if past_window
        else "0",
        "double_charges": double,
        "unbalanced_books": unbalanced,
        "books_detail": books_detail,
    }


# What an invitation's step is worth in real time (pathways/library/inpatient-discharge.yaml).
VALIDITY = timedelta(days=5)


async def _duplicate_stories(
    world: PayWorld,
    twilio: TwilioState,
    wechat: WeChatState,
    keys: list[str],
    key_of: dict[str, str],
) -> list[str]:
    """For each message received more than once: when each provider took each copy (and, for
    WeChat, what became of its report), and what our attempts recorded: what a duplicate's cause
    is read from, since the campaign's database goes when it ends."""
    stories: list[str] = []
    events = {e["msgid"]: e for e in wechat.events}
    for key in keys:
        # (when the provider took it, its id, what happened, when its report was answered)
        copies: list[tuple[float, str, str, float | None]] = []
        for w in wechat.sent:
            if _wechat_key(w) == key:
                event = events.get(w.msgid, {})
                what = f"wechat took msgid {w.msgid}; its report answered {event.get('response')}"
                copies.append((w.sent_at, str(w.msgid), what, event.get("at")))
        for m in twilio.messages.values():
            if _twilio_key(m) == key:
                what = f"twilio took {m.sid} ({m.status})"
                copies.append((m.date_created.timestamp(), m.sid, what, None))
        if not copies:
            continue
        copies.sort()
        first = copies[0][0]

        def at(t: float, first: float = first) -> str:
            return f"+{t - first:.1f}s"

        message_ids = [m for m, k in key_of.items() if k == key]
        async with world.sessions() as session:
            attempts = (
                await session.exec(
                    select(MessageAttempt).where(col(MessageAttempt.message_id).in_(message_ids))
                )
            ).all()
            reports = (
                await session.exec(
                    select(DeliveryReport).where(
                        col(DeliveryReport.provider_message_id).in_([c[1] for c in copies])
                    )
                )
            ).all()
            ours = (
                await session.exec(
                    select(OutboundMessage).where(col(OutboundMessage.id).in_(message_ids))
                )
            ).all()
        lines = [
            f"  duplicate {key} ({len(message_ids)} message(s) of ours: "
            + ", ".join(f"{m.idempotency_key} {m.status}" for m in ours)
            + ")"
        ]
        for t, _, what, answered in copies:
            lines.append(f"    {at(t)} {what}" + (f" at {at(answered)}" if answered else ""))
        for r in reports:
            lines.append(
                f"    {at(r.received_at.timestamp())} we stored the report of "
                f"{r.provider_message_id} ({r.provider_status})"
            )
        for a in attempts:
            lines.append(
                f"    {at(a.created_at.timestamp())} our {a.channel} attempt began: {a.tries} "
                f"tries, last at {at(a.updated_at.timestamp())}, status {a.status}, provider id "
                f"{a.provider_message_id}, last error {a.error_code}"
            )
        lines += await _recipient_timeline(world, message_ids, first)
        stories.append("\n".join(lines))
    return stories


async def _lost_stories(world: PayWorld, message_ids: list[str]) -> list[str]:
    """For each message we recorded as sent that no provider received: its attempts and the
    sends and reports of its recipient around it."""
    stories = []
    async with world.sessions() as session:
        ours = (
            await session.exec(
                select(OutboundMessage).where(col(OutboundMessage.id).in_(message_ids))
            )
        ).all()
    for message in ours:
        first = (message.sent_at or message.created_at).timestamp()
        stories.append(
            "\n".join(
                [
                    f"  lost {message.idempotency_key} ({message.status} by {message.channel}, "
                    f"sent at +0.0s)",
                    *await _recipient_timeline(world, [message.id], first),
                ]
            )
        )
    return stories


async def _recipient_timeline(world: PayWorld, message_ids: list[str], first: float) -> list[str]:
    """Every send to these messages' recipients and every report about them, in time order:
    which send's report another claimed, read from our own records."""
    async with world.sessions() as session:
        indexes = set(
            (
                await session.exec(
                    select(MessageAttempt.recipient_index).where(
                        col(MessageAttempt.message_id).in_(message_ids)
                    )
                )
            ).all()
        ) - {None}
        attempts = (
            await session.exec(
                select(MessageAttempt, OutboundMessage.idempotency_key)
                .join(OutboundMessage, col(OutboundMessage.id) == MessageAttempt.message_id)
                .where(col(MessageAttempt.recipient_index).in_(indexes))
            )
        ).all()
        reports = (
            await session.exec(
                select(DeliveryReport).where(col(DeliveryReport.recipient_index).in_(indexes))
            )
        ).all()
    events = [
        (
            a.created_at.timestamp(),
            f"{a.channel} attempt of {key}: {a.tries} tries, last at "
            f"+{a.updated_at.timestamp() - first:.1f}s, {a.status}, provider id "
            f"{a.provider_message_id}, last error {a.error_code}",
        )
        for a, key in attempts
    ] + [
        (
            r.received_at.timestamp(),
            f"report of {r.provider_message_id} ({r.provider_status}) received",
        )
        for r in reports
    ]
    return [f"      recipient: +{t - first:.1f}s {what}" for t, what in sorted(events)]


def _late_past_window(task: CareTask | None, invite: OutboundMessage | None) -> float | None:
    """How late (real seconds) an invitation was composed, if it was then not sent only because
    that was past its validity, which the compressed plan clock shrinks to seconds (one plan day
    in ``--day-seconds``): composed a minute late, it would have gone out in real time, where
    the validity is five days. A step not composed at all is lost, not late."""
    if task is None or invite is None or invite.status != "suppressed":
        return None
    if not (invite.failure_reason or "").startswith("已过有效时间"):
        return None
    late = invite.scheduled_for - task.due_at
    return late.total_seconds() if late < VALIDITY else None


def _spread(unsorted: list[float]) -> str:
    if not unsorted:
        return "none"
    values = sorted(unsorted)

    def at(q: float) -> float:
        return values[min(len(values) - 1, int(q * len(values)))]

    return f"median {at(0.5):.1f}, p95 {at(0.95):.1f}, max {values[-1]:.1f}"


def _books(
    world: PayWorld,
    orders: list[PaymentOrder],
    refunds: list[PaymentRefund],
    ledger: list[LedgerEntryRow],
) -> tuple[int, int, str]:
    """(orders charged twice, unbalanced orders (+1 if the parties' totals differ), detail)."""
    holds = {"settled", "partially_refunded", "refunded"}
    done: dict[str, list[PaymentRefund]] = defaultdict(list)
    for refund in refunds:
        if refund.status == "succeeded":
            done[refund.order_id].append(refund)
    entries: dict[str, list[LedgerEntryRow]] = defaultdict(list)
    for entry in ledger:
        entries[entry.order_id].append(entry)
    provider_refunds: dict[str, int] = defaultdict(int)
    for r in world.provider.refunds.values():
        if r.status != "ABNORMAL":
            provider_refunds[r.out_trade_no] += r.amount_fen
    settlements: dict[str, list[Any]] = defaultdict(list)
    for s in world.insurance.settlements.values():
        settlements[s.order_no].append(s)
    # What the HIS holds per order number: its settlement net of its refunds.
    his_net: dict[str, int] = defaultdict(int)
    for order_no, settled in world.charging.settlements.items():
        his_net[order_no] += settled.insurance_fen + settled.self_pay_fen
    for his_refund in world.charging.refunds.values():
        his_net[his_refund.order_no] -= his_refund.amount_fen
    ours_at_his: set[str] = set()
    off_at_his: list[str] = []

    double = unbalanced = 0
    why: Counter[str] = Counter()
    for order in orders:
        mine = done[order.id]
        holding = order.status in holds
        # What the order says it holds, net of its refunds, per party.
        self_pay = (order.self_pay_fen or 0 if holding else 0) - sum(
            r.self_pay_fen or 0 for r in mine
        )
        insurance = (order.insurance_fen or 0 if holding else 0) - sum(
            r.insurance_fen or 0 for r in mine
        )
        sign = {"payment": 1, "settle": 1, "refund": -1, "cancel": -1}
        ledger_provider = sum(
            sign[e.kind] * e.amount_fen for e in entries[order.id] if e.party == "provider"
        )
        ledger_insurance = sum(
            sign[e.kind] * e.amount_fen for e in entries[order.id] if e.party == "insurance"
        )
        trade = world.provider.trades.get(order.out_trade_no or "")
        paid = trade.amount_fen if trade is not None and trade.transaction_id else 0
        provider_net = paid - provider_refunds[order.out_trade_no or ""]
        his_nos = {order.his_order_no, order.live_his_order_no} - {None}
        live = [s for no in his_nos for s in settlements[no or ""] if s.status == "settled"]
        centre_net = sum(
            s.amount_fen - (s.refunded_fen if s.status == "settled" else 0)
            for no in his_nos
            for s in settlements[no or ""]
            if s.status == "settled"
        )
        charged_twice = (
            provider_refunds[order.out_trade_no or ""] > paid
            or len(live) > 1
            or any(s.refunded_fen > s.amount_fen for s in live)
            or order.refunded_fen > order.amount_fen
        )
        if charged_twice:
            double += 1
        ours_at_his.update(no for no in his_nos if no)
        at_his = sum(his_net.get(no or "", 0) for no in his_nos)
        ours = (order.amount_fen if holding else 0) - sum(r.amount_fen for r in mine)
        if at_his != ours:
            off_at_his.append(
                f"{order.id} {order.status}/{order.saga_status}: HIS {at_his}, ours {ours}"
            )
        balanced = (
            self_pay == ledger_provider == provider_net
            and insurance == ledger_insurance == centre_net
            and at_his == ours
        )
        if not balanced:
            unbalanced += 1
            if self_pay != ledger_provider or insurance != ledger_insurance:
                why["ledger vs order"] += 1
            if ledger_provider != provider_net:
                why["ledger vs provider"] += 1
            if ledger_insurance != centre_net:
                why["ledger vs insurance centre"] += 1
            if at_his != ours:
                why["order vs HIS"] += 1
    for order_no, net in his_net.items():
        if net and order_no not in ours_at_his:
            off_at_his.append(f"HIS order {order_no} holds {net} for no order of ours")
    books = world.provider.ledger(), world.insurance.ledger(), world.charging.ledger()
    provider, centre, his = books
    ours_self = sum((o.self_pay_fen or 0) for o in orders if o.status in holds) - sum(
        r.self_pay_fen or 0 for rs in done.values() for r in rs
    )
    ours_ins = sum((o.insurance_fen or 0) for o in orders if o.status in holds) - sum(
        r.insurance_fen or 0 for rs in done.values() for r in rs
    )
    ours_all = sum(o.amount_fen for o in orders if o.status in holds) - sum(
        r.amount_fen for rs in done.values() for r in rs
    )
    totals_agree = (
        provider["net_fen"] == ours_self
        and centre["net_fen"] == ours_ins
        and his["settled_fen"] - his["refunded_fen"] == ours_all
    )
    if not totals_agree:
        unbalanced += 1
        why["party totals"] += 1
    detail = (
        f"(net fen: provider {provider['net_fen']} / ours {ours_self}; insurance centre "
        f"{centre['net_fen']} / ours {ours_ins}; HIS {his['settled_fen'] - his['refunded_fen']}"
        f" / ours {ours_all})"
    )
    if why:
        detail = f"{dict(why)} {detail}"
    if off_at_his:
        detail += "; at the HIS: " + "; ".join(off_at_his[:10])
    return double, unbalanced, detail


QUICK = {"runs": 50, "payments": 20, "prescriptions": 20, "batch": 300, "pushes": 150}


def parse(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--payments", type=int, default=200)
    parser.add_argument("--prescriptions", type=int, default=200)
    parser.add_argument(
        "--batch", type=int, default=2000, help="recipients of one batch notice (0: none)"
    )
    parser.add_argument(
        "--pushes", type=int, default=500, help="notices pushed one by one by another system"
    )
    parser.add_argument("--kill-every", type=float, default=5.0, help="seconds between kills")
    parser.add_argument(
        "--workers", type=int, default=1, help="worker processes, each killed every few seconds"
    )
    parser.add_argument(
        "--cold-starts",
        action="store_true",
        help="start each worker from nothing (seconds of imports) rather than forked",
    )
    parser.add_argument("--fault-rate", type=float, default=0.2)
    parser.add_argument("--day-seconds", type=float, default=None, help="one plan day")
    parser.add_argument(
        "--discharge-rate",
        type=float,
        default=0.0,
        help="discharges per second (0: all at once, eight at a time)",
    )
    parser.add_argument("--rx-deadline", type=int, default=None, help="review deadline (s)")
    parser.add_argument("--temporal-restart-at", type=float, default=None)
    parser.add_argument("--postgres-restart-at", type=float, default=None)
    parser.add_argument("--settle-within", type=float, default=3600)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="50 runs, 20 payments, 20 prescriptions, a batch to 300, 150 pushes",
    )
    args = parser.parse_args(argv)
    if args.quick:
        for name, value in QUICK.items():
            setattr(args, name, value)
    quick = args.quick
    return Options(
        runs=args.runs,
        payments=args.payments,
        prescriptions=args.prescriptions,
        batch=args.batch,
        pushes=args.pushes,
        kill_every=args.kill_every,
        workers=args.workers,
        cold_starts=args.cold_starts,
        fault_rate=args.fault_rate,
        # Long enough that an invitation's five-day validity outlasts what the faults delay it
        # by (a minute and a half at worst in quick runs); shorter days leave most invitations
        # "past their window" and the lost-step check with little to check.
        day_seconds=args.day_seconds or (20.0 if quick else 30.0),
        discharge_rate=args.discharge_rate,
        rx_deadline=args.rx_deadline or (20 if quick else 120),
        temporal_restart_at=args.temporal_restart_at or (20 if quick else 90),
        postgres_restart_at=args.postgres_restart_at or (40 if quick else 180),
        settle_within=args.settle_within,
        seed=args.seed,
    )


if __name__ == "__main__":
    faulthandler.register(signal.SIGUSR1)  # `kill -USR1 <pid>` shows where a long run is
    sys.exit(asyncio.run(main(parse())))
