"""Per-test PostgreSQL databases cloned from a template migrated once with the real migrations."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg

from core.migrate import upgrade
from harness.postgres import PostgresServer

TEMPLATE = "carepath_template"


async def _admin(server: PostgresServer) -> asyncpg.Connection:
    return await asyncpg.connect(server.dsn("postgres"))


async def create_template(server: PostgresServer) -> str:
    conn = await _admin(server)
    try:
        await conn.execute(f'CREATE DATABASE "{TEMPLATE}"')
    finally:
        await conn.close()
    await asyncio.to_thread(upgrade, server.url(TEMPLATE))
    return TEMPLATE


async def clone_database(server: PostgresServer, template: str = TEMPLATE) -> str:
    name = f"t_{uuid.uuid4().hex[:16]}"
    conn = await _admin(server)
    try:
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    finally:
        await conn.close()
    return name


async def drop_database(server: PostgresServer, name: str) -> None:
    conn = await _admin(server)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
