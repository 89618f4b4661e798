"""Matching WeChat's reports of sends to the tries whose answers were lost: a report is claimed
once, only for its recipient, only when it came after the try, and only while no other send to
that patient has an outcome nobody knows (else a report may be that send's)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from core.crypto import blind_index
from core.db import SessionFactory, transaction
from core.models import AttemptStatus, DeliveryReport, MessageAttempt, OutboundMessage
from services.message_status import claim_reported_send

T0 = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)


async def _attempt(sessions: SessionFactory, openid: str, began: datetime = T0) -> str:
    async with transaction(sessions) as session:
        message = OutboundMessage(
            idempotency_key=f"claim/{uuid.uuid4()}",
            category="notice",
            template="notice_generic",
            recipient_openid=openid,
            body="停诊通知",
            status="sending",
            scheduled_for=T0,
        )
        session.add(message)
        await session.flush()
        attempt = MessageAttempt(
            message_id=message.id, channel="wechat", recipient=openid, tries=1, created_at=began
        )
        session.add(attempt)
        await session.flush()
        return attempt.id


async def _report(sessions: SessionFactory, msgid: str, openid: str, at: datetime) -> None:
    async with transaction(sessions) as session:
        session.add(
            DeliveryReport(
                channel="wechat",
                provider_message_id=msgid,
                provider_status="success",
                recipient_index=blind_index("openid", openid),
                received_at=at,
            )
        )


async def _recorded(sessions: SessionFactory, attempt_id: str, msgid: str) -> None:
    """The attempt's answer came back: it is sent, under WeChat's ``msgid``."""
    async with transaction(sessions) as session:
        attempt = await session.get(MessageAttempt, attempt_id)
        assert attempt is not None
        attempt.status = AttemptStatus.SENT
        attempt.provider_message_id = msgid


async def _claim(sessions: SessionFactory, attempt_id: str) -> str | None:
    async with transaction(sessions) as session:
        attempt = await session.get(MessageAttempt, attempt_id, with_for_update=True)
        assert attempt is not None
        report = await claim_reported_send(session, attempt)
        return report.provider_message_id if report else None


async def test_a_report_is_claimed_once_by_its_recipients_try(sessions: SessionFactory) -> None:
    mine = await _attempt(sessions, "oPatientA")
    await _report(sessions, "111", "oPatientB", T0 + timedelta(seconds=1))  # someone else's
    await _report(sessions, "222", "oPatientA", T0 - timedelta(minutes=5))  # before the try
    assert await _claim(sessions, mine) is None

    await _report(sessions, "333", "oPatientA", T0 + timedelta(seconds=2))
    assert await _claim(sessions, mine) == "333"
    async with sessions() as session:
        attempt = await session.get(MessageAttempt, mine)
        assert attempt is not None
        assert attempt.provider_message_id == "333"

    # Another message to the same patient, its answer lost later, cannot take the same report.
    async with transaction(sessions) as session:
        first = await session.get(MessageAttempt, mine)
        assert first is not None
        first.status = AttemptStatus.SENT
    later = await _attempt(sessions, "oPatientA")
    assert await _claim(sessions, later) is None


async def test_no_claim_while_another_send_to_the_same_patient_is_in_flight(
    sessions: SessionFactory,
) -> None:
    lost = await _attempt(sessions, "oPatientC")
    in_flight = await _attempt(sessions, "oPatientC")
    # This report may be the in-flight send's (answered, not yet recorded): no guessing.
    await _report(sessions, "444", "oPatientC", T0 + timedelta(seconds=1))
    assert await _claim(sessions, lost) is None

    await _recorded(sessions, in_flight, "555")
    assert await _claim(sessions, lost) == "444"


async def test_a_try_that_never_reached_wechat_does_not_take_another_sends_report(
    sessions: SessionFactory,
) -> None:
    # The fault campaign's story: one message's answer was lost, it was sent again after the
    # wait and that answer was lost too (its worker killed), so WeChat reported it twice; another
    # message's try to the same patient failed before reaching WeChat.
    sent_twice = await _attempt(sessions, "oPatientD")
    never_sent = await _attempt(sessions, "oPatientD")
    await _report(sessions, "666", "oPatientD", T0 + timedelta(seconds=1))
    await _report(sessions, "777", "oPatientD", T0 + timedelta(seconds=30))
    # As many reports as unresolved sends, yet both are the first message's: no guessing.
    assert await _claim(sessions, never_sent) is None
    assert await _claim(sessions, sent_twice) is None

    # The other message is sent again (after the wait) and recorded: the first claims its own.
    await _recorded(sessions, never_sent, "999")
    assert await _claim(sessions, sent_twice) == "666"


async def test_a_report_from_before_another_send_began_is_claimed_while_that_send_is_in_flight(
    sessions: SessionFactory,
) -> None:
    lost = await _attempt(sessions, "oPatientF")
    await _report(sessions, "101", "oPatientF", T0 + timedelta(seconds=1))
    # A push to the same patient, a minute later, still in flight: the report came before it
    # began, so it cannot be that push's.
    later = await _attempt(sessions, "oPatientF", began=T0 + timedelta(minutes=1))
    await _report(sessions, "202", "oPatientF", T0 + timedelta(minutes=1, seconds=1))
    assert await _claim(sessions, lost) == "101"
    # Then the push, its answer lost too, is the only send in flight: the later report is its own.
    assert await _claim(sessions, later) == "202"


async def test_a_send_the_provider_refused_does_not_hold_up_the_claim(
    sessions: SessionFactory,
) -> None:
    lost = await _attempt(sessions, "oPatientE")
    refused = await _attempt(sessions, "oPatientE")
    async with transaction(sessions) as session:
        other = await session.get(MessageAttempt, refused)
        assert other is not None
        other.error_code = "-1"  # WeChat answered "system busy": nothing was sent
    await _report(sessions, "888", "oPatientE", T0 + timedelta(seconds=1))
    assert await _claim(sessions, lost) == "888"
