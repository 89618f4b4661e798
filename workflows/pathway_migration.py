"""Moving a running pathway to a newer version (CM-4), with an explicit step mapping.

Pure: the workflow uses it to apply a migration and to answer a dry run with the same plan.
Occurrences already done stay as they were; those in progress finish under the version they
started on; pending ones follow the mapping (rescheduled on the new version's timeline, or
removed when mapped to nothing); steps new in the target are added from now on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from contracts.pathway import MigrationChange, MigrationPlan, Occurrence
from contracts.runs import TERMINAL_STATUSES
from pathways.definition import PathwaySnapshot
from pathways.timeline import timeline


class MigrationRefused(ValueError):
    pass


def plan_migration(
    occurrences: Sequence[Occurrence],
    current: PathwaySnapshot,
    target: PathwaySnapshot,
    mapping: Mapping[str, str | None],
    *,
    anchor: datetime,
    tz: ZoneInfo,
    now: datetime,
    compress: Callable[[datetime], datetime],
) -> MigrationPlan:
    """What the migration changes; MigrationRefused says why it cannot apply."""
    if target.definition.id != current.definition.id:
        raise MigrationRefused(f"目标是另一个路径 {target.definition.id}")
    if target.version <= current.version:
        raise MigrationRefused(f"只能迁移到更新的版本（当前第{current.version}版）")
    current_ids = {s.id for s in current.definition.steps}
    open_steps = sorted(
        {o.step_id for o in occurrences if o.status not in TERMINAL_STATUSES} & current_ids
    )
    missing = [s for s in open_steps if s not in mapping]
    if missing:
        raise MigrationRefused(f"映射不完整，未说明这些步骤去向：{', '.join(missing)}")
    unknown_sources = sorted(set(mapping) - current_ids)
    if unknown_sources:
        raise MigrationRefused(f"映射中的步骤不在当前版本：{', '.join(unknown_sources)}")
    target_ids = {s.id for s in target.definition.steps}
    unknown = sorted({t for t in mapping.values() if t is not None} - target_ids)
    if unknown:
        raise MigrationRefused(f"映射到的步骤不在新版本：{', '.join(unknown)}")

    planned = [p for p in timeline(target.definition, anchor, tz) if compress(p.due_at) > now]
    # Occurrences that exist already and must not be planned twice: done or in progress.
    existing = {(o.step_id, o.index) for o in occurrences if o.status != "pending"}
    changes: list[MigrationChange] = []
    for occurrence in occurrences:
        if occurrence.status in TERMINAL_STATUSES or occurrence.step_id not in current_ids:
            continue
        if occurrence.status != "pending":
            changes.append(
                MigrationChange(
                    key=occurrence.key,
                    change="kept_in_progress",
                    step_id=occurrence.step_id,
                    due_at=occurrence.due_at,
                )
            )
            continue
        new_step = mapping.get(occurrence.step_id)
        match = next(
            (p for p in planned if p.step_id == new_step and p.index == occurrence.index), None
        )
        if new_step is None or match is None:
            changes.append(
                MigrationChange(
                    key=occurrence.key,
                    change="removed",
                    step_id=occurrence.step_id,
                    new_step_id=new_step,
                    due_at=occurrence.due_at,
                )
            )
            continue
        changes.append(
            MigrationChange(
                key=occurrence.key,
                change="rescheduled",
                step_id=occurrence.step_id,
                new_step_id=new_step,
                due_at=occurrence.due_at,
                new_due_at=compress(match.due_at),
            )
        )
    taken = {
        (c.new_step_id, int(c.key.rsplit("#", 1)[1])) for c in changes if c.change == "rescheduled"
    }
    for item in planned:
        if (item.step_id, item.index) in taken | existing:
            continue
        changes.append(
            MigrationChange(
                key=f"{item.step_id}#{item.index}",
                change="added",
                step_id=item.step_id,
                new_step_id=item.step_id,
                new_due_at=compress(item.due_at),
            )
        )
    keys = [c.key for c in changes if c.change != "removed"]
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        raise MigrationRefused(f"迁移后任务重复：{', '.join(duplicates)}")
    return MigrationPlan(from_version=current.version, to_version=target.version, changes=changes)
