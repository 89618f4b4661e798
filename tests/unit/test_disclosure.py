"""SEC-3: which identifiers each role sees in full, and what the masked forms look like."""

from __future__ import annotations

import pytest

from core.models import StaffRole
from services.disclosure import IN_FULL, REVEALABLE, Identifier, mask, may_reveal, shown


def test_every_role_has_a_rule() -> None:
    assert set(IN_FULL) == set(StaffRole) == set(REVEALABLE)


@pytest.mark.parametrize(
    ("identifier", "value", "masked"),
    [
        (Identifier.NAME, "张建国", "张**"),
        (Identifier.PHONE, "13800138001", "138****8001"),
        (Identifier.PHONE, "+8613800138001", "138****8001"),
        (Identifier.PHONE, "+442071838750", "+44*******750"),
        (Identifier.ID_NUMBER, "11010519491231002X", "1101**********002X"),
        (Identifier.ID_NUMBER, "110105491231002", "110*********002"),
        (Identifier.ADDRESS, "上海市静安区南京西路1号", "上海市静安区****"),
        (Identifier.ADDRESS, "静安区", "****"),
        (Identifier.PHONE, "", ""),
    ],
)
def test_masked_forms(identifier: Identifier, value: str, masked: str) -> None:
    assert mask(identifier, value) == masked


def test_clinicians_see_names_and_nobody_sees_numbers_on_lists() -> None:
    assert shown(StaffRole.NURSE, Identifier.NAME, "张建国") == "张建国"
    assert shown(StaffRole.ADMIN, Identifier.NAME, "张建国") == "张**"
    assert shown(None, Identifier.NAME, "张建国") == "张**"
    for role in StaffRole:
        assert shown(role, Identifier.PHONE, "13800138001") == "138****8001"
        assert shown(role, Identifier.ID_NUMBER, "11010519491231002X") != "11010519491231002X"


def test_reveal_rights() -> None:
    assert may_reveal(StaffRole.NURSE, Identifier.PHONE)
    assert may_reveal(StaffRole.PHARMACIST, Identifier.ADDRESS)
    assert not may_reveal(StaffRole.PHARMACIST, Identifier.ID_NUMBER)
    assert not may_reveal(StaffRole.ADMIN, Identifier.PHONE)
    assert not may_reveal(StaffRole.INTEGRATION, Identifier.NAME)
