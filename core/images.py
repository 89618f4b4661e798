"""What image a file really is, from its first bytes: a declared content type is only what the
sender's browser guessed (or claimed), and the page shows these files back to people."""

from __future__ import annotations

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
