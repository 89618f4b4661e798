"""The pure parts of staff sign-in and administration: password strength, login names, TOTP
steps and what a data scope needs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyotp
import pytest

from core.models import DataScope
from services.identity import (
    generate_one_time_password,
    matching_totp_step,
    password_problem,
    username_problem,
)
from services.staff_admin import scope_problems

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
NOW = datetime(2026, 12, 3, 2, 0, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    ("password", "username", "ok"),
    [
        ("0123456789", "wang", True),
        ("012345678", "wang", False),
        ("Wang.Nurse", "wang.nurse", False),
        (" wang.nurse ", "wang.nurse", False),
        ("x" * 257, None, False),
    ],
)
def test_password_strength(password: str, username: str | None, ok: bool) -> None:
    assert (password_problem(password, username) is None) is ok


@pytest.mark.parametrize(
    ("username", "ok"),
    [("wang", True), ("wang.nurse-2_b", True), ("ab", False), ("王护士", False), ("-x1", False)],
)
def test_login_names(username: str, ok: bool) -> None:
    assert (username_problem(username) is None) is ok


def test_one_time_passwords_are_strong_enough_and_differ() -> None:
    generated = {generate_one_time_password() for _ in range(50)}
    assert len(generated) == 50
    assert all(password_problem(p, "anyone") is None for p in generated)


def test_a_totp_code_is_accepted_near_now_and_only_once() -> None:
    totp = pyotp.TOTP(SECRET)
    step = totp.timecode(NOW)
    assert matching_totp_step(SECRET, totp.at(NOW), NOW, None) == step
    # Half a minute of clock drift either way.
    assert matching_totp_step(SECRET, totp.at(NOW - timedelta(seconds=30)), NOW, None) == step - 1
    assert matching_totp_step(SECRET, totp.at(NOW + timedelta(seconds=30)), NOW, None) == step + 1
    assert matching_totp_step(SECRET, totp.at(NOW - timedelta(seconds=90)), NOW, None) is None
    # Used once: that step and earlier ones are spent.
    assert matching_totp_step(SECRET, totp.at(NOW), NOW, step) is None
    assert matching_totp_step(SECRET, "abcdef", NOW, None) is None


@pytest.mark.parametrize(
    ("scope", "department", "ward", "staff_code", "fields"),
    [
        (DataScope.ORGANISATION, None, None, None, []),
        (DataScope.DEPARTMENT, "cardiology", None, None, []),
        (DataScope.DEPARTMENT, None, None, None, ["department_code"]),
        (DataScope.WARD, "cardiology", "一病区", None, []),
        (DataScope.WARD, None, None, None, ["department_code", "ward"]),
        (DataScope.OWN, "cardiology", None, None, ["staff_code"]),
        (DataScope.OWN, None, None, "N001", []),
    ],
)
def test_what_each_data_scope_needs(
    scope: DataScope,
    department: str | None,
    ward: str | None,
    staff_code: str | None,
    fields: list[str],
) -> None:
    assert [f for f, _ in scope_problems(scope, department, ward, staff_code)] == fields
