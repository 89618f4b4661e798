"""Jinja2 for patient-facing text: the date filters every environment shares, and the
environment for patient pages (HTML). Message templates build theirs in messaging.templates."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"


def as_datetime(value: Any) -> datetime | None:
    """A template value as a datetime: None or "" is no date, a string is read as ISO 8601."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def date_filters(tz: ZoneInfo) -> dict[str, Callable[[Any], str]]:
    """``local_date`` (3月5日) and ``local_datetime`` (2025年3月5日 14:30) in the hospital's zone;
    no date renders as an empty string."""

    def local_date(value: Any) -> str:
        moment = as_datetime(value)
        return "" if moment is None else moment.astimezone(tz).strftime("%-m月%-d日")

    def local_datetime(value: Any) -> str:
        moment = as_datetime(value)
        return "" if moment is None else moment.astimezone(tz).strftime("%Y年%-m月%-d日 %H:%M")

    return {"local_date": local_date, "local_datetime": local_datetime}


def page_environment(tz: ZoneInfo) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR / "pages"),
        undefined=jinja2.StrictUndefined,
        autoescape=True,
    )
    env.filters.update(date_filters(tz))
    return env
