"""Mainland China mobile numbers, the only SMS destinations the follow-up channel accepts."""

from __future__ import annotations

import re

_MOBILE = re.compile(r"^1[3-9]\d{9}$")


def normalise_cn_mobile(value: str | None) -> str | None:
    """'+86 138-0013-8000' -> '13800138000'; None when it is not a mainland mobile number."""
    if not value:
        return None
    digits = re.sub(r"[\s\-()]", "", value)
    if digits.startswith("+86"):
        digits = digits[3:]
    elif digits.startswith("0086"):
        digits = digits[4:]
    elif digits.startswith("86") and len(digits) == 13:
        digits = digits[2:]
    return digits if _MOBILE.match(digits) else None


_E164 = re.compile(r"^\+[1-9]\d{7,14}$")


def to_e164(value: str | None) -> str | None:
    """A mainland mobile number or an E.164 number as E.164 ('+8613800138000'); else None."""
    if not value:
        return None
    mobile = normalise_cn_mobile(value)
    if mobile is not None:
        return f"+86{mobile}"
    compact = re.sub(r"[\s\-()]", "", value)
    if compact.startswith("+86"):
        # A +86 number that is not a valid mobile cannot receive SMS.
        return None
    return compact if _E164.match(compact) else None
