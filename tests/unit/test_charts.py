"""The trend chart (FORM-4): the points in time order with an abnormal value in red and its
threshold, the same bytes for the same points, labels escaped, and a chart with nothing to
show saying so."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from xml.etree import ElementTree
from zoneinfo import ZoneInfo

from core.charts import ABNORMAL, COLOR, ChartPoint, line_chart
from pathways.library import load_forms
from pathways.trends import measured, measures

TZ = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 3, 1, 1, 0, tzinfo=UTC)
SVG = "{http://www.w3.org/2000/svg}"


def _points() -> list[ChartPoint]:
    return [
        ChartPoint(T0 + timedelta(days=2), 8.0, abnormal=True),
        ChartPoint(T0, 3.0),
        ChartPoint(T0 + timedelta(days=1), 5.0),
    ]


def test_points_are_drawn_in_time_order_with_the_abnormal_one_in_red() -> None:
    svg = line_chart("疼痛评分", _points(), tz=TZ, limits=[(7, "≥7 异常")])
    root = ElementTree.fromstring(svg)
    circles = root.findall(f"{SVG}circle")
    assert [c.get("fill") for c in circles] == [COLOR, COLOR, ABNORMAL]
    heights = [float(c.get("cy", "0")) for c in circles]
    assert heights[0] > heights[1] > heights[2]  # 3, 5, 8: higher values drawn higher
    assert [c.findtext(f"{SVG}title") for c in circles] == [
        "3月1日 09:00：3",
        "3月2日 09:00：5",
        "3月3日 09:00：8",
    ]
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "≥7 异常" in texts
    assert "3月1日" in texts
    assert "3月3日" in texts
    assert root.get("aria-label") == "疼痛评分"


def test_the_same_points_give_the_same_chart_and_labels_are_escaped() -> None:
    first = line_chart("<b>体重</b>", _points(), tz=TZ, unit="kg")
    assert first == line_chart("<b>体重</b>", list(reversed(_points())), tz=TZ, unit="kg")
    assert "<b>" not in first
    assert ElementTree.fromstring(first).findtext(f"{SVG}title") == "<b>体重</b>（kg）"


def test_one_point_and_no_point() -> None:
    one = ElementTree.fromstring(line_chart("血糖", [ChartPoint(T0, 6.1)], tz=TZ))
    assert len(one.findall(f"{SVG}circle")) == 1
    assert one.find(f"{SVG}polyline") is None
    empty = line_chart("血糖", [], tz=TZ)
    assert "暂无记录" in empty
    # Ticks are round numbers.
    ticks = [t.text for t in one.iter(f"{SVG}text") if t.text and re.fullmatch(r"[\d.]+", t.text)]
    assert ticks
    assert all(len(t) <= 4 for t in ticks)


def test_what_a_form_measures_and_what_an_answer_gave() -> None:
    pain = measures(load_forms()["pain-nrs"])
    assert list(pain) == ["intensity", "nrs", "pain_level"]
    assert pain["intensity"].limits == [(7, "≥7 异常")]
    assert pain["nrs"].label == "疼痛数字评分（NRS）总分"
    assert measured("intensity", {"intensity": ["8"]}, {}) == 8.0
    assert measured("nrs", {}, {"nrs": 8}) == 8.0
    assert measured("intensity", {"intensity": ["nan"]}, {}) is None
    assert measured("intensity", {}, {}) is None
