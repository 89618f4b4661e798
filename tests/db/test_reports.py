"""The workbench's follow-up report on PostgreSQL: by ward (counted per run, then by the run's
ward), by week and month in the hospital's calendar, within the viewer's data scope."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from core.db import SessionFactory, transaction
from core.models import CareTask, DataScope, Encounter, PathwayRun, Patient, StaffRole, new_id
from services.reports import Span, follow_up_report
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
