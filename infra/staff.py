"""``python -m infra.staff``: create or revoke staff API tokens (production has no demo seed).

python -m infra.staff create --name 王护士 --role nurse --department cardiology
python -m infra.staff revoke --token <token>
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from core.crypto import configure_from_settings
from core.db import create_engine, session_factory, transaction
from core.models import StaffRole, StaffUser
from core.settings import get_settings
from services.staff import create_staff, token_digest


def _engine() -> AsyncEngine:
    settings = get_settings()
    configure_from_settings(settings)
    return create_engine(settings.database_url)


async def _create(name: str, role: StaffRole, department: str | None) -> str:
    engine = _engine()
    try:
        async with transaction(session_factory(engine)) as session:
            _, token = await create_staff(session, name=name, role=role, department_code=department)
    finally:
        await engine.dispose()
    return token


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
    finally:
        await engine.dispose()
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create", help="add a staff member and print their new token")
    create.add_argument("--name", required=True)
    create.add_argument("--role", required=True, choices=[r.value for r in StaffRole])
    create.add_argument("--department", help="department code; omit for hospital-wide access")
    revoke = sub.add_parser("revoke", help="disable a token")
    revoke.add_argument("--token", required=True)
    args = parser.parse_args()
    if args.command == "create":
        token = asyncio.run(_create(args.name, StaffRole(args.role), args.department))
        print(token)  # shown once; only its hash is stored
        return 0
    if asyncio.run(_revoke(args.token)):
        return 0
    sys.stderr.write("no such token\n")
    return 1


if __name__ == "__main__":
    sys.exit(main())
