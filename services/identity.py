"""Staff sign-in (SEC-5): argon2id passwords, lockout after repeated failures, TOTP for
administrators, and sessions whose bearer tokens are stored only as SHA-256.

Every function takes ``now`` so that callers (and tests) decide the time. Nothing here logs or
audits a password, a token or a TOTP secret. The caller commits, also after a failed sign-in:
the failure counter and its audit entries must outlive the refusal.
"""

from __future__ import annotations

import asyncio
import hmac
import math
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Literal

import pyotp
from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import StaffRole, StaffSession, StaffUser
from core.settings import Settings
from services import audit
from services.staff import SESSION_TOKEN_PREFIX, token_digest

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 256
USERNAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{2,63}$")
TOTP_STEP_SECONDS = 30
# One step either side of now: phones whose clock is off by up to half a minute still work.
TOTP_WINDOW = 1
# Easy to read out over the phone: no 0/O, 1/l/I.
_OTP_ALPHABET = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"

FailureKind = Literal["invalid", "locked", "totp_required", "totp_invalid"]


class SignInRefused(Exception):
    """Sign-in refused. ``kind`` is all the caller may tell the person: ``invalid`` for an
    unknown user, a deactivated account and a wrong password alike; ``locked`` whatever the
    password; the TOTP kinds only after the password was right."""

    def __init__(self, kind: FailureKind, retry_after_seconds: int | None = None) -> None:
        super().__init__(kind)
        self.kind = kind
        self.retry_after_seconds = retry_after_seconds


# --- passwords ---------------------------------------------------------------------------------


@lru_cache(maxsize=4)
def _hasher(memory_kib: int, time_cost: int, parallelism: int) -> PasswordHasher:
    return PasswordHasher(
        time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=Type.ID
    )


def password_hasher(settings: Settings) -> PasswordHasher:
    return _hasher(
        settings.staff_password_memory_kib,
        settings.staff_password_time_cost,
        settings.staff_password_parallelism,
    )


async def hash_password(settings: Settings, password: str) -> str:
    # argon2 is deliberately slow: off the event loop.
    return await asyncio.to_thread(password_hasher(settings).hash, password)


async def _verify(settings: Settings, password_hash: str, password: str) -> bool:
    try:
        return await asyncio.to_thread(password_hasher(settings).verify, password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@lru_cache(maxsize=4)
def _dummy_hash(hasher: PasswordHasher) -> str:
    return hasher.hash(secrets.token_urlsafe(16))


async def _verify_nothing(settings: Settings, password: str) -> None:
    """As long as a real check: unknown and locked accounts answer no faster than real ones."""
    hasher = password_hasher(settings)
    dummy = await asyncio.to_thread(_dummy_hash, hasher)
    await _verify(settings, dummy, password)


def normalise_username(username: str) -> str:
    return username.strip().lower()


def username_problem(username: str) -> str | None:
    if not USERNAME_PATTERN.match(username):
        return "用户名须为 3 到 64 个字符，只含小写字母、数字和 . _ -，以字母或数字开头"
    return None


def password_problem(password: str, username: str | None) -> str | None:
    """The minimum strength (SEC-5), as a message for the person choosing the password."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"密码至少需要 {MIN_PASSWORD_LENGTH} 个字符"
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"密码最多 {MAX_PASSWORD_LENGTH} 个字符"
    if username and password.strip().casefold() == username.casefold():
        return "密码不能与用户名相同"
    return None


def generate_one_time_password() -> str:
    return "".join(secrets.choice(_OTP_ALPHABET) for _ in range(16))


async def set_password(
    settings: Settings, user: StaffUser, password: str, *, now: datetime, must_change: bool
) -> None:
    """Stores a new password (already checked by ``password_problem``) and lifts any lock."""
    user.password_hash = await hash_password(settings, password)
    user.password_changed_at = now
    user.must_change_password = must_change
    user.failed_logins = 0
    user.locked_until = None


# --- lockout -----------------------------------------------------------------------------------


def locked_for(user: StaffUser, now: datetime) -> int | None:
    """Seconds until the account unlocks, or None if it is not locked."""
    if user.locked_until is None or user.locked_until <= now:
        return None
    return max(1, math.ceil((user.locked_until - now).total_seconds()))


def _count_failure(
    session: AsyncSession, settings: Settings, user: StaffUser, reason: str, now: datetime
) -> bool:
    """Counts a failed attempt and locks the account at the limit; True if it just locked."""
    user.failed_logins += 1
    _audit_failure(session, user.id, reason, user.failed_logins)
    if user.failed_logins < settings.staff_max_failed_sign_ins:
        return False
    # The count starts again once the lock ends.
    user.locked_until = now + timedelta(minutes=settings.staff_lockout_minutes)
    user.failed_logins = 0
    audit.record(
        session,
        actor_type="system",
        actor_id=None,
        action="staff.locked",
        target_type="staff",
        target_id=user.id,
        until=user.locked_until.isoformat(),
        failures=settings.staff_max_failed_sign_ins,
    )
    return True


def _audit_failure(
    session: AsyncSession, target_id: str, reason: str, failures: int | None = None, **more: str
) -> None:
    audit.record(
        session,
        actor_type="staff",
        actor_id=None,
        action="staff.sign_in_failed",
        target_type="staff",
        target_id=target_id,
        **_failure_detail(reason, failures, more),
    )


def _failure_detail(reason: str, failures: int | None, more: dict[str, str]) -> dict[str, Any]:
    detail: dict[str, Any] = {"reason": reason, **more}
    if failures is not None:
        detail["failures"] = failures
    return detail


# --- TOTP --------------------------------------------------------------------------------------


def new_totp_secret() -> str:
    return pyotp.random_base32()


def totp_uri(settings: Settings, user: StaffUser, secret: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(
        name=user.username or user.id, issuer_name=settings.staff_totp_issuer
    )


def matching_totp_step(secret: str, code: str, now: datetime, after: int | None) -> int | None:
    """The time step ``code`` belongs to, near ``now`` and later than ``after`` (a code is
    accepted once), or None."""
    code = code.strip()
    if not code.isdigit():
        return None
    totp = pyotp.TOTP(secret, interval=TOTP_STEP_SECONDS)
    current = totp.timecode(now)
    for step in range(current - TOTP_WINDOW, current + TOTP_WINDOW + 1):
        if after is not None and step <= after:
            continue
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def totp_enabled(user: StaffUser) -> bool:
    return user.totp_secret is not None and user.totp_confirmed_at is not None


# --- sessions ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class OpenedSession:
    row: StaffSession
    token: str  # shown once to the client; only its SHA-256 is stored


def open_session(
    session: AsyncSession, settings: Settings, user: StaffUser, now: datetime
) -> OpenedSession:
    token = SESSION_TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = StaffSession(
        staff_id=user.id,
        token_sha256=token_digest(token),
        created_at=now,
        last_seen_at=now,
        expires_at=now + timedelta(hours=settings.staff_session_hours),
    )
    session.add(row)
    return OpenedSession(row, token)


async def revoke_sessions(
    session: AsyncSession, staff_id: str, now: datetime, *, keep: str | None = None
) -> int:
    """Ends every open session of one staff member (but ``keep``); returns how many."""
    statement = (
        update(StaffSession)
        .where(col(StaffSession.staff_id) == staff_id, col(StaffSession.revoked_at).is_(None))
        .values(revoked_at=now)
    )
    if keep is not None:
        statement = statement.where(col(StaffSession.id) != keep)
    result = await session.exec(statement)
    return int(result.rowcount or 0)


async def revoke_session(session: AsyncSession, session_id: str, now: datetime) -> None:
    await session.exec(
        update(StaffSession)
        .where(col(StaffSession.id) == session_id, col(StaffSession.revoked_at).is_(None))
        .values(revoked_at=now)
    )


async def touch_session(session: AsyncSession, session_id: str, now: datetime) -> None:
    await session.exec(
        update(StaffSession)
        .where(col(StaffSession.id) == session_id, col(StaffSession.revoked_at).is_(None))
        .values(last_seen_at=now)
    )


# --- signing in --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignedIn:
    user: StaffUser
    opened: OpenedSession


async def sign_in(
    session: AsyncSession,
    settings: Settings,
    *,
    username: str,
    password: str,
    totp_code: str | None,
    now: datetime,
) -> SignedIn:
    """Checks the credentials and opens a session, or raises ``SignInRefused`` after recording
    the failure (the caller commits either way)."""
    name = normalise_username(username)
    found = await session.exec(
        select(StaffUser).where(StaffUser.username == name).with_for_update()
    )
    user = found.first()
    if (
        user is None
        or not user.active
        or user.password_hash is None
        or user.role == StaffRole.INTEGRATION
    ):
        await _verify_nothing(settings, password)
        if user is None:
            _audit_failure(session, "unknown", "unknown_user", username=name[:64])
        else:
            _audit_failure(session, user.id, "inactive" if not user.active else "no_password")
        raise SignInRefused("invalid")

    remaining = locked_for(user, now)
    if remaining is not None:
        await _verify_nothing(settings, password)
        _audit_failure(session, user.id, "locked")
        raise SignInRefused("locked", remaining)

    if not await _verify(settings, user.password_hash, password):
        if _count_failure(session, settings, user, "wrong_password", now):
            raise SignInRefused("locked", locked_for(user, now))
        raise SignInRefused("invalid")

    if totp_enabled(user):
        assert user.totp_secret is not None
        if not totp_code:
            _audit_failure(session, user.id, "totp_missing")
            raise SignInRefused("totp_required")
        step = matching_totp_step(user.totp_secret, totp_code, now, user.totp_last_counter)
        if step is None:
            if _count_failure(session, settings, user, "wrong_totp", now):
                raise SignInRefused("locked", locked_for(user, now))
            raise SignInRefused("totp_invalid")
        user.totp_last_counter = step

    user.failed_logins = 0
    user.locked_until = None
    user.last_sign_in_at = now
    if password_hasher(settings).check_needs_rehash(user.password_hash):
        user.password_hash = await hash_password(settings, password)
    opened = open_session(session, settings, user, now)
    await session.flush()
    audit.record(
        session,
        actor_type="staff",
        actor_id=user.id,
        action="staff.signed_in",
        target_type="staff",
        target_id=user.id,
        session_id=opened.row.id,
        totp=totp_enabled(user),
    )
    return SignedIn(user, opened)


async def change_password(
    session: AsyncSession,
    settings: Settings,
    user: StaffUser,
    *,
    current: str,
    new: str,
    keep_session: str | None,
    now: datetime,
) -> Literal["changed", "wrong_current", "locked"]:
    """Changes one's own password after checking the current one (a wrong one counts toward
    the lock, so a stolen session cannot guess it). Other sessions end."""
    if locked_for(user, now) is not None:
        return "locked"
    if user.password_hash is None:
        return "wrong_current"
    if not await _verify(settings, user.password_hash, current):
        if _count_failure(session, settings, user, "wrong_current_password", now):
            return "locked"
        return "wrong_current"
    await set_password(settings, user, new, now=now, must_change=False)
    revoked = await revoke_sessions(session, user.id, now, keep=keep_session)
    audit.record(
        session,
        actor_type="staff",
        actor_id=user.id,
        action="staff.password_changed",
        target_type="staff",
        target_id=user.id,
        sessions_revoked=revoked,
    )
    return "changed"
