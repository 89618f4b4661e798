from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from core.links import LinkError, LinkExpired, LinkSigner

TASK = str(uuid.UUID("12345678-1234-5678-1234-567812345678"))
NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def test_token_round_trip_is_short_enough_for_an_sms() -> None:
    signer = LinkSigner("s" * 40)
    token = signer.issue(TASK, NOW + timedelta(days=5))
    assert len(token) == 50
    claims = signer.verify(token, NOW)
    assert claims.task_id == TASK
    assert claims.expires_at == NOW + timedelta(days=5)


def test_token_expires_at_its_deadline() -> None:
    signer = LinkSigner("s" * 40)
    token = signer.issue(TASK, NOW)
    signer.verify(token, NOW - timedelta(seconds=1))
    with pytest.raises(LinkExpired) as info:
        signer.verify(token, NOW)
    assert info.value.task_id == TASK


@pytest.mark.parametrize("position", [0, 10, 27, 30, 49])
def test_any_altered_character_is_refused(position: int) -> None:
    signer = LinkSigner("s" * 40)
    token = signer.issue(TASK, NOW + timedelta(days=1))
    swapped = "A" if token[position] != "A" else "B"
    with pytest.raises(LinkError):
        signer.verify(token[:position] + swapped + token[position + 1 :], NOW)


def test_token_from_another_secret_is_refused() -> None:
    token = LinkSigner("a" * 40).issue(TASK, NOW + timedelta(days=1))
    with pytest.raises(LinkError):
        LinkSigner("b" * 40).verify(token, NOW)


@pytest.mark.parametrize("garbage", ["", "abc", "!!!!", "A" * 49, "A" * 51, "%00" * 20])
def test_garbage_is_refused_not_crashed(garbage: str) -> None:
    with pytest.raises(LinkError):
        LinkSigner("s" * 40).verify(garbage, NOW)


def test_naive_expiry_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="timezone"):
        LinkSigner("s" * 40).issue(TASK, datetime(2026, 1, 1))
