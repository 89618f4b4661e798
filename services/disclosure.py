"""What of a patient's identifiers each role sees (SEC-3), in one table, and how the rest is masked.

Responses carry an identifier in full only where the role's daily work needs it: clinicians and
pharmacists need the name to know whom they are treating; nobody needs a phone number, ID-card
number or address on a list, so those are masked for everyone and a clinician who is about to call
or visit reveals the one value through its own audited call.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from core.logs import mask_name, mask_text
from core.models import StaffRole


class Identifier(StrEnum):
    NAME = "name"
    PHONE = "phone"
    ID_NUMBER = "id_number"
    ADDRESS = "address"


_CLINICAL = frozenset({Identifier.NAME})

# Shown in full in responses; everything else is masked.
IN_FULL: Mapping[StaffRole, frozenset[Identifier]] = {
    StaffRole.NURSE: _CLINICAL,
    StaffRole.DOCTOR: _CLINICAL,
    StaffRole.CARE_MANAGER: _CLINICAL,
    StaffRole.PHARMACIST: _CLINICAL,
    StaffRole.ADMIN: frozenset(),
    StaffRole.FINANCE: frozenset(),
    StaffRole.INTEGRATION: frozenset(),
}

# May be revealed one at a time, audited: clinicians call, visit and verify identity;
# pharmacists sort out a delivery.
REVEALABLE: Mapping[StaffRole, frozenset[Identifier]] = {
    StaffRole.NURSE: frozenset(Identifier),
    StaffRole.DOCTOR: frozenset(Identifier),
    StaffRole.CARE_MANAGER: frozenset(Identifier),
    StaffRole.PHARMACIST: frozenset({Identifier.PHONE, Identifier.ADDRESS}),
    StaffRole.ADMIN: frozenset(),
    StaffRole.FINANCE: frozenset(),
    StaffRole.INTEGRATION: frozenset(),
}


def mask(identifier: Identifier, value: str) -> str:
    if not value:
        return value
    if identifier is Identifier.NAME:
        return mask_name(value)
    if identifier is Identifier.ADDRESS:
        # The district is enough to plan a round; the street and door are not shown.
        return value[:6] + "****" if len(value) > 6 else "****"
    masked = mask_text(value)
    if masked == value:
        # Not a shape the pattern knows (a foreign number, an old 15-digit ID): hide the middle.
        keep = max(1, len(value) // 4)
        masked = value[:keep] + "*" * (len(value) - 2 * keep) + value[-keep:]
    return masked


def shown(role: StaffRole | None, identifier: Identifier, value: str) -> str:
    """The value as this role sees it in a response (None: not a staff member; all masked)."""
    if role is not None and identifier in IN_FULL[role]:
        return value
    return mask(identifier, value)


def may_reveal(role: StaffRole, identifier: Identifier) -> bool:
    return identifier in REVEALABLE[role]
