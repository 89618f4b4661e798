"""HMAC-SHA256 authentication of inbound webhooks.

The sender signs ``<timestamp>.<raw body>`` with the shared secret and sends
``X-CarePath-Timestamp: <unix seconds>`` and ``X-CarePath-Signature: v1=<hex digest>``.
A timestamp outside the tolerance window is refused, so a captured request cannot be replayed
later; within the window, replays are caught by event-id deduplication.
"""

from __future__ import annotations

import hashlib
import hmac
import time

TIMESTAMP_HEADER = "X-CarePath-Timestamp"
SIGNATURE_HEADER = "X-CarePath-Signature"


class WebhookAuthError(Exception):
    pass


def expected_signature(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "v1=" + digest.hexdigest()


def signed_headers(secret: str, body: bytes, now: float | None = None) -> dict[str, str]:
    """The headers a sender posts ``body`` (JSON) with: signed at ``now`` (unix seconds, default
    the current time)."""
    timestamp = str(int(time.time() if now is None else now))
    return {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: expected_signature(secret, timestamp, body),
    }


def verify_webhook(
    *,
    secret: str,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    now: float,
    tolerance_seconds: int,
) -> None:
    if not timestamp or not signature:
        raise WebhookAuthError(f"missing {TIMESTAMP_HEADER} or {SIGNATURE_HEADER} header")
    try:
        sent_at = int(timestamp)
    except ValueError as exc:
        raise WebhookAuthError(f"{TIMESTAMP_HEADER} is not a unix timestamp") from exc
    if abs(now - sent_at) > tolerance_seconds:
        raise WebhookAuthError(
            f"{TIMESTAMP_HEADER} is outside the {tolerance_seconds}-second window"
        )
    # A sender may list several signatures while rotating secrets: "v1=...,v1=...".
    candidates = [part.strip() for part in signature.split(",")]
    wanted = expected_signature(secret, timestamp, body)
    if not any(hmac.compare_digest(wanted, candidate) for candidate in candidates):
        raise WebhookAuthError("signature does not match")
