"""Pure messaging rules: SMS segment counting, channel order, quiet hours, template checks."""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest

from core.hospitals import QuietHours
from core.phones import to_e164
from messaging.routing import channel_order, in_quiet_hours, next_allowed_time
from messaging.sms import sms_size
from messaging.templates import (
    TemplateSpec,
    check_template,
    load_platform_templates,
    make_environment,
    render_template,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
ENV = make_environment(SHANGHAI)


@pytest.mark.parametrize(
    ("text", "encoding", "units", "segments"),
    [
        ("a" * 160, "GSM-7", 160, 1),
        ("a" * 161, "GSM-7", 161, 2),
        ("a" * 306, "GSM-7", 306, 2),
        ("a" * 307, "GSM-7", 307, 3),
        ("{" * 80, "GSM-7", 160, 1),  # extension characters count twice
        ("您" * 70, "UCS-2", 70, 1),
        ("您" * 71, "UCS-2", 71, 2),
        ("您" * 134, "UCS-2", 134, 2),
        ("您" * 135, "UCS-2", 135, 3),
        ("a" * 69 + "您", "UCS-2", 70, 1),  # one Chinese character switches the whole text
        ("😀" * 35, "UCS-2", 70, 1),  # outside the BMP: two units each
    ],
)
def test_sms_size(text: str, encoding: str, units: int, segments: int) -> None:
    size = sms_size(text)
    assert (size.encoding, size.units, size.segments) == (encoding, units, segments)


def test_channel_order_puts_the_preferred_first_and_skips_unavailable() -> None:
    route = channel_order(
        enabled=["wechat", "sms", "outbox"],
        preferred="sms",
        unavailable={"wechat": "患者未绑定微信"},
    )
    assert route.channels == ["sms", "outbox"]
    assert route.skipped == {"wechat": "患者未绑定微信"}
    assert channel_order(enabled=["sms"], preferred="wechat", unavailable={}).channels == ["sms"]


NIGHT = QuietHours(start=time(22, 0), end=time(7, 0))


@pytest.mark.parametrize(
    ("local", "expected"),
    [
        ("2026-11-23 21:59", "2026-11-23 21:59"),
        ("2026-11-23 22:00", "2026-11-24 07:00"),
        ("2026-11-23 23:30", "2026-11-24 07:00"),
        ("2026-11-24 02:15", "2026-11-24 07:00"),
        ("2026-11-24 06:59", "2026-11-24 07:00"),
        ("2026-11-24 07:00", "2026-11-24 07:00"),
        ("2026-12-31 23:00", "2027-01-01 07:00"),
    ],
)
def test_quiet_hours_across_midnight(local: str, expected: str) -> None:
    moment = datetime.strptime(local, "%Y-%m-%d %H:%M").replace(tzinfo=SHANGHAI).astimezone(UTC)
    allowed = next_allowed_time(moment, SHANGHAI, NIGHT)
    assert allowed.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M") == expected
    assert allowed.tzinfo == UTC


def test_quiet_hours_within_one_day_and_disabled() -> None:
    lunch = QuietHours(start=time(12, 0), end=time(14, 0))
    noon = datetime(2026, 11, 24, 12, 30, tzinfo=SHANGHAI)
    assert in_quiet_hours(noon, SHANGHAI, lunch)
    assert next_allowed_time(noon, SHANGHAI, lunch) == datetime(
        2026, 11, 24, 14, 0, tzinfo=SHANGHAI
    )
    assert not in_quiet_hours(noon, SHANGHAI, QuietHours(enabled=False))
    with pytest.raises(ValueError, match="must differ"):
        QuietHours(start=time(7, 0), end=time(7, 0))


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("13800138000", "+8613800138000"),
        ("+86 138-0013-8000", "+8613800138000"),
        ("+447700900123", "+447700900123"),
        ("+1 (415) 555-0100", "+14155550100"),
        ("12345", None),
        ("010-8888 6666", None),
        ("+8601088886666", None),
        ("", None),
    ],
)
def test_phone_numbers_to_e164(raw: str, e164: str | None) -> None:
    assert to_e164(raw) == e164


def test_platform_templates_load_and_pass_their_own_checks() -> None:
    templates = load_platform_templates()
    assert {"followup_invite", "notice_generic", "critical_value"} <= set(templates)


def _spec(**overrides: object) -> TemplateSpec:
    values: dict[str, object] = {
        "code": "t",
        "category": "followup",
        "name": "t",
        "variables": ["link"],
        "sms": "{{ patient_name }}：{{ link }}",
    }
    values.update(overrides)
    return TemplateSpec.model_validate(values)


def test_template_checks_name_each_problem() -> None:
    problems = check_template(
        _spec(
            variables=["link", "bed_no"],
            sms="{{ link }} {{ ward }}",
            wechat={"data": {"first": "{{ nope }}"}},
        ),
        ENV,
        max_sms_segments=4,
    )
    messages = {(p.field, p.message) for p in problems}
    assert ("variables", "category 'followup' does not supply variable 'bed_no'") in messages
    assert ("sms", "uses variable 'ward' that is not declared") in messages
    assert ("wechat.data.first", "uses variable 'nope' that is not declared") in messages


def test_rendering_refuses_missing_variables_and_sandboxes_templates() -> None:
    spec = _spec()
    with pytest.raises(ValueError, match="link"):
        render_template(spec, ENV, {"patient_name": "张三"})
    sneaky = _spec(variables=[], sms="{{ ''.__class__.__mro__ }}")
    assert any(
        "does not render" in p.message for p in check_template(sneaky, ENV, max_sms_segments=4)
    )
