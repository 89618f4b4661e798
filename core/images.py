"""What image a file really is, from its first bytes (a declared content type is only what the
sender's browser guessed, or claimed, and the page shows these files back to people), and the
same picture without the metadata a phone writes into it."""

from __future__ import annotations

import struct
from typing import Literal

# HEIF brands of HEVC-coded images and sequences (ISO/IEC 23008-12), as phones write them.
_HEIC_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs"})
# Generic HEIF brands: HEIC only when a compatible brand says HEVC (AVIF uses them too).
_HEIF_BRANDS = frozenset({b"mif1", b"msf1"})
# The most of the file sniffing looks at.
SNIFF_BYTES = 64

# Names browsers and phones use for the types forms accept, to the form language's names.
_ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg", "image/heif": "image/heic"}


def sniff_image_type(data: bytes) -> str | None:
    """image/jpeg, image/png, image/webp or image/heic by the file's signature; None for
    anything else."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if len(data) >= 16 and data[4:8] == b"ftyp":
        box = min(int.from_bytes(data[:4], "big"), len(data), SNIFF_BYTES)
        major = data[8:12]
        compatible = {data[i : i + 4] for i in range(16, box - 3, 4)}
        if major in _HEIC_BRANDS or (major in _HEIF_BRANDS and compatible & _HEIC_BRANDS):
            return "image/heic"
    return None


def normalise_content_type(declared: str | None) -> str:
    """The declared type without parameters, lower case, under the form language's name."""
    base = (declared or "").split(";", 1)[0].strip().lower()
    return _ALIASES.get(base, base)


class DamagedImage(ValueError):
    """The file starts like an image of its type but its structure is broken or cut short."""


# JPEG segments that say where, when and with what a photo was taken, or carry text: APP1
# (Exif, XMP), APP3..APP13 and APP15 (vendor and IPTC blocks), COM. APP0 (JFIF), APP2 (ICC
# colour profile) and APP14 (Adobe colour transform) change how the picture looks and stay.
_JPEG_DROPPED = frozenset({0xE1, *range(0xE3, 0xEE), 0xEF, 0xFE})
_PNG_DROPPED = frozenset({b"eXIf", b"tEXt", b"zTXt", b"iTXt", b"tIME"})
_WEBP_DROPPED = frozenset({b"EXIF", b"XMP "})
_EXIF_ORIENTATION = 0x0112


def without_metadata(data: bytes, content_type: str) -> bytes:
    """The image with its metadata removed and its pixels untouched: a phone's photo carries
    the place it was taken (GPS), the time and the device, which are not the clinic's to keep.
    A JPEG keeps only its orientation, so the picture is shown the right way up; anything after
    the image's end (a phone's appended depth map or preview, with metadata of its own) goes.
    HEIC is returned as it is. DamagedImage when the structure cannot be followed."""
    if content_type == "image/jpeg":
        return _jpeg_without_metadata(data)
    if content_type == "image/png":
        return _png_without_metadata(data)
    if content_type == "image/webp":
        return _webp_without_metadata(data)
    return data


def _jpeg_without_metadata(data: bytes) -> bytes:
    size = len(data)
    kept = [data[:2]]
    at = 2
    while True:
        if at >= size or data[at] != 0xFF:
            raise DamagedImage("a JPEG segment does not start with a marker")
        while at < size and data[at] == 0xFF:  # fill bytes before a marker
            at += 1
        if at >= size:
            raise DamagedImage("the JPEG ends inside a marker")
        marker = data[at]
        at += 1
        if marker == 0xD9:  # end of image
            kept.append(b"\xff\xd9")
            return b"".join(kept)
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            kept.append(bytes((0xFF, marker)))
            continue
        length = int.from_bytes(data[at : at + 2], "big")
        if length < 2 or at + length > size:
            raise DamagedImage("a JPEG segment runs past the end of the file")
        segment = data[at - 2 : at + length]
        at += length
        if marker == 0xE1:
            orientation = _orientation(segment[4:])
            if orientation not in (None, 1):
                kept.append(_orientation_segment(orientation))
        elif marker not in _JPEG_DROPPED:
            kept.append(segment)
        if marker == 0xDA:  # start of scan: entropy-coded data up to the next real marker
            end = at
            while True:
                end = data.find(b"\xff", end)
                if end < 0 or end + 1 >= size:
                    raise DamagedImage("the JPEG's picture data has no end")
                following = data[end + 1]
                if following == 0 or 0xD0 <= following <= 0xD7:
                    end += 2  # a stuffed 0xFF or a restart marker: still picture data
                elif following == 0xFF:
                    end += 1
                else:
                    break
            kept.append(data[at:end])
            at = end


def _orientation(app1: bytes) -> int | None:
    """The Exif orientation (1..8) of an APP1 segment's body, if it holds one."""
    if not app1.startswith(b"Exif\x00\x00"):
        return None
    tiff = app1[6:]
    order: Literal["little", "big"]
    if tiff[:4] == b"II*\x00":
        order = "little"
    elif tiff[:4] == b"MM\x00*":
        order = "big"
    else:
        return None
    ifd = int.from_bytes(tiff[4:8], order)
    count = int.from_bytes(tiff[ifd : ifd + 2], order)
    for index in range(count):
        entry = tiff[ifd + 2 + 12 * index : ifd + 14 + 12 * index]
        if len(entry) < 12:
            return None
        if int.from_bytes(entry[:2], order) == _EXIF_ORIENTATION:
            value = int.from_bytes(entry[8:10], order)
            return value if 1 <= value <= 8 else None
    return None


def _orientation_segment(orientation: int) -> bytes:
    """An APP1 Exif segment holding the orientation and nothing else."""
    entry = struct.pack(">HHIHH", _EXIF_ORIENTATION, 3, 1, orientation, 0)
    body = b"Exif\x00\x00MM\x00*" + struct.pack(">IH", 8, 1) + entry + struct.pack(">I", 0)
    return b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body


def _png_without_metadata(data: bytes) -> bytes:
    kept = [data[:8]]
    at = 8
    while at + 12 <= len(data):
        length = int.from_bytes(data[at : at + 4], "big")
        kind = data[at + 4 : at + 8]
        end = at + 12 + length
        if end > len(data):
            break
        if kind not in _PNG_DROPPED:
            kept.append(data[at:end])
        at = end
        if kind == b"IEND":
            return b"".join(kept)
    raise DamagedImage("the PNG has no end chunk")


def _webp_without_metadata(data: bytes) -> bytes:
    declared = int.from_bytes(data[4:8], "little")
    if declared + 8 > len(data):
        raise DamagedImage("the WebP file is shorter than its header says")
    chunks = []
    at = 12
    while at < declared + 8:
        if at + 8 > len(data):
            raise DamagedImage("a WebP chunk runs past the end of the file")
        kind = data[at : at + 4]
        length = int.from_bytes(data[at + 4 : at + 8], "little")
        end = at + 8 + length + (length & 1)
        if end > len(data):
            raise DamagedImage("a WebP chunk runs past the end of the file")
        chunk = data[at:end]
        if kind == b"VP8X" and length >= 1:
            # The extended header's flags announce Exif (0x08) and XMP (0x04) chunks.
            chunk = chunk[:8] + bytes((chunk[8] & ~0x0C,)) + chunk[9:]
        if kind not in _WEBP_DROPPED:
            chunks.append(chunk)
        at = end
    body = b"WEBP" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body
