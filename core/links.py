"""Signed, expiring tokens for the links sent to patients.

A token is short enough for an SMS (50 characters): version byte, task id and expiry, followed by
a truncated HMAC-SHA256 over them, all base64url. It proves that we issued the link for that task
and until when; it carries no personal data.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

_VERSION = 1
_PAYLOAD = struct.Struct(">B16sI")  # version, task uuid, expiry (unix seconds)
_MAC_BYTES = 16


class LinkError(Exception):
    """The token was not issued by us or was altered."""


class LinkExpired(LinkError):
    def __init__(self, task_id: str, expired_at: datetime) -> None:
        super().__init__(f"link for task {task_id} expired at {expired_at.isoformat()}")
        self.task_id = task_id
        self.expired_at = expired_at


@dataclass(frozen=True)
class LinkClaims:
    task_id: str
    expires_at: datetime


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class LinkSigner:
    def __init__(self, secret: str) -> None:
        # A derived key, so the link key can never double as the webhook key by misconfiguration.
        self._key = hmac.new(secret.encode(), b"carepath/patient-link/v1", hashlib.sha256).digest()

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:_MAC_BYTES]

    def issue(self, task_id: str, expires_at: datetime) -> str:
        if expires_at.tzinfo is None:
            raise ValueError("expires_at must be timezone-aware")
        payload = _PAYLOAD.pack(_VERSION, uuid.UUID(task_id).bytes, int(expires_at.timestamp()))
        return _b64(payload + self._mac(payload))

    def verify(self, token: str, now: datetime) -> LinkClaims:
        """Claims of a valid token; LinkExpired once past its expiry, LinkError if forged."""
        try:
            raw = _unb64(token)
        except (ValueError, TypeError) as exc:
            raise LinkError("malformed link token") from exc
        if len(raw) != _PAYLOAD.size + _MAC_BYTES:
            raise LinkError("malformed link token")
        payload, mac = raw[: _PAYLOAD.size], raw[_PAYLOAD.size :]
        if not hmac.compare_digest(mac, self._mac(payload)):
            raise LinkError("link token signature does not match")
        version, task_bytes, expiry = _PAYLOAD.unpack(payload)
        if version != _VERSION:
            raise LinkError(f"unsupported link token version {version}")
        claims = LinkClaims(str(uuid.UUID(bytes=task_bytes)), datetime.fromtimestamp(expiry, UTC))
        if now >= claims.expires_at:
            raise LinkExpired(claims.task_id, claims.expires_at)
        return claims


class FileLinkExpired(LinkError):
    """A file link we issued, past its expiry."""


@dataclass(frozen=True)
class FileLink:
    """The expiry and signature that make ``/files/<reference>`` readable until then."""

    reference: str
    expires: int  # unix seconds
    signature: str


class FileLinkSigner:
    """Signs links to stored files (uploaded photos and signatures). The reference alone opens
    nothing: a page hands out a link for as long as it may show the file."""

    def __init__(self, secret: str) -> None:
        # Its own derived key: a file link's MAC can never pass as a patient link's.
        self._key = hmac.new(secret.encode(), b"carepath/file-link/v1", hashlib.sha256).digest()

    def _mac(self, reference: str, expires: int) -> str:
        message = f"{reference}\x00{expires}".encode()
        return _b64(hmac.new(self._key, message, hashlib.sha256).digest()[:_MAC_BYTES])

    def issue(self, reference: str, expires_at: datetime) -> FileLink:
        if expires_at.tzinfo is None:
            raise ValueError("expires_at must be timezone-aware")
        expires = int(expires_at.timestamp())
        return FileLink(reference, expires, self._mac(reference, expires))

    def verify(self, reference: str, expires: str, signature: str, now: datetime) -> None:
        """Returns for a valid link; FileLinkExpired once past its expiry, LinkError if forged."""
        # ASCII digits only: str.isdigit also holds for "²", which int() refuses.
        if not (expires.isascii() and expires.isdigit()) or len(expires) > 12:
            raise LinkError("malformed file link")
        if not hmac.compare_digest(signature.encode(), self._mac(reference, int(expires)).encode()):
            raise LinkError("file link signature does not match")
        if now.timestamp() >= int(expires):
            raise FileLinkExpired(f"file link expired at {expires}")
