"""A discharge recorded late in the evening, a week after the patient went home, under the
hospital's quiet hours (22:00–07:00) and the time-skipping server: the messages the night holds
back that would arrive after their window (daily check-ins for days gone by, an article whose
reading week is over) are not sent, and their tasks say why; the rest go out at 07:00."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from temporalio.testing import WorkflowEnvironment

from tests.factories import BEIJING
from tests.pathways.conftest import PathwayStack, PathwayStackFactory


def _next(moment: datetime, at: time) -> datetime:
    local = moment.astimezone(BEIJING)
    candidate = datetime.combine(local.date(), at, tzinfo=BEIJING)
    return candidate if candidate > local else candidate + timedelta(days=1)


async def _skip_to(env: WorkflowEnvironment, moment: datetime) -> None:
    now = await env.get_current_time()
    if moment > now:
        await env.sleep(moment - now)


async def _run_of(stack: PathwayStack, plan: str) -> str:
    return next(w for w in stack.started if f":{plan}:" in w)


async def test_messages_held_past_their_window_by_the_night_are_not_sent(
    isolated_time_env: WorkflowEnvironment, pathway_stack: PathwayStackFactory
) -> None:
    env = isolated_time_env
    async with pathway_stack(env, quiet_hours=True) as stack, stack.workers():
        evening = _next(await env.get_current_time(), time(22, 30))
        await _skip_to(env, evening)
        discharged = datetime.combine(evening.date() - timedelta(days=8), time(10), BEIJING)
        response = await stack.discharge(discharged)
        assert response.status_code == 202, response.text
        education = await _run_of(stack, "cardiac-education")
        follow_up = await _run_of(stack, "inpatient-discharge")
        # Decided at once, at 22:30: nothing held for the morning that would be stale by then.
        for index in range(7):
            await stack.wait_step(education, "walk", ("not_needed",), index=index)
        await stack.wait_step(education, "diet", ("not_needed",))
        await stack.wait_step(follow_up, "day3", ("not_needed",))

        morning = datetime.combine(evening.date() + timedelta(days=1), time(7, 1), BEIJING)
        await _skip_to(env, morning)
        for run, step in ((education, "medication"), (education, "exercise"), (follow_up, "day7")):
            await stack.wait_step(run, step, ("sent",))
        tasks = {**await stack.tasks(education), **await stack.tasks(follow_up)}
        messages = [*await stack.messages(education), *await stack.messages(follow_up)]

    walks = [tasks[f"walk#{n}"] for n in range(7)]
    assert {t.status for t in walks} == {"not_needed"}
    assert all("已过有效时间" in (t.reason or "") for t in walks)
    assert "静默时段至" in (tasks["walk#6"].reason or "")
    assert tasks["diet#0"].status == "not_needed"
    assert tasks["day3#0"].status == "not_needed"
    by_task = {m.task_id: m for m in messages}
    assert {by_task[t.id].status for t in walks} == {"suppressed"}
    sent = [m for m in messages if m.status in ("sent", "delivered")]
    assert {m.task_id for m in sent} == {
        tasks["medication#0"].id,
        tasks["exercise#0"].id,
        tasks["day7#0"].id,
    }
    # What did go out went out in the morning, not in the night.
    assert all(m.sent_at is not None and m.sent_at >= morning - timedelta(minutes=1) for m in sent)
