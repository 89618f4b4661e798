"""Small images for upload tests: a PNG made by hand, and photos made with Pillow carrying the
metadata a phone writes (where, when, with what, which way up)."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image, PngImagePlugin

# Where the photo was taken, as a phone records it: GPS latitude 31°13'N, longitude 121°28'E.
GPS_IFD = 0x8825
PLACE = {1: "N", 2: (31.0, 13.0, 0.0), 3: "E", 4: (121.0, 28.0, 0.0)}


def png(width: int = 8, height: int = 8, rgb: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    """A real PNG of one colour, which browsers draw."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + bytes(rgb) * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


def _picture(width: int, height: int) -> Image.Image:
    # Top half red, bottom half blue: which way up it is shown can be told from the pixels.
    picture = Image.new("RGB", (width, height), (220, 30, 30))
    picture.paste((30, 30, 220), (0, height // 2, width, height))
    return picture


def phone_exif(orientation: int = 6) -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "Apple"  # Make
    exif[0x0110] = "iPhone 15"  # Model
    exif[0x0132] = "2026:11:30 08:15:00"  # DateTime
    exif[0x0112] = orientation
    exif[GPS_IFD] = PLACE
    return exif


def photo(kind: str = "JPEG", *, orientation: int = 6, width: int = 32, height: int = 24) -> bytes:
    """A phone photo with its place, time, device and orientation in Exif (and, as JPEG, a
    comment and a preview image appended after its end, as some phones write)."""
    out = io.BytesIO()
    exif = phone_exif(orientation)
    if kind == "PNG":
        text = PngImagePlugin.PngInfo()
        text.add_text("Location", "上海市黄浦区某小区")
        _picture(width, height).save(out, "PNG", exif=exif, pnginfo=text)
        return out.getvalue()
    _picture(width, height).save(
        out, kind, exif=exif, **({"comment": b"IMG_0001"} if kind == "JPEG" else {})
    )
    data = out.getvalue()
    if kind == "JPEG":
        preview = io.BytesIO()
        _picture(8, 6).save(preview, "JPEG", exif=phone_exif(1))
        data += preview.getvalue()
    return data


# A real JPEG with no metadata, and the start of a HEIC and a WebP file (sniffed, not drawn).
JPEG_IMAGE = io.BytesIO()
_picture(16, 16).save(JPEG_IMAGE, "JPEG")
JPEG = JPEG_IMAGE.getvalue()
HEIC = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64
WEBP = b"RIFF\x00\x01\x00\x00WEBPVP8 " + b"\x00" * 64
