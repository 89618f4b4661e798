"""Signed, expiring links to uploaded files, and the encrypted files themselves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.crypto import CryptoError, configure_from_settings
from core.file_store import EncryptedFiles
from core.links import FileLinkExpired, FileLinkSigner, LinkError, LinkSigner
from harness.settings import make_settings
from tests.images import png

NOW = datetime(2026, 3, 1, 8, tzinfo=UTC)
REF = "upl_" + "A" * 32


def test_a_file_link_opens_its_file_until_it_expires() -> None:
    signer = FileLinkSigner("secret-" * 6)
    link = signer.issue(REF, NOW + timedelta(hours=1))

    signer.verify(REF, str(link.expires), link.signature, NOW)
    with pytest.raises(FileLinkExpired):
        signer.verify(REF, str(link.expires), link.signature, NOW + timedelta(hours=1))
    with pytest.raises(LinkError):
        signer.verify("upl_" + "B" * 32, str(link.expires), link.signature, NOW)
    with pytest.raises(LinkError):
        signer.verify(REF, str(link.expires + 3600), link.signature, NOW)
    malformed = ("", "-1", "9" * 40, "²", "١٢٣", " 12")
    for expires, signature in [(e, link.signature) for e in malformed]:
        with pytest.raises(LinkError):
            signer.verify(REF, expires, signature, NOW)
    # Another secret, or the patient-link key, signs something else.
    with pytest.raises(LinkError):
        FileLinkSigner("other-" * 6).verify(REF, str(link.expires), link.signature, NOW)
    with pytest.raises(LinkError):
        LinkSigner("secret-" * 6).verify(link.signature, NOW)


def test_stored_files_are_sealed_and_bound_to_their_name(tmp_path: Path) -> None:
    configure_from_settings(make_settings())
    files = EncryptedFiles(tmp_path)
    image = png(32, 32)

    files.write(REF, image)

    on_disk = files.path(REF).read_bytes()
    assert image not in on_disk
    assert b"IHDR" not in on_disk
    assert files.read(REF) == image
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == [REF]
    other = "upl_" + "C" * 32
    files.path(other).parent.mkdir(parents=True, exist_ok=True)
    files.path(other).write_bytes(on_disk)
    with pytest.raises(CryptoError):
        files.read(other)
    with pytest.raises(ValueError, match="not a stored file name"):
        files.path("../../etc/passwd")
    files.remove(REF)
    with pytest.raises(FileNotFoundError):
        files.read(REF)
