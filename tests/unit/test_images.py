"""What an uploaded file really is, by its first bytes."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from core.images import DamagedImage, normalise_content_type, sniff_image_type, without_metadata
from tests.images import GPS_IFD, HEIC, JPEG, WEBP, photo, png


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


@pytest.mark.parametrize(
    ("kind", "content_type", "kept_exif"),
    [
        ("JPEG", "image/jpeg", {0x0112: 6}),  # the orientation alone
        ("PNG", "image/png", {}),
        ("WEBP", "image/webp", {}),
    ],
)
def test_a_photo_loses_its_metadata_and_keeps_its_pixels(
    kind: str, content_type: str, kept_exif: dict[int, int]
) -> None:
    taken = photo(kind)
    stripped = without_metadata(taken, content_type)

    before, after = Image.open(io.BytesIO(taken)), Image.open(io.BytesIO(stripped))
    assert before.getexif().get_ifd(GPS_IFD)  # the test photo does say where it was taken
    assert dict(after.getexif()) == kept_exif
    assert after.getexif().get_ifd(GPS_IFD) == {}
    assert not {"comment", "Location", "xmp"} & set(after.info)
    assert after.tobytes() == before.tobytes()
    for trace in (b"iPhone", b"Apple", b"2026:11:30", "上海".encode()):
        assert trace not in stripped
    assert sniff_image_type(stripped) == content_type


def test_a_jpeg_taken_upright_keeps_no_exif_and_nothing_after_its_end() -> None:
    taken = photo("JPEG", orientation=1)
    stripped = without_metadata(taken, "image/jpeg")
    assert b"Exif" not in stripped
    assert stripped.endswith(b"\xff\xd9")
    assert stripped.count(b"\xff\xd8") == 1
    assert without_metadata(stripped, "image/jpeg") == stripped  # nothing left to take


def test_an_image_without_metadata_is_unchanged() -> None:
    assert without_metadata(png(), "image/png") == png()
    assert without_metadata(HEIC, "image/heic") == HEIC


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (JPEG[: len(JPEG) // 2], "image/jpeg"),  # cut short in its picture data
        (JPEG[:30], "image/jpeg"),  # cut short in a segment
        (b"\xff\xd8\x00\x00", "image/jpeg"),
        (png()[:-12], "image/png"),  # no end chunk
        (photo("WEBP")[:-10], "image/webp"),
    ],
)
def test_a_damaged_image_is_named(data: bytes, content_type: str) -> None:
    with pytest.raises(DamagedImage):
        without_metadata(data, content_type)
