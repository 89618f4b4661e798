"""The staff API under 50 concurrent clients (issue 15, goal 1): ``python -m bench.api_load``
(``--clients 50 --seconds 20 --workers N``; N defaults to the machine's cores).

Real parts: PostgreSQL with the real migrations holding 100,000 tasks and 10,000 patients (the
report benchmark's data set) plus 20,000 open alerts, the Temporal dev server, and the API as
``python -m api.serve --processes N``, the production command. Staff are signed in with session
tokens (so every request pays the session lookup and the idle-timer bookkeeping), nurses within
their department and care managers across the hospital.

The load: each client loops over a realistic mix, 90 % reads (the queue due today for my role,
pending tasks, open alerts, one task, the run list) and 10 % writes (acknowledging an alert with
a note: a row lock, the audit chain, a commit). Prints per-kind throughput and latency
percentiles and their ratio to the goal (reads p99 < 50 ms, writes p99 < 150 ms). Afterwards it
counts what the writes left behind: one acknowledgement and one audit entry per 200 answered.
Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import func, insert
from sqlmodel import select

from bench.infra import audit_count, bench_infra, process_env, settle
from bench.workbench_reports import DEPARTMENTS, seed_tasks
from core.db import transaction
from core.logs import configure_logging
from core.models import Alert, CareTask, StaffRole, new_id
from harness.postgres import free_port
from harness.processes import api_ready, child_pids, start_api
from harness.settings import make_settings
from services.identity import open_session
from services.staff import create_staff

READ_GOAL, WRITE_GOAL = 0.050, 0.150
WRITE = "acknowledge alert"
ALERTS = 20_000


@dataclass
class Tally:
    timings: dict[str, list[float]] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)

    def add(self, kind: str, seconds: float, ok: bool) -> None:
        self.timings.setdefault(kind, []).append(seconds)
        if not ok:
            self.failures[kind] = self.failures.get(kind, 0) + 1


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _seed_alerts(sessions: object, now: datetime) -> dict[str, list[str]]:
    async with transaction(sessions) as session:  # type: ignore[arg-type]
        tasks = (
            await session.exec(
                select(CareTask.id, CareTask.workflow_id, CareTask.patient_id,
                       CareTask.department_code)
                .where(CareTask.action_type == "form")
                .limit(ALERTS)
            )
        ).all()  # fmt: skip
        rows = [
            {"id": new_id(), "kind": "abnormal_answer", "task_id": task_id,
             "workflow_id": workflow_id, "patient_id": patient_id,
             "department_code": department, "role": "nurse", "level": "warning",
             "summary": "血压偏高", "details": [], "status": "open",
             "raised_at": now - timedelta(minutes=n % 600)}
            for n, (task_id, workflow_id, patient_id, department) in enumerate(tasks)
        ]  # fmt: skip
        for start in range(0, len(rows), 5000):
            await session.execute(insert(Alert.__table__), rows[start : start + 5000])  # type: ignore[attr-defined]
    by_department: dict[str, list[str]] = {}
    for row in rows:
        by_department.setdefault(str(row["department_code"]), []).append(str(row["id"]))
    return by_department


@dataclass(frozen=True)
class Worker:
    """One member of staff: a session token, and task and alert ids within their scope."""

    token: str
    task_ids: list[str]
    alerts: list[str]


async def _client(
    http: httpx.AsyncClient,
    who: Worker,
    deadline: float,
    think: float,
    tally: Tally,
    rng: random.Random,
) -> None:
    """Requests until the deadline, each after a think time drawn around ``think`` seconds
    (exponential: arrivals are random, as people are); ``think`` 0 sends back to back."""
    headers = {"Authorization": f"Bearer {who.token}"}
    reads: list[tuple[str, Callable[[], str]]] = [
        ("queue today", lambda: "/api/tasks?due=today&mine=true"),
        ("pending tasks", lambda: "/api/tasks?status=pending&limit=50"),
        ("open alerts", lambda: "/api/alerts?status=open"),
        ("one task", lambda: f"/api/tasks/{rng.choice(who.task_ids)}"),
        ("runs", lambda: "/api/runs?limit=50"),
    ]
    while time.perf_counter() < deadline:
        if think:
            await asyncio.sleep(rng.expovariate(1 / think))
        if rng.random() < 0.1 and who.alerts:
            kind, alert = WRITE, who.alerts.pop()
            start = time.perf_counter()
            response = await http.post(
                f"/api/alerts/{alert}/acknowledge", json={"note": "已电话联系患者"}, headers=headers
            )
        else:
            kind, path = rng.choice(reads)
            start = time.perf_counter()
            response = await http.get(path(), headers=headers)
        tally.add(kind, time.perf_counter() - start, response.status_code == 200)


def _cpu_seconds(pids: list[int]) -> list[float]:
    """User + system CPU each process has used so far."""
    used = []
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        used.append((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"))
    return used


async def _phase(
    browsers: list[httpx.AsyncClient],
    staff: list[Worker],
    seconds: float,
    think: float,
    api_pids: list[int],
    seed: int,
) -> tuple[Tally, list[float]]:
    """One measured phase: the tally and the CPU seconds it took each API process."""
    tally = Tally()
    cpu = _cpu_seconds(api_pids)
    deadline = time.perf_counter() + seconds
    await asyncio.gather(
        *(
            _client(http, staff[n % len(staff)], deadline, think, tally, random.Random(seed + n))
            for n, http in enumerate(browsers)
        )
    )
    return tally, [
        after - before for before, after in zip(cpu, _cpu_seconds(api_pids), strict=True)
    ]


def _report(label: str, tally: Tally, seconds: float, cpu: list[float]) -> None:
    total = sum(len(v) for v in tally.timings.values())
    shares = " / ".join(f"{used / max(sum(cpu), 1e-9):.0%}" for used in cpu)
    print(
        f"  {label}: {total:,} requests, {total / seconds:.0f}/s; API processes' CPU "
        f"{sum(cpu) * 1000 / max(total, 1):.1f} ms per request, shared {shares} "
        "(supervisor first)"
    )
    for kind, values in sorted(tally.timings.items()):
        print(
            f"    {'write' if kind == WRITE else 'read':<5} {kind:<18} n={len(values):6d}  "
            f"p50={statistics.median(values) * 1000:7.1f} ms  "
            f"p95={_pct(values, 0.95) * 1000:7.1f} ms  p99={_pct(values, 0.99) * 1000:7.1f} ms  "
            f"failed={tally.failures.get(kind, 0)}"
        )
    reads = [v for k, vs in tally.timings.items() if k != WRITE for v in vs]
    for group, values, goal in (
        ("reads", reads, READ_GOAL),
        ("writes", tally.timings.get(WRITE, []), WRITE_GOAL),
    ):
        if values:
            p99 = _pct(values, 0.99)
            print(
                f"    {group} p99 {p99 * 1000:.1f} ms against {goal * 1000:.0f} ms: "
                f"ratio {p99 / goal:.2f}"
            )


async def main(
    clients: int, seconds: float, think: float, workers: int, tasks: int, profile: Path | None
) -> None:
    configure_logging(json=True, level="WARNING")
    async with bench_infra() as infra:
        sessions = infra.sessions
        now = datetime.now(UTC)
        started = time.perf_counter()
        await seed_tasks(sessions, tasks, now)
        alert_ids = await _seed_alerts(sessions, now)
        settings = make_settings(database_url=infra.database_url)
        # 20 nurses, each within a department, and 5 care managers across the hospital (who
        # work on one department's alerts each, so that no alert is acknowledged twice).
        staff: list[Worker] = []
        async with transaction(sessions) as session:
            for n in range(25):
                department = DEPARTMENTS[n % len(DEPARTMENTS)]
                user, _ = await create_staff(
                    session,
                    name=f"护士{n}" if n < 20 else f"个案{n}",
                    role=StaffRole.NURSE if n < 20 else StaffRole.CARE_MANAGER,
                    department_code=department if n < 20 else None,
                )
                in_scope = await session.exec(
                    select(CareTask.id).where(CareTask.department_code == department).limit(500)
                )
                mine = alert_ids[department][n // len(DEPARTMENTS) :: 7]
                token = open_session(session, settings, user, now).token
                staff.append(Worker(token, list(in_scope.all()), mine))
        await settle(sessions)
        seeded = time.perf_counter() - started
        port = free_port()
        env = process_env(infra, settings)
        api = start_api(env, infra.workdir, port, workers)
        print(
            f"staff API load: {tasks:,} tasks, {tasks // 10:,} patients, {ALERTS:,} open alerts; "
            f"PostgreSQL; seeded in {seeded:.0f} s; {workers} API process(es) "
            f"(api.serve) on {os.cpu_count()} cores; {clients} concurrent clients, each with "
            "its own keep-alive connection as a browser has, "
            "signed in by session token, 90 % reads and 10 % writes; the load generator, "
            "PostgreSQL and Temporal share the machine"
        )
        # One connection per client, as each member of staff has a browser of their own: one
        # pool shared by all would send most requests down its first few connections.
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        try:
            async with AsyncExitStack() as stack:
                browsers = [
                    await stack.enter_async_context(
                        httpx.AsyncClient(
                            base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=30
                        )
                    )
                    for _ in range(clients)
                ]
                await api_ready(browsers[0])
                pids = [api.popen.pid, *child_pids(api.popen.pid)]
                # Warms every worker process (connections, statement caches); writes nothing.
                readers = [Worker(w.token, w.task_ids, []) for w in staff]
                await _phase(browsers, readers, 3, 0, pids, 0)
                tally, cpu = await _phase(browsers, staff, seconds, think, pids, 1000)
                _report(
                    f"each client every {think:g} s on average (exponential think time)",
                    tally, seconds, cpu,
                )  # fmt: skip
                profiler = (
                    await asyncio.create_subprocess_exec(
                        str(Path(sys.executable).parent / "py-spy"), "record", "--subprocesses",
                        "--format", "raw", "--rate", "200", "--duration", str(int(seconds)),
                        "--output", str(profile), "--pid", str(api.popen.pid),
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                    if profile is not None
                    else None
                )  # fmt: skip
                saturated, cpu = await _phase(browsers, staff, seconds, 0, pids, 2000)
                _report("back to back (saturation: no think time)", saturated, seconds, cpu)
                if profiler is not None:
                    await profiler.wait()
                    print(f"  py-spy samples of the API processes (saturation): {profile}")
        except httpx.TransportError:
            print(api.tail())
            raise
        finally:
            api.stop()
        async with transaction(sessions) as session:
            acknowledged = (
                await session.exec(
                    select(func.count()).select_from(Alert).where(Alert.status == "acknowledged")
                )
            ).one()
        audited = await audit_count(sessions, "alert.acknowledged")
        answered = sum(
            len(t.timings.get(WRITE, [])) - t.failures.get(WRITE, 0) for t in (tally, saturated)
        )
        print(
            f"  writes answered 200: {answered:,}; alerts acknowledged in the database: "
            f"{acknowledged:,}; audit entries alert.acknowledged: {audited:,}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20, help="per phase")
    parser.add_argument(
        "--think", type=float, default=0.5, help="mean seconds between a client's requests"
    )
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument(
        "--profile",
        type=Path,
        help="sample the API processes with py-spy during saturation (collapsed stacks here)",
    )
    args = parser.parse_args()
    asyncio.run(
        main(args.clients, args.seconds, args.think, args.workers, args.tasks, args.profile)
    )
