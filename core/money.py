"""Money as patients and staff read it. Amounts are integer fen everywhere in the platform."""

from __future__ import annotations


def yuan(fen: int) -> str:
    """12345 -> '¥123.45', with thousands separators and a leading minus for negatives."""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}¥{whole:,}.{cents:02d}"
