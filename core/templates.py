"""Jinja2 environments for patient messages (plain text) and patient pages (HTML)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import jinja2

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"


def _filters(tz: ZoneInfo) -> dict[str, object]:
    def local_date(value: datetime | None) -> str:
        return "" if value is None else value.astimezone(tz).strftime("%-m月%-d日")

    def local_datetime(value: datetime | None) -> str:
        return "" if value is None else value.astimezone(tz).strftime("%Y年%-m月%-d日 %H:%M")

    return {"local_date": local_date, "local_datetime": local_datetime}


def message_environment(tz: ZoneInfo) -> jinja2.Environment:
    # StrictUndefined: a missing variable is an error, never a blank in a patient's message.
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR / "messages"),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # noqa: S701 - plain-text SMS bodies, never rendered as HTML
        keep_trailing_newline=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(_filters(tz))
    return env


def page_environment(tz: ZoneInfo) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR / "pages"),
        undefined=jinja2.StrictUndefined,
        autoescape=True,
    )
    env.filters.update(_filters(tz))
    return env


def render_message(env: jinja2.Environment, template: str, **context: object) -> str:
    """Render ``messages/<template>.txt.j2`` into one line of SMS text.

    Template lines are joined without a separator, as Chinese text runs on; a template that needs
    a space (after a link, so phones do not swallow the next characters) writes it mid-line.
    """
    text = env.get_template(f"{template}.txt.j2").render(**context)
    return "".join(line.strip() for line in text.splitlines())
