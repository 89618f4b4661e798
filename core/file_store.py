"""Files kept outside the database (uploaded photos and signatures), encrypted at rest (SEC-4).

Each file is sealed with SM4-GCM under the keyring's current key, its associated data binding it
to its name, so a file copied or renamed onto another name fails authentication. On disk:
``CPF1``, the key id's length and the key id, then nonce | ciphertext | tag. A write is atomic
(a temporary file in the same directory, flushed, then renamed): a reader sees the whole file or
none. The functions are blocking; callers on the event loop run them in a thread.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from pathlib import Path

from core.crypto import CryptoError, current_keyring

_MAGIC = b"CPF1"
# Names become paths: letters, digits, '_' and '-' only, so nothing climbs out of the root.
_NAME = re.compile(r"^[A-Za-z0-9_-]{8,64}$")


class EncryptedFiles:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, name: str) -> Path:
        if not _NAME.match(name):
            raise ValueError("not a stored file name")
        # Spread over 4096 directories, so none grows to millions of entries.
        return self.root / name[-2:] / name

    @staticmethod
    def _context(name: str) -> str:
        return f"file.{name}"

    def write(self, name: str, data: bytes) -> None:
        path = self.path(name)
        key_id, sealed = current_keyring().seal(data, self._context(name))
        header = key_id.encode()
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        temporary = path.with_name(f".{name}.{secrets.token_hex(4)}.tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "wb") as out:
                out.write(_MAGIC + bytes([len(header)]) + header + sealed)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()

    def read(self, name: str) -> bytes:
        """The plaintext; FileNotFoundError when absent, CryptoError when it does not open."""
        key_id, sealed = self._sealed(name)
        return current_keyring().unseal(key_id, sealed, self._context(name))

    def reseal(self, name: str) -> bool:
        """Seals the file again under the current key if another key sealed it (key rotation);
        True when it was rewritten. FileNotFoundError, CryptoError as ``read``."""
        key_id, sealed = self._sealed(name)
        keyring = current_keyring()
        if key_id == keyring.current:
            return False
        self.write(name, keyring.unseal(key_id, sealed, self._context(name)))
        return True

    def _sealed(self, name: str) -> tuple[str, bytes]:
        raw = self.path(name).read_bytes()
        if not raw.startswith(_MAGIC) or len(raw) < len(_MAGIC) + 1:
            raise CryptoError(f"not a stored file ({name})")
        end = len(_MAGIC) + 1 + raw[len(_MAGIC)]
        return raw[len(_MAGIC) + 1 : end].decode("ascii", errors="replace"), raw[end:]

    def remove(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(name).unlink()
