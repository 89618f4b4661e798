"""Encryption at rest (SEC-4): SM4-GCM envelopes for personal data, HMAC-SM3 blind indexes.

Every stored value is a text envelope ``v1:<key id>:<base64url(nonce | ciphertext | tag)>``.
The associated data binds it to its column (``table.column``) and to the key id, so a value
copied into another column, or relabelled with another key id, fails authentication. A keyring
holds the current key (every new value) and older keys (still decrypted, until the rotation
workflow has re-encrypted their rows). Exact-match lookups (phone, ID-card number) go through a
blind index: HMAC-SM3 over the normalised value under a separate key, never the data keys.

The keyring is process-wide configuration, set once from ``Settings`` where a process builds its
database engine (``configure_keyring``). Using an encrypted column before that raises
``KeyringNotConfigured``: nothing is ever stored in plain text by accident.

The primitives are the ``cryptography`` package's (OpenSSL); nothing here implements a cipher.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import os
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from sqlalchemy.engine import Dialect

from core.phones import to_e164

if TYPE_CHECKING:
    from core.settings import Settings

ENVELOPE_VERSION = "v1"
KEY_BYTES = 16  # SM4 has 128-bit keys
NONCE_BYTES = 12  # the GCM nonce size (96 bits)
TAG_BYTES = 16
# Decrypted values of envelopes up to this length (names, phones, ID numbers) are cached.
SHORT_ENVELOPE = 160
SHORT_VALUES_CACHED = 20_000
# Key ids appear inside envelopes and in the rotation job's LIKE patterns: no ':' and no
# SQL wildcard characters.
KEY_ID = re.compile(r"^[A-Za-z0-9-]{1,32}$")


class CryptoError(Exception):
    """A value that cannot be decrypted: tampered, for another column, or an unknown key."""


class KeyringNotConfigured(RuntimeError):
    """An encrypted column was used before the process configured its keyring."""


def sm4_gcm_encrypt(key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> tuple[bytes, bytes]:
    """(ciphertext, tag) of SM4 in GCM mode."""
    encryptor = Cipher(algorithms.SM4(key), modes.GCM(nonce)).encryptor()
    encryptor.authenticate_additional_data(aad)
    ciphertext = encryptor.update(plaintext) + encryptor.finalize()
    return ciphertext, encryptor.tag


def sm4_gcm_decrypt(key: bytes, nonce: bytes, ciphertext: bytes, tag: bytes, aad: bytes) -> bytes:
    """The plaintext; raises cryptography's InvalidTag when anything was altered."""
    decryptor = Cipher(algorithms.SM4(key), modes.GCM(nonce, tag)).decryptor()
    decryptor.authenticate_additional_data(aad)
    return decryptor.update(ciphertext) + decryptor.finalize()


def hmac_sm3(key: bytes, message: bytes) -> bytes:
    mac = hmac.HMAC(key, hashes.SM3())
    mac.update(message)
    return mac.finalize()


def parse_key(text: str, what: str) -> bytes:
    """A 16-byte key given as 32 hex digits or as base64."""
    text = text.strip()
    raw: bytes | None = None
    if re.fullmatch(r"[0-9a-fA-F]{32}", text):
        raw = bytes.fromhex(text)
    else:
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raw = None
    if raw is None or len(raw) != KEY_BYTES:
        raise ValueError(f"{what} must be 16 bytes, as 32 hex digits or base64")
    return raw


def envelope_key_id(envelope: str) -> str:
    """The key id an envelope was sealed with (no decryption)."""
    parts = envelope.split(":", 2)
    if len(parts) != 3 or parts[0] != ENVELOPE_VERSION:
        raise CryptoError("not an encrypted value")
    return parts[1]


def _aad(key_id: str, context: str) -> bytes:
    return f"{ENVELOPE_VERSION}|{key_id}|{context}".encode()


class Keyring:
    def __init__(self, keys: Mapping[str, bytes], current: str, blind_index_key: bytes) -> None:
        for key_id, key in keys.items():
            if not KEY_ID.match(key_id):
                raise ValueError(f"key id '{key_id}' must be 1-32 letters, digits or '-'")
            if len(key) != KEY_BYTES:
                raise ValueError(f"data key '{key_id}' must be {KEY_BYTES} bytes")
        if current not in keys:
            raise ValueError(f"the current data key id '{current}' is not among the data keys")
        if len(blind_index_key) != KEY_BYTES:
            raise ValueError(f"the blind index key must be {KEY_BYTES} bytes")
        if blind_index_key in keys.values():
            raise ValueError("the blind index key must differ from every data key")
        self._keys = dict(keys)
        self.current = current
        self._blind = blind_index_key
        # Lists decrypt the same patients' names and phones request after request, and each
        # SM4-GCM decryption sets up a cipher afresh (a tenth of a staff list's CPU; issue 15).
        # Only values that authenticated are kept, under their column, in this process's memory,
        # which holds them anyway while it answers.
        self._decrypt_short = functools.lru_cache(maxsize=SHORT_VALUES_CACHED)(self._decrypt)

    def holds_any(self, keys: frozenset[bytes]) -> bool:
        """Whether any of these keys is among the data keys or is the blind index key."""
        return bool(keys & {*self._keys.values(), self._blind})

    @property
    def key_ids(self) -> frozenset[str]:
        return frozenset(self._keys)

    def encrypt(self, plaintext: str, context: str) -> str:
        key_id, raw = self.seal(plaintext.encode(), context)
        sealed = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        return f"{ENVELOPE_VERSION}:{key_id}:{sealed}"

    def decrypt(self, envelope: str, context: str) -> str:
        if len(envelope) <= SHORT_ENVELOPE:
            return self._decrypt_short(envelope, context)
        return self._decrypt(envelope, context)

    def _decrypt(self, envelope: str, context: str) -> str:
        key_id = envelope_key_id(envelope)
        body = envelope.split(":", 2)[2]
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except (binascii.Error, ValueError) as exc:
            raise CryptoError(f"malformed encrypted value ({context})") from exc
        return self.unseal(key_id, raw, context).decode()

    def seal(self, plaintext: bytes, context: str) -> tuple[str, bytes]:
        """(current key id, nonce | ciphertext | tag): the envelope's parts as bytes, for values
        too large to carry as text (uploaded files)."""
        nonce = os.urandom(NONCE_BYTES)
        ciphertext, tag = sm4_gcm_encrypt(
            self._keys[self.current], nonce, plaintext, _aad(self.current, context)
        )
        return self.current, nonce + ciphertext + tag

    def unseal(self, key_id: str, raw: bytes, context: str) -> bytes:
        key = self._keys.get(key_id)
        if key is None:
            raise CryptoError(f"value sealed with unknown key id '{key_id}' ({context})")
        if len(raw) < NONCE_BYTES + TAG_BYTES:
            raise CryptoError(f"truncated encrypted value ({context})")
        nonce, ciphertext, tag = raw[:NONCE_BYTES], raw[NONCE_BYTES:-TAG_BYTES], raw[-TAG_BYTES:]
        try:
            return sm4_gcm_decrypt(key, nonce, ciphertext, tag, _aad(key_id, context))
        except InvalidTag as exc:
            raise CryptoError(f"encrypted value failed authentication ({context})") from exc

    def reencrypt(self, envelope: str, context: str) -> str:
        """The value sealed under the current key (unchanged if it already is)."""
        if envelope_key_id(envelope) == self.current:
            return envelope
        return self.encrypt(self.decrypt(envelope, context), context)

    def blind_index(self, kind: str, value: str | None) -> str | None:
        """A keyed digest for exact-match lookups; None for an empty value."""
        normalised = normalise_for_index(kind, value)
        if not normalised:
            return None
        return self.blind_digest(kind, normalised.encode())

    def blind_digest(self, kind: str, data: bytes) -> str:
        """HMAC-SM3 under the blind index key: equal data, equal digest, and nothing to confirm
        a guess with for whoever reads the database without the key."""
        return hmac_sm3(self._blind, kind.encode() + b"\x00" + data).hex()


def normalise_for_index(kind: str, value: str | None) -> str:
    """The form a value is indexed in, so that '138 0013 8001' finds '+8613800138001'."""
    if not value:
        return ""
    if kind == "phone":
        return to_e164(value) or re.sub(r"[\s\-()]", "", value)
    if kind == "id_number":
        return re.sub(r"\s", "", value).upper()
    if kind == "openid":
        return value.strip()
    raise ValueError(f"no blind index kind '{kind}'")


def keyring_from_settings(settings: Settings) -> Keyring:
    try:
        configured = json.loads(settings.data_keys.get_secret_value())
    except json.JSONDecodeError as exc:
        raise ValueError("CAREPATH_DATA_KEYS must be a JSON object: key id -> key") from exc
    if not isinstance(configured, dict) or not configured:
        raise ValueError("CAREPATH_DATA_KEYS must be a non-empty JSON object: key id -> key")
    keys = {
        str(key_id): parse_key(str(secret), f"CAREPATH_DATA_KEYS['{key_id}']")
        for key_id, secret in configured.items()
    }
    blind = parse_key(settings.blind_index_key.get_secret_value(), "CAREPATH_BLIND_INDEX_KEY")
    return Keyring(keys, settings.data_key_id, blind)


_keyring: Keyring | None = None


def configure_keyring(keyring: Keyring | None) -> None:
    """Sets (or, with None, clears) the process-wide keyring the encrypted columns use."""
    global _keyring
    _keyring = keyring


def configure_from_settings(settings: Settings) -> Keyring:
    keyring = keyring_from_settings(settings)
    configure_keyring(keyring)
    return keyring


def current_keyring() -> Keyring:
    if _keyring is None:
        raise KeyringNotConfigured(
            "the data keyring is not configured: call core.crypto.configure_from_settings "
            "before using the database"
        )
    return _keyring


def blind_index(kind: str, value: str | None) -> str | None:
    return current_keyring().blind_index(kind, value)


def key_fingerprint(key: bytes) -> str:
    """A short, non-secret name for a key, for logs."""
    return hashlib.sha256(b"carepath-key-fingerprint" + key).hexdigest()[:12]


class EncryptedText(sa.TypeDecorator[str]):
    """A text column stored as an SM4-GCM envelope bound to ``context`` (``table.column``)."""

    impl = sa.Text
    cache_ok = True

    def __init__(self, context: str) -> None:
        super().__init__()
        self.context = context

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:  # noqa: ARG002
        if value is None:
            return None
        return current_keyring().encrypt(value, self.context)

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:  # noqa: ARG002
        if value is None:
            return None
        return current_keyring().decrypt(value, self.context)


class EncryptedJSON(sa.TypeDecorator[Any]):
    """A JSON value (dict, list, ...) stored as one SM4-GCM envelope. Nothing can query into
    it with SQL: read it in Python."""

    impl = sa.Text
    cache_ok = True

    def __init__(self, context: str) -> None:
        super().__init__()
        self.context = context

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:  # noqa: ARG002
        if value is None:
            return None
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        return current_keyring().encrypt(text, self.context)

    def process_result_value(self, value: str | None, dialect: Dialect) -> Any:  # noqa: ARG002
        if value is None:
            return None
        return json.loads(current_keyring().decrypt(value, self.context))

    def compare_values(self, x: Any, y: Any) -> bool:
        return bool(x == y)
