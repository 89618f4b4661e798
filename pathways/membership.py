"""Who an HIS event enrols in a pathway (FU-1, FU-6, SAT-1, CM-2): pure rules over the event's
facts, and a reproducible sample for surveys that go to a share of visits."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date

from pathways.definition import Membership


@dataclass(frozen=True)
class EventFacts:
    event_type: str
    encounter_kind: str | None
    department_code: str | None
    ward: str | None
    diagnoses: list[tuple[str, str]] = field(default_factory=list)  # (code, name)
    drugs: list[str] = field(default_factory=list)
    orders: list[str] = field(default_factory=list)
    sex: str | None = None
    birth_date: date | None = None
    on: date | None = None  # the day of the event, for the patient's age


def age(birth: date | None, on: date | None) -> int | None:
    if birth is None or on is None:
        return None
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def in_sample(pathway_id: str, patient_id: str, event_ref: str, ratio: float) -> bool:
    """The same answer for the same patient and event every time it is asked (auditable)."""
    if ratio >= 1:
        return True
    digest = hashlib.sha256(f"{pathway_id}/{patient_id}/{event_ref}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < ratio


def _any_contains(wanted: list[str], have: list[str]) -> bool:
    return any(w in h for w in wanted for h in have)


def matches(membership: Membership, facts: EventFacts) -> bool:
    m = membership
    if facts.event_type not in m.events:
        return False
    if m.encounter_kinds and facts.encounter_kind not in m.encounter_kinds:
        return False
    if m.departments and facts.department_code not in m.departments:
        return False
    if m.wards and facts.ward not in m.wards:
        return False
    if m.diagnoses and not any(
        code.upper().startswith(w.upper()) or w in name
        for w in m.diagnoses
        for code, name in facts.diagnoses
    ):
        return False
    if m.drugs and not _any_contains(m.drugs, facts.drugs):
        return False
    if m.orders and not _any_contains(m.orders, facts.orders):
        return False
    if m.sex is not None and facts.sex != m.sex:
        return False
    years = age(facts.birth_date, facts.on)
    if m.min_age is not None and (years is None or years < m.min_age):
        return False
    return not (m.max_age is not None and (years is None or years > m.max_age))
