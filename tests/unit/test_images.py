"""What an uploaded file really is, by its first bytes."""

from __future__ import annotations

import pytest

from core.images import normalise_content_type, sniff_image_type
from tests.images import HEIC, JPEG, WEBP, png


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (JPEG, "image/jpeg"),
        (png(), "image/png"),
        (WEBP, "image/webp"),
        (HEIC, "image/heic"),
        # A generic HEIF brand with HEVC among its compatible brands is HEIC.
        (b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00mif1heic" + b"\x00" * 8, "image/heic"),
        # AVIF shares the generic brand but is not HEIC.
        (b"\x00\x00\x00\x18ftypavif\x00\x00\x00\x00mif1avif" + b"\x00" * 8, None),
        (b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00mif1avif" + b"\x00" * 8, None),
        (b"%PDF-1.7\n", None),
        (b"GIF89a", None),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", None),
        (b"", None),
        (b"\xff\xd8", None),
    ],
)
def test_sniffing(data: bytes, expected: str | None) -> None:
    assert sniff_image_type(data) == expected


def test_declared_types_are_normalised() -> None:
    assert normalise_content_type("image/JPEG; q=1") == "image/jpeg"
    assert normalise_content_type("image/jpg") == "image/jpeg"
    assert normalise_content_type("image/heif") == "image/heic"
    assert normalise_content_type(None) == ""
