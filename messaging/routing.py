"""Where and when a message goes: the channel order for one patient and the end of quiet hours.

Pure functions: the prepare activity calls them and the workflow acts on the result.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from core.hospitals import QuietHours


@dataclass(frozen=True)
class Route:
    channels: list[str]
    # Channels left out, with why (no WeChat binding, no valid number, not configured...).
    skipped: dict[str, str] = field(default_factory=dict)


def channel_order(
    *,
    enabled: Sequence[str],
    preferred: str | None,
    unavailable: Mapping[str, str],
) -> Route:
    """The enabled channels in fallback order, the patient's preferred one first, minus those
    that cannot carry this message (``unavailable`` maps a channel to the reason)."""
    order = list(enabled)
    if preferred in order:
        order.remove(preferred)
        order.insert(0, preferred)
    usable = [c for c in order if c not in unavailable]
    skipped = {c: unavailable[c] for c in order if c in unavailable}
    return Route(channels=usable, skipped=skipped)


def in_quiet_hours(moment: datetime, tz: ZoneInfo, quiet: QuietHours) -> bool:
    if not quiet.enabled:
        return False
    local = moment.astimezone(tz).time()
    if quiet.start < quiet.end:
        return quiet.start <= local < quiet.end
    return local >= quiet.start or local < quiet.end


def next_allowed_time(moment: datetime, tz: ZoneInfo, quiet: QuietHours) -> datetime:
    """``moment`` itself outside quiet hours, else the moment they end (local time)."""
    if not in_quiet_hours(moment, tz, quiet):
        return moment
    local = moment.astimezone(tz)
    end = datetime.combine(local.date(), quiet.end, tzinfo=tz)
    if end <= local:
        end = datetime.combine(local.date() + timedelta(days=1), quiet.end, tzinfo=tz)
    return end.astimezone(moment.tzinfo)
