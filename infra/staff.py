"""``python -m infra.staff``: staff accounts from the command line (production has no demo seed).

python -m infra.staff create --name 王护士 --role nurse --department cardiology [--username wang]
python -m infra.staff set-password --username wang            # asks for the password twice
python -m infra.staff set-password --username wang --generate # prints a one-time password
python -m infra.staff revoke --token <token>

``create`` prints a static API token. In production only integrations (role ``integration``) may
use one; people sign in at ``POST /api/auth/sign-in`` with a password from ``set-password``.
Passwords are read from the terminal (or one line of standard input), never from arguments,
which other users of the machine can see.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from core.crypto import configure_from_settings
from core.db import create_engine, session_factory, transaction
from core.models import StaffRole, StaffUser, utcnow
from core.settings import Settings, get_settings
from services import audit
from services.identity import (
    generate_one_time_password,
    normalise_username,
    password_problem,
    revoke_sessions,
    set_password,
    username_problem,
)
from services.staff import create_staff, token_digest


def _engine() -> AsyncEngine:
    settings = get_settings()
    configure_from_settings(settings)
    return create_engine(settings.database_url)


async def _create(name: str, role: StaffRole, department: str | None, username: str | None) -> str:
    engine = _engine()
    try:
        async with transaction(session_factory(engine)) as session:
            if username is not None:
                taken = await session.exec(select(StaffUser).where(StaffUser.username == username))
                if taken.first() is not None:
                    raise SystemExit(f"--username: {username} is taken")
            user, token = await create_staff(
                session, name=name, role=role, department_code=department
            )
            user.username = username
            audit.record(
                session,
                actor_type="system",
                actor_id="infra.staff",
                action="staff.created",
                target_type="staff",
                target_id=user.id,
                role=role.value,
                username=username,
                department_code=department,
                credentials="api_token",
            )
    finally:
        await engine.dispose()
    return token


async def _set_password(settings: Settings, username: str, password: str, one_time: bool) -> bool:
    configure_from_settings(settings)
    engine = create_engine(settings.database_url)
    try:
        async with transaction(session_factory(engine)) as session:
            found = await session.exec(
                select(StaffUser).where(StaffUser.username == username).with_for_update()
            )
            user = found.first()
            if user is None:
                return False
            now = utcnow()
            await set_password(settings, user, password, now=now, must_change=one_time)
            revoked = await revoke_sessions(session, user.id, now)
            audit.record(
                session,
                actor_type="system",
                actor_id="infra.staff",
                action="staff.password_set",
                target_type="staff",
                target_id=user.id,
                one_time=one_time,
                sessions_revoked=revoked,
            )
    finally:
        await engine.dispose()
    return True


async def _revoke(token: str) -> bool:
    engine = _engine()
    try:
        async with transaction(session_factory(engine)) as session:
            found = await session.exec(
                select(StaffUser).where(StaffUser.token_sha256 == token_digest(token))
            )
            user = found.first()
            if user is None:
                return False
            user.active = False
            revoked = await revoke_sessions(session, user.id, utcnow())
            audit.record(
                session,
                actor_type="system",
                actor_id="infra.staff",
                action="staff.deactivated",
                target_type="staff",
                target_id=user.id,
                sessions_revoked=revoked,
            )
    finally:
        await engine.dispose()
    return True


def _read_password(username: str) -> str:
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass(f"New password for {username}: ")
    if getpass.getpass("Again: ") != first:
        raise SystemExit("the two passwords differ")
    return first


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create", help="add a staff member and print their new API token")
    create.add_argument("--name", required=True)
    create.add_argument("--role", required=True, choices=[r.value for r in StaffRole])
    create.add_argument("--department", help="department code; omit for hospital-wide access")
    create.add_argument("--username", help="login name, for a password (see set-password)")
    setpw = sub.add_parser("set-password", help="set a person's password (also lifts a lock)")
    setpw.add_argument("--username", required=True)
    setpw.add_argument(
        "--generate",
        action="store_true",
        help="print a generated one-time password, to be changed at first sign-in",
    )
    revoke = sub.add_parser("revoke", help="disable the account a token belongs to")
    revoke.add_argument("--token", required=True)
    args = parser.parse_args()

    if args.command == "create":
        username = normalise_username(args.username) if args.username else None
        role = StaffRole(args.role)
        if username is not None:
            if role == StaffRole.INTEGRATION:
                sys.stderr.write("integrations use their token and have no username\n")
                return 2
            if problem := username_problem(username):
                sys.stderr.write(f"--username: {problem}\n")
                return 2
        token = asyncio.run(_create(args.name, role, args.department, username))
        print(token)  # shown once; only its hash is stored
        return 0

    if args.command == "set-password":
        settings = get_settings()
        username = normalise_username(args.username)
        password = generate_one_time_password() if args.generate else _read_password(username)
        if problem := password_problem(password, username):
            sys.stderr.write(f"password: {problem}\n")
            return 2
        if not asyncio.run(_set_password(settings, username, password, args.generate)):
            sys.stderr.write("no such username\n")
            return 1
        if args.generate:
            print(password)  # shown once; to be changed at first sign-in
        return 0

    if asyncio.run(_revoke(args.token)):
        return 0
    sys.stderr.write("no such token\n")
    return 1


if __name__ == "__main__":
    sys.exit(main())
