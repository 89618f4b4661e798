"""The workbench's report page over 100,000 tasks (STAT-1..3): ``python -m bench.workbench_reports``
(``--tasks 100000 --repeat 20``).

Real PostgreSQL with the real migrations: 10,000 patients, one run each with its encounter (four
departments, twelve wards), 100,000 task rows over a year in realistic states, and a staff work
log in the audit trail. Then GET /w/reports is timed through the real app, signed in by the
workbench's cookie, for each grouping over 30 days and over a year, and the Excel export once.
The goal (issue 15, goal 5) is a report page under 200 ms at p95 (issue 14 asked for 300 ms).
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import insert

from api.container import Container
from api.main import create_app
from api.workbench.auth import COOKIE
from bench.infra import bench_infra, settle
from core.db import transaction
from core.logs import configure_logging
from core.models import CareTask, Encounter, PathwayRun, Patient, StaffRole, new_id
from harness.settings import make_settings
from integrations.his import HisClient
from services import audit
from services.staff import create_staff

STATUSES = (
    ["completed"] * 55
    + ["abnormal"] * 10
    + ["lost"] * 12
    + ["sent"] * 8
    + ["pending"] * 10
    + ["not_needed"] * 3
    + ["failed"] * 2
)
DEPARTMENTS = ["cardiology", "orthopedics", "endocrinology", "oncology"]
STEPS = [("day3", "form"), ("day7", "form"), ("edu", "article"), ("call", "staff_task")]
CHUNK = 5000


async def seed_tasks(sessions: object, tasks: int, now: datetime) -> None:
    patients = max(1, tasks // 10)
    random.seed(11)
    rows_patients, rows_encounters, rows_runs, rows_tasks = [], [], [], []
    for n in range(patients):
        patient_id, encounter_id = new_id(), new_id()
        department = DEPARTMENTS[n % len(DEPARTMENTS)]
        anchor = now - timedelta(days=random.randint(0, 365))
        rows_patients.append(
            {"id": patient_id, "his_patient_id": f"B{n:06d}", "name": f"患者{n}",
             "phone": f"139{n:08d}", "excluded": False, "message_opt_outs": [],
             "created_at": now, "updated_at": now}
        )  # fmt: skip
        rows_encounters.append(
            {"id": encounter_id, "patient_id": patient_id, "his_encounter_id": f"E{n:06d}",
             "kind": "inpatient", "department_code": department, "department_name": department,
             "ward": f"{department}-{n % 3 + 1}", "discharged_at": anchor, "diagnoses": [],
             "created_at": anchor}
        )  # fmt: skip
        workflow_id = f"pathway:inpatient-discharge:B{n:06d}:E{n}"
        rows_runs.append(
            {"workflow_id": workflow_id, "plan_id": "inpatient-discharge", "plan_version": 1,
             "patient_id": patient_id, "encounter_id": encounter_id,
             "department_code": department, "anchor_at": anchor, "status": "running",
             "kind": "followup", "anchor_event": "discharge", "paused": False,
             "clock_speedup": 1.0, "plan_snapshot": {}, "started_at": anchor}
        )  # fmt: skip
        for occurrence in range(tasks // patients):
            step, action = STEPS[occurrence % len(STEPS)]
            rows_tasks.append(
                {"id": str(uuid.uuid4()), "workflow_id": workflow_id, "step_id": step,
                 "occurrence": occurrence, "patient_id": patient_id,
                 "plan_id": "inpatient-discharge", "department_code": department,
                 "title": step, "action_type": action, "responsible_role": "nurse",
                 "status": "read" if action == "article" and random.random() < 0.6
                 else random.choice(STATUSES),
                 "due_at": anchor + timedelta(days=3 + occurrence * 4),
                 "score": random.choice([None, 3.0, 4.0, 5.0]), "plan_version": 1,
                 "updated_at": now}
            )  # fmt: skip
    async with transaction(sessions) as session:  # type: ignore[arg-type]
        for table, rows in (
            (Patient.__table__, rows_patients),  # type: ignore[attr-defined]
            (Encounter.__table__, rows_encounters),  # type: ignore[attr-defined]
            (PathwayRun.__table__, rows_runs),  # type: ignore[attr-defined]
            (CareTask.__table__, rows_tasks),  # type: ignore[attr-defined]
        ):
            for start in range(0, len(rows), CHUNK):
                await session.execute(insert(table), rows[start : start + CHUNK])


async def main(tasks: int, repeat: int) -> None:
    configure_logging(json=True, level="WARNING")
    async with bench_infra() as infra:
        sessions, temporal = infra.sessions, infra.temporal
        settings = make_settings(database_url=infra.database_url)
        his = HisClient.create("http://127.0.0.1:9", "unused", timeout_seconds=1)
        container = Container.build(settings, sessions, temporal.client, his)
        await container.sync_library()
        now = datetime.now(UTC)
        started = time.perf_counter()
        await seed_tasks(sessions, tasks, now)
        async with transaction(sessions) as session:
            nurses = []
            for n in range(20):
                user, _ = await create_staff(
                    session,
                    name=f"护士{n}",
                    role=StaffRole.NURSE,
                    department_code=DEPARTMENTS[n % len(DEPARTMENTS)],
                )
                nurses.append(user)
            _, manager_token = await create_staff(
                session, name="统计", role=StaffRole.CARE_MANAGER, department_code=None
            )
        # The staff work log: 2,000 audited actions (the audit chain is kept, so one by one).
        async with transaction(sessions) as session:
            for n in range(2000):
                audit.record(
                    session,
                    actor_type="staff",
                    actor_id=nurses[n % len(nurses)].id,
                    action=random.choice(
                        ["pathway.complete_task", "alert.resolved", "message.pushed"]
                    ),
                    target_type="bench",
                    target_id=str(n),
                )
        await settle(sessions)
        seeded = time.perf_counter() - started
        app = create_app(container=container)
        today = now.astimezone(settings.tz).date()
        month = f"from={today - timedelta(days=29)}&to={today}"
        year = f"from={today - timedelta(days=364)}&to={today}"
        cases = [
            ("plan, 30 days", f"{month}&group=plan"),
            ("department, 30 days", f"{month}&group=department"),
            ("ward, 30 days", f"{month}&group=ward"),
            ("by day, 30 days", f"{month}&group=period&period=day"),
            ("plan, a year", f"{year}&group=plan"),
            ("ward, a year", f"{year}&group=ward"),
            ("by week, a year", f"{year}&group=period&period=week"),
            ("by month, a year", f"{year}&group=period&period=month"),
        ]
        print(
            f"workbench reports: {tasks:,} tasks, {tasks // 10:,} patients and runs, "
            f"2,000 audited actions; PostgreSQL; seeded in {seeded:.0f} s"
        )
        worst = 0.0
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://bench",
            cookies={COOKIE: manager_token},
        ) as http:
            for label, query in cases:
                first = await http.get(f"/w/reports?{query}")
                first.raise_for_status()
                timings = []
                for _ in range(repeat):
                    start = time.perf_counter()
                    (await http.get(f"/w/reports?{query}")).raise_for_status()
                    timings.append(time.perf_counter() - start)
                timings.sort()
                p95 = timings[int(0.95 * (repeat - 1))]
                worst = max(worst, p95)
                print(
                    f"  GET /w/reports {label:<22} n={repeat}  "
                    f"p50={statistics.median(timings) * 1000:6.1f} ms  "
                    f"p95={p95 * 1000:6.1f} ms  max={timings[-1] * 1000:6.1f} ms"
                )
            start = time.perf_counter()
            exported = await http.get(f"/w/reports/follow-up.xlsx?{year}&group=ward")
            exported.raise_for_status()
            took = time.perf_counter() - start
            print(
                f"  Excel export, a year by ward: {took * 1000:.0f} ms, {len(exported.content):,} B"
            )
        print(f"  worst p95 {worst * 1000:.1f} ms against the 200 ms goal: ratio {worst / 0.2:.2f}")
        await his.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(main(args.tasks, args.repeat))
