"""``python -m infra.audit verify``: checks the audit trail's HMAC-SM3 chain (SEC-2).

Exit 0 and "N entries, chain intact" when every entry is where it was written, unchanged;
exit 1 naming the first broken seq and why (edited, deleted, reordered, inserted) otherwise.
The database and key come from the settings (CAREPATH_DATABASE_URL, CAREPATH_AUDIT_KEY).
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from core.audit_chain import Verification
from core.db import create_engine, session_factory
from core.settings import get_settings
from services.audit import verify_chain


async def verify(database_url: str, key: str) -> Verification:
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session:
            return await verify_chain(session, key)
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.audit", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("verify", help="check the audit chain; exit 1 if it is broken")
    check.add_argument("--database-url", help="default: CAREPATH_DATABASE_URL")
    args = parser.parse_args(argv)
    settings = get_settings()
    result = asyncio.run(
        verify(args.database_url or settings.database_url, settings.audit_key.get_secret_value())
    )
    print(result.summary())
    return 0 if result.intact else 1


if __name__ == "__main__":
    sys.exit(main())
