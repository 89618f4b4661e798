"""The workbench's reports on PostgreSQL: the follow-up report by ward (counted per run, then by
the run's ward), by week and month in the hospital's calendar, within the viewer's data scope;
the staff work log by staff member."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from core.db import SessionFactory, transaction
from core.models import (
    CareTask,
    DataScope,
    Encounter,
    PathwayRun,
    Patient,
    StaffRole,
    StaffUser,
    new_id,
)
from services import audit
from services.reports import WORK_COLUMNS, Span, follow_up_report, staff_work_log
from services.staff import StaffPrincipal

TZ = ZoneInfo("Asia/Shanghai")
FIRST = date(2026, 3, 1)  # a Sunday


async def _run(
    sessions: SessionFactory, n: int, department: str, ward: str | None, due: list[tuple[date, str]]
) -> None:
    async with transaction(sessions) as session:
        patient = Patient(id=new_id(), his_patient_id=f"R{n}", name="患者", phone=f"1390000000{n}")
        encounter = Encounter(
            patient_id=patient.id,
            his_encounter_id=f"RE{n}",
            kind="inpatient",
            department_code=department,
            department_name="科室",
            ward=ward,
        )
        session.add(patient)
        await session.flush()
        session.add(encounter)
        await session.flush()
        run = PathwayRun(
            workflow_id=f"run-{n}",
            plan_id="inpatient-discharge",
            plan_version=1,
            patient_id=patient.id,
            encounter_id=encounter.id,
            department_code=department,
            anchor_at=datetime.combine(FIRST, time(9), TZ),
        )
        session.add(run)
        await session.flush()
        for index, (day, status) in enumerate(due):
            session.add(
                CareTask(
                    id=new_id(),
                    workflow_id=run.workflow_id,
                    step_id=f"s{index}",
                    patient_id=patient.id,
                    plan_id="inpatient-discharge",
                    department_code=department,
                    title="随访",
                    responsible_role="nurse",
                    status=status,
                    # 23:30 local: the next day in UTC terms is still this day in Shanghai.
                    due_at=datetime.combine(day, time(23, 30), TZ),
                )
            )


def _viewer(department: str | None) -> StaffPrincipal:
    scope = DataScope.ORGANISATION if department is None else DataScope.DEPARTMENT
    return StaffPrincipal("v", "统计", StaffRole.CARE_MANAGER, department, data_scope=scope)


async def test_wards_weeks_and_months_in_the_hospitals_calendar(sessions: SessionFactory) -> None:
    march = FIRST
    await _run(sessions, 1, "cardiology", "心内一病区",
               [(march, "completed"), (march + timedelta(days=1), "abnormal"),
                (march + timedelta(days=8), "lost")])  # fmt: skip
    await _run(sessions, 2, "cardiology", "心内二病区",
               [(march + timedelta(days=1), "completed"),
                (march + timedelta(days=31), "sent")])  # fmt: skip
    await _run(sessions, 3, "orthopedics", None, [(march, "not_needed"), (march, "pending")])
    span = Span.checked(march, march + timedelta(days=40), TZ)
    async with sessions() as session:
        wards = await follow_up_report(session, _viewer(None), span, grouping="ward")
        weeks = await follow_up_report(
            session, _viewer(None), span, grouping="period", period="week"
        )
        months = await follow_up_report(
            session, _viewer(None), span, grouping="period", period="month"
        )
        cardiology = await follow_up_report(session, _viewer("cardiology"), span, grouping="ward")

    by_ward = {r.label: (r.due, r.done, r.abnormal, r.lost, r.awaiting) for r in wards.rows}
    assert by_ward == {
        "心内一病区": (3, 2, 1, 1, 0),
        "心内二病区": (2, 1, 0, 0, 1),
        "（未记录病区）": (1, 0, 0, 0, 0),  # not needed counts as due, pending does not
    }
    assert (wards.total.due, wards.total.completion_rate) == (6, round(3 / 5, 3))
    # Sunday 1 March belongs to the week from Monday 23 February.
    assert [(r.key, r.due) for r in weeks.rows] == [
        ("2026-02-23", 2),
        ("2026-03-02", 2),
        ("2026-03-09", 1),
        ("2026-03-30", 1),
    ]
    assert [(r.label, r.due) for r in months.rows] == [("2026年3月", 5), ("2026年4月", 1)]
    assert {r.label for r in cardiology.rows} == {"心内一病区", "心内二病区"}


async def test_the_work_log_counts_each_staff_members_follow_ups_and_the_abnormal_ones(
    sessions: SessionFactory,
) -> None:
    """STAT-3 by staff member, from the audit trail: what each recorded in the span, and of the
    follow-ups how many they found abnormal; a department's viewer sees its own staff only."""
    inside = datetime.combine(FIRST, time(10), TZ)
    async with transaction(sessions) as session:
        wang = StaffUser(name="王护士", role="nurse", department_code="cardiology")
        li = StaffUser(name="李医生", role="doctor", department_code="cardiology")
        zhao = StaffUser(name="赵护士", role="nurse", department_code="orthopedics")
        session.add_all([wang, li, zhao])
        await session.flush()
        done: list[tuple[StaffUser, str, dict[str, str], datetime]] = [
            (wang, "pathway.complete_task", {"outcome": "completed"}, inside),
            (wang, "pathway.complete_task", {"outcome": "abnormal"}, inside),
            (wang, "pathway.complete_task", {"outcome": "abnormal"}, inside),
            (wang, "alert.resolved", {}, inside),
            (li, "pathway.complete_task", {"outcome": "completed"}, inside),
            (li, "pathway.add_step", {}, inside),
            (zhao, "pathway.complete_task", {"outcome": "abnormal"}, inside),
            # Outside the span: the day before it.
            (wang, "pathway.complete_task", {"outcome": "abnormal"}, inside - timedelta(days=1)),
        ]
        for who, action, detail, at in done:
            entry = audit.record(
                session,
                actor_type="staff",
                actor_id=who.id,
                action=action,
                target_type="pathway_run",
                target_id="run-x",
                **detail,
            )
            entry.at = at
    span = Span.checked(FIRST, FIRST + timedelta(days=6), TZ)
    async with sessions() as session:
        everyone = await staff_work_log(session, _viewer(None), span)
        cardiology = await staff_work_log(session, _viewer("cardiology"), span)

    table = {r.name: [r.value(c) for c in WORK_COLUMNS] + [r.total] for r in everyone}
    assert WORK_COLUMNS[:4] == ("随访登记", "其中异常", "干预调整", "消息推送")
    assert table["王护士"][:2] == [3, 2]
    assert table["王护士"][-1] == 4  # three follow-ups and an alert; "of which" adds nothing
    assert table["李医生"][:3] == [1, 0, 1]
    assert table["赵护士"][:2] == [1, 1]
    assert [r.name for r in everyone] == ["王护士", "李医生", "赵护士"]  # busiest first
    assert {r.name for r in cardiology} == {"王护士", "李医生"}
