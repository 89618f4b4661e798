"""Which service enterprise dispenses, decocts and delivers a paid prescription (RX-6).

Pure: the workflow calls it with the hospital's rules pinned at submission.
"""

from __future__ import annotations

from collections.abc import Sequence

from core.hospitals import DispatchRule


def choose_enterprise(rules: Sequence[DispatchRule], mode: str, decoction: bool) -> str | None:
    """The first rule whose conditions match, or None when no rule covers the prescription."""
    for rule in rules:
        if mode not in rule.delivery_modes:
            continue
        if rule.decoction is not None and rule.decoction != decoction:
            continue
        return rule.enterprise
    return None


def enterprise_sequence(mode: str, decoction: bool) -> list[str]:
    """The statuses an enterprise reports, in order, for one prescription."""
    steps = ["dispensing"]
    if decoction:
        steps.append("decocting")
    steps += ["shipped", "delivered"] if mode == "delivery" else ["ready_for_pickup", "picked_up"]
    return steps
