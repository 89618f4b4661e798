"""What staff and patients may change on a running pathway (CM-4, FU-*): the checks behind the
pathway workflow's update validators and handlers, which signals it takes, and the run's status.

Pure: the workflow calls these with its state; a refusal is ``UpdateRefused`` with the message
staff are shown.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Literal

from contracts.pathway import AdHocStep, Occurrence
from pathways.definition import PathwaySnapshot

# Actions pushed to the patient with a link, valid for a while.
PUSHED_ACTIONS = ("form", "survey", "article", "checkin")
RunStatus = Literal["running", "completed", "paused", "ended"]


class UpdateRefused(ValueError):
    """The change does not apply to the run as it stands; the message says why."""


def check_open(*, ended: bool) -> None:
    """Nothing changes on an ended run."""
    if ended:
        raise UpdateRefused("该路径已结束")


def check_pending(
    occurrences: Mapping[str, Occurrence], key: str, *, running: Collection[str], ended: bool
) -> Occurrence:
    """Only an occurrence that has not started may be rescheduled or skipped."""
    check_open(ended=ended)
    occ = occurrences.get(key)
    if occ is None:
        raise UpdateRefused(f"没有任务 {key}")
    if occ.status != "pending" or key in running:
        raise UpdateRefused(f"任务 {key} 已{occ.status}，只能调整未开始的任务")
    return occ


def check_reschedule(
    occurrences: Mapping[str, Occurrence],
    key: str,
    due_at: datetime,
    *,
    now: datetime,
    running: Collection[str],
    ended: bool,
) -> None:
    """A pending occurrence moves to a time still ahead."""
    check_pending(occurrences, key, running=running, ended=ended)
    if due_at <= now:
        raise UpdateRefused("新的时间必须在当前时间之后")


def check_add_step(change: AdHocStep, snapshot: PathwaySnapshot, *, ended: bool) -> None:
    """An ad-hoc step pushes only with a validity, and only the run's version's forms and
    articles."""
    check_open(ended=ended)
    if change.action.type in PUSHED_ACTIONS and change.validity is None:
        raise UpdateRefused("推送类任务需要有效期")
    if change.action.form and change.action.form not in snapshot.forms:
        raise UpdateRefused(f"本路径版本不含表单 {change.action.form}")
    if change.action.article and change.action.article not in snapshot.articles:
        raise UpdateRefused(f"本路径版本不含宣教文章 {change.action.article}")


def check_pause(*, pausing: bool, paused: bool, ended: bool) -> None:
    """Pause a running plan (``pausing``) or resume a paused one."""
    check_open(ended=ended)
    if paused == pausing:
        raise UpdateRefused("该路径已暂停" if pausing else "该路径未暂停")


def check_completion(
    occurrences: Mapping[str, Occurrence], key: str, *, completed: Collection[str], ended: bool
) -> None:
    """A staff task's outcome is recorded once, while the task is out (sent)."""
    check_open(ended=ended)
    occ = occurrences.get(key)
    if occ is None or occ.action_type != "staff_task":
        raise UpdateRefused(f"{key} 不是人工任务")
    if occ.status != "sent" or key in completed:
        raise UpdateRefused(f"任务 {key} 当前为 {occ.status}，不能登记结果")


def accepts_answers(
    occurrences: Mapping[str, Occurrence],
    key: str,
    *,
    running: Collection[str],
    answered: Collection[str],
) -> bool:
    """The first answers to an occurrence sent and not yet lost (an expired link still counts).

    A fast patient can open the link before the send's outcome is recorded: a pending
    occurrence whose push is under way accepts answers too."""
    occ = occurrences.get(key)
    open_ = occ is not None and (
        occ.status in ("sent", "expired") or (occ.status == "pending" and key in running)
    )
    return open_ and key not in answered


def run_status(*, ended: bool, finished: bool, paused: bool) -> RunStatus:
    """Ended by staff, completed, paused, or running."""
    if ended:
        return "ended"
    if finished:
        return "completed"
    if paused:
        return "paused"
    return "running"
