"""Alarms during a home visit (NUR-3, the tender's 报警管理): by level, notice (一般), warning
(预警) and important (重要). The head nurse sees every alarm; a warning and an important alarm
also reach them by SMS at once, quiet hours or not. A visit that runs past its expected duration
raises a warning; the nurse's one-press alarm is important."""

from __future__ import annotations

from typing import Literal

AlarmLevel = Literal["notice", "warning", "important"]
LEVEL_NAMES: dict[str, str] = {"notice": "一般", "warning": "预警", "important": "重要"}
# The alert level staff see in their queue, by alarm level.
ALERT_LEVELS: dict[str, str] = {"notice": "info", "warning": "warning", "important": "high"}


def texted(level: AlarmLevel) -> bool:
    """Whether the head nurse is also told by SMS."""
    return level in ("warning", "important")
