"""What staff and patients may change on a running pathway, with the messages staff see."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from contracts.pathway import AdHocStep, Occurrence
from pathways.definition import PathwaySnapshot
from workflows.pathway_guards import (
    UpdateRefused,
    accepts_answers,
    check_add_step,
    check_completion,
    check_open,
    check_pause,
    check_pending,
    check_reschedule,
    run_status,
)

NOW = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def occurrence(key: str, status: str = "pending", action_type: str = "form") -> Occurrence:
    step_id, index = key.split("#")
    return Occurrence.model_validate(
        {
            "key": key,
            "step_id": step_id,
            "index": int(index),
            "task_id": f"t-{key}",
            "title": step_id,
            "action_type": action_type,
            "role": "nurse",
            "due_at": NOW + timedelta(days=1),
            "plan_version": 1,
            "status": status,
        }
    )


RUN = {
    o.key: o
    for o in [
        occurrence("call#0"),
        occurrence("call#1", "sent"),
        occurrence("survey#0", "expired"),
        occurrence("visit#0", "sent", "staff_task"),
        occurrence("visit#1", "completed", "staff_task"),
        occurrence("visit#2", "pending", "staff_task"),
    ]
}
SNAPSHOT = PathwaySnapshot.model_validate(
    {
        "definition": {
            "id": "plan",
            "name": "随访",
            "kind": "followup",
            "plan_type": "inpatient",
            "executor_role": "nurse",
            "anchor": "discharge",
            "steps": [
                {
                    "id": "call",
                    "title": "电话",
                    "schedule": {"offset": {"days": 1}},
                    "action": {"type": "staff_task", "task_kind": "phone_followup"},
                }
            ],
        },
        "version": 1,
        "forms": {
            "recovery": {
                "id": "recovery",
                "version": 1,
                "title": "康复",
                "questions": [{"id": "notes", "type": "text", "text": "备注"}],
            }
        },
        "articles": {"diet": {"id": "diet", "title": "饮食", "body": "少盐"}},
    }
)


def refusal(check: object, *args: object, **kwargs: object) -> str:
    assert callable(check)
    with pytest.raises(UpdateRefused) as refused:
        check(*args, **kwargs)
    return str(refused.value)


def test_an_ended_run_takes_no_change() -> None:
    check_open(ended=False)
    assert refusal(check_open, ended=True) == "该路径已结束"
    assert refusal(check_pending, RUN, "call#0", running=(), ended=True) == "该路径已结束"
    assert refusal(check_pause, pausing=True, paused=False, ended=True) == "该路径已结束"
    assert refusal(check_completion, RUN, "visit#0", completed=(), ended=True) == "该路径已结束"


# --- reschedule and skip: pending occurrences only --------------------------------------------


def test_a_pending_occurrence_may_be_skipped() -> None:
    assert check_pending(RUN, "call#0", running=(), ended=False) is RUN["call#0"]


def test_an_unknown_occurrence_is_refused() -> None:
    assert refusal(check_pending, RUN, "call#9", running=(), ended=False) == "没有任务 call#9"


@pytest.mark.parametrize("key", ["call#1", "survey#0", "visit#1"])
def test_a_started_or_finished_occurrence_is_refused(key: str) -> None:
    status = RUN[key].status
    assert (
        refusal(check_pending, RUN, key, running=(), ended=False)
        == f"任务 {key} 已{status}，只能调整未开始的任务"
    )


def test_a_pending_occurrence_already_running_is_refused() -> None:
    assert (
        refusal(check_pending, RUN, "call#0", running={"call#0"}, ended=False)
        == "任务 call#0 已pending，只能调整未开始的任务"
    )


def test_a_reschedule_moves_to_a_time_ahead() -> None:
    later = NOW + timedelta(minutes=1)
    check_reschedule(RUN, "call#0", later, now=NOW, running=(), ended=False)
    for due_at in (NOW, NOW - timedelta(days=1)):
        assert (
            refusal(check_reschedule, RUN, "call#0", due_at, now=NOW, running=(), ended=False)
            == "新的时间必须在当前时间之后"
        )


def test_a_reschedule_checks_the_occurrence_first() -> None:
    assert (
        refusal(check_reschedule, RUN, "call#1", NOW, now=NOW, running=(), ended=False)
        == "任务 call#1 已sent，只能调整未开始的任务"
    )


# --- ad-hoc steps ------------------------------------------------------------------------------


def adhoc(action: dict[str, Any], **fields: Any) -> AdHocStep:
    return AdHocStep.model_validate(
        {
            "actor": "nurse-1",
            "reason": "加访",
            "title": "加访",
            "action": action,
            "due_at": NOW + timedelta(days=1),
            **fields,
        }
    )


def test_an_ad_hoc_step_is_added() -> None:
    check_add_step(
        adhoc({"type": "form", "form": "recovery"}, validity={"days": 3}), SNAPSHOT, ended=False
    )
    check_add_step(
        adhoc({"type": "staff_task", "task_kind": "phone_followup"}), SNAPSHOT, ended=False
    )


@pytest.mark.parametrize(
    "action",
    [
        {"type": "form", "form": "recovery"},
        {"type": "survey", "form": "recovery"},
        {"type": "article", "article": "diet"},
        {"type": "checkin", "text": "打卡"},
    ],
)
def test_a_pushed_step_needs_a_validity(action: dict[str, Any]) -> None:
    assert refusal(check_add_step, adhoc(action), SNAPSHOT, ended=False) == "推送类任务需要有效期"


def test_only_the_versions_forms_and_articles() -> None:
    form = adhoc({"type": "form", "form": "other"}, validity={"days": 1})
    assert refusal(check_add_step, form, SNAPSHOT, ended=False) == "本路径版本不含表单 other"
    article = adhoc({"type": "article", "article": "other"}, validity={"days": 1})
    assert refusal(check_add_step, article, SNAPSHOT, ended=False) == "本路径版本不含宣教文章 other"


def test_no_ad_hoc_step_on_an_ended_run() -> None:
    step = adhoc({"type": "staff_task", "task_kind": "phone_followup"})
    assert refusal(check_add_step, step, SNAPSHOT, ended=True) == "该路径已结束"


# --- pause and resume ------------------------------------------------------------------------


def test_pause_and_resume() -> None:
    check_pause(pausing=True, paused=False, ended=False)
    check_pause(pausing=False, paused=True, ended=False)
    assert refusal(check_pause, pausing=True, paused=True, ended=False) == "该路径已暂停"
    assert refusal(check_pause, pausing=False, paused=False, ended=False) == "该路径未暂停"


# --- staff task outcomes ---------------------------------------------------------------------


def test_a_sent_staff_task_takes_its_outcome_once() -> None:
    check_completion(RUN, "visit#0", completed=(), ended=False)
    assert (
        refusal(check_completion, RUN, "visit#0", completed={"visit#0"}, ended=False)
        == "任务 visit#0 当前为 sent，不能登记结果"
    )


@pytest.mark.parametrize("key", ["visit#1", "visit#2"])
def test_a_staff_task_not_out_takes_no_outcome(key: str) -> None:
    assert (
        refusal(check_completion, RUN, key, completed=(), ended=False)
        == f"任务 {key} 当前为 {RUN[key].status}，不能登记结果"
    )


@pytest.mark.parametrize("key", ["call#1", "nothing#0"])
def test_only_staff_tasks_take_outcomes(key: str) -> None:
    assert refusal(check_completion, RUN, key, completed=(), ended=False) == f"{key} 不是人工任务"


# --- answers -----------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["call#1", "survey#0"])
def test_answers_to_a_sent_or_expired_occurrence_are_taken_once(key: str) -> None:
    assert accepts_answers(RUN, key, running=(), answered=())
    assert not accepts_answers(RUN, key, running=(), answered={key})


def test_answers_to_a_pending_occurrence_only_while_its_push_is_under_way() -> None:
    assert not accepts_answers(RUN, "call#0", running=(), answered=())
    assert accepts_answers(RUN, "call#0", running={"call#0"}, answered=())


@pytest.mark.parametrize("key", ["visit#1", "nothing#0"])
def test_answers_to_a_closed_or_unknown_occurrence_are_ignored(key: str) -> None:
    assert not accepts_answers(RUN, key, running={key}, answered=())


# --- the run's status --------------------------------------------------------------------------


def test_run_status() -> None:
    assert run_status(ended=False, finished=False, paused=False) == "running"
    assert run_status(ended=False, finished=False, paused=True) == "paused"
    assert run_status(ended=False, finished=True, paused=True) == "completed"
    assert run_status(ended=True, finished=True, paused=True) == "ended"
