"""A value over time as an SVG line chart (FORM-4): one patient's fasting glucose or pain score,
for staff and on the patient's phone. Plain SVG text (no script, no external font or style), so
it is safe to inline in a page, to serve as an image and to print; every label is escaped.

Deterministic: the same points give the same bytes, so a chart can be compared in a test."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from xml.sax.saxutils import escape, quoteattr
from zoneinfo import ZoneInfo

WIDTH, HEIGHT = 360, 220
LEFT, RIGHT, TOP, BOTTOM = 44, 16, 36, 34
COLOR, ABNORMAL, GRID, TEXT = "#1677ff", "#d4380d", "#e8e8e8", "#595959"


@dataclass(frozen=True)
class ChartPoint:
    at: datetime
    value: float
    abnormal: bool = False


def _nice_step(span: float) -> float:
    """A step of 1, 2 or 5 times a power of ten giving three to six ticks over ``span``."""
    raw = span / 4 if span > 0 else 1.0
    power = 10 ** math.floor(math.log10(raw))
    return float(next(m * power for m in (1, 2, 5, 10) if m * power >= raw))


def _number(value: float) -> str:
    return f"{value:g}"


def line_chart(
    title: str,
    points: Sequence[ChartPoint],
    *,
    tz: ZoneInfo,
    unit: str | None = None,
    limits: Sequence[tuple[float, str]] = (),
) -> str:
    """The points in time order as an SVG document. ``limits`` are dashed reference lines (an
    abnormal threshold) with their labels."""
    ordered = sorted(points, key=lambda p: p.at)
    heading = f"{title}（{unit}）" if unit else title
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="100%" role="img" aria-label={quoteattr(heading)} '
        'font-family="sans-serif" font-size="11">',
        f"<title>{escape(heading)}</title>",
        f'<text x="{LEFT}" y="18" font-size="13" fill="#262626">{escape(heading)}</text>',
    ]
    if not ordered:
        parts.append(
            f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" fill="{TEXT}">'
            "暂无记录</text></svg>"
        )
        return "".join(parts)
    values = [p.value for p in ordered] + [value for value, _ in limits]
    low, high = min(values), max(values)
    step = _nice_step(high - low)
    bottom = math.floor(low / step) * step
    top = math.ceil(high / step) * step
    if top == bottom:
        bottom, top = bottom - step, top + step
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    first, last = ordered[0].at, ordered[-1].at
    span = (last - first).total_seconds()

    def x(at: datetime) -> float:
        if span == 0:
            return LEFT + plot_w / 2
        return LEFT + plot_w * (at - first).total_seconds() / span

    def y(value: float) -> float:
        return TOP + plot_h * (top - value) / (top - bottom)

    tick = bottom
    while tick <= top + step / 1000:
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" '
            f'stroke="{GRID}"/>'
            f'<text x="{LEFT - 6}" y="{y(tick) + 4:.1f}" text-anchor="end" fill="{TEXT}">'
            f"{_number(round(tick, 6))}</text>"
        )
        tick += step
    for value, label in limits:
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(value):.1f}" y2="{y(value):.1f}" '
            f'stroke="{ABNORMAL}" stroke-dasharray="4 3"/>'
            f'<text x="{WIDTH - RIGHT}" y="{y(value) - 4:.1f}" text-anchor="end" '
            f'fill="{ABNORMAL}">{escape(label)}</text>'
        )
    path = " ".join(f"{x(p.at):.1f},{y(p.value):.1f}" for p in ordered)
    if len(ordered) > 1:
        parts.append(f'<polyline points="{path}" fill="none" stroke="{COLOR}" stroke-width="2"/>')
    for point in ordered:
        color = ABNORMAL if point.abnormal else COLOR
        when = point.at.astimezone(tz).strftime("%-m月%-d日 %H:%M")
        parts.append(
            f'<circle cx="{x(point.at):.1f}" cy="{y(point.value):.1f}" r="4" fill="{color}">'
            f"<title>{escape(when)}：{_number(point.value)}</title></circle>"
        )
    first_day = first.astimezone(tz).strftime("%-m月%-d日")
    last_day = last.astimezone(tz).strftime("%-m月%-d日")
    baseline = HEIGHT - BOTTOM + 16
    parts.append(f'<text x="{LEFT}" y="{baseline}" fill="{TEXT}">{first_day}</text>')
    if last_day != first_day:
        parts.append(
            f'<text x="{WIDTH - RIGHT}" y="{baseline}" text-anchor="end" fill="{TEXT}">'
            f"{last_day}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)
