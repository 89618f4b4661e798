from __future__ import annotations

import pytest

from core.phones import normalise_cn_mobile


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("13800138001", "13800138001"),
        ("+86 135 0013 5005", "13500135005"),
        ("0086-139-0013-9002", "13900139002"),
        ("8613700137003", "13700137003"),
        ("010-8888 6666", None),
        ("12800138001", None),
        ("1380013800", None),
        ("", None),
        (None, None),
    ],
)
def test_mainland_mobile_numbers(raw: str | None, expected: str | None) -> None:
    assert normalise_cn_mobile(raw) == expected
