"""SMS size: how many segments a text costs, the way carriers count it.

Any character outside the GSM 03.38 alphabet (every Chinese character) switches the whole text to
UCS-2: 70 characters fit in one SMS, 67 per segment once it is split. GSM-7 texts fit 160, or 153
per segment; characters of the extension table count twice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

_GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡"
    "ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENDED = frozenset("^{}\\[~]|€\f")


@dataclass(frozen=True)
class SmsSize:
    encoding: Literal["GSM-7", "UCS-2"]
    units: int
    segments: int


def sms_size(text: str) -> SmsSize:
    if all(c in _GSM7_BASIC or c in _GSM7_EXTENDED for c in text):
        units = sum(2 if c in _GSM7_EXTENDED else 1 for c in text)
        single, multi = 160, 153
        encoding: Literal["GSM-7", "UCS-2"] = "GSM-7"
    else:
        # Characters beyond the BMP (some emoji) take two UTF-16 code units.
        units = len(text.encode("utf-16-le")) // 2
        single, multi = 70, 67
        encoding = "UCS-2"
    segments = 1 if units <= single else math.ceil(units / multi)
    return SmsSize(encoding, units, segments)
