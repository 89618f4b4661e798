from __future__ import annotations

import pytest

from core.webhook_auth import (
    WebhookAuthError,
    expected_signature,
    signed_headers,
    verify_webhook,
)

SECRET = "whsec-test"
BODY = b'{"event_id":"EVT-1"}'
# Test vector for HIS integrators, computed independently with
#   printf '1763800000.{"event_id":"EVT-1"}' | openssl dgst -sha256 -hmac whsec-test
VECTOR = "v1=091677c0b75651775b47cab8eee6aa6f597762cc45077f889bf9286a1cfe5335"


def test_signature_matches_the_published_vector() -> None:
    actual = expected_signature(SECRET, "1763800000", BODY)
    assert actual == VECTOR
    assert actual != expected_signature(SECRET, "1763800001", BODY)
    assert actual != expected_signature(SECRET, "1763800000", BODY + b" ")


def test_signed_headers_carry_the_published_vector() -> None:
    assert signed_headers(SECRET, BODY, now=1763800000.9) == {
        "Content-Type": "application/json",
        "X-CarePath-Timestamp": "1763800000",
        "X-CarePath-Signature": VECTOR,
    }


def verify(timestamp: str | None, signature: str | None, now: float = 1763800000) -> None:
    verify_webhook(
        secret=SECRET,
        timestamp=timestamp,
        signature=signature,
        body=BODY,
        now=now,
        tolerance_seconds=300,
    )


def test_valid_signature_passes_within_the_window() -> None:
    signature = expected_signature(SECRET, "1763800000", BODY)
    verify("1763800000", signature, now=1763800000 + 300)
    verify("1763800000", signature, now=1763800000 - 300)


def test_rotation_list_is_accepted() -> None:
    good = expected_signature(SECRET, "1763800000", BODY)
    verify("1763800000", f"v1=deadbeef, {good}")


@pytest.mark.parametrize(
    ("timestamp", "signature", "now", "reason"),
    [
        (None, "v1=x", 1763800000, "missing"),
        ("1763800000", None, 1763800000, "missing"),
        ("yesterday", "v1=x", 1763800000, "not a unix timestamp"),
        ("1763800000", "v1=" + "0" * 64, 1763800000, "does not match"),
        ("1763800000", "SIG", 1763800000 + 301, "window"),
    ],
)
def test_refusals_say_why(
    timestamp: str | None, signature: str | None, now: float, reason: str
) -> None:
    with pytest.raises(WebhookAuthError, match=reason):
        verify(timestamp, signature, now)
