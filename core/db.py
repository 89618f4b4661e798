"""Engine and session factory for SQLite (embedded default) and PostgreSQL (production, tests)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry
from sqlmodel.ext.asyncio.session import AsyncSession

SessionFactory = async_sessionmaker[AsyncSession]


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend.

    SQLite has no timezone type and hands back naive values; this stores UTC and always returns
    aware datetimes so comparisons never mix naive and aware values.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(
        self,
        value: datetime | None,
        dialect: Dialect,  # noqa: ARG002 - signature fixed by TypeDecorator
    ) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# A pooled connection unused for longer than this is checked before it is handed out.
IDLE_PING_SECONDS = 5.0
_RETURNED_AT = "carepath_returned_at"


def create_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    kwargs: dict[str, Any] = {"echo": echo}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"timeout": 30}
    else:
        kwargs.update(pool_size=10, max_overflow=10)
    engine = create_async_engine(url, **kwargs)
    if url.startswith("sqlite"):
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    dialect = engine.dialect

    def ping_if_idle(connection: Any, record: ConnectionPoolEntry, _: Any) -> None:
        _ping_if_idle(dialect, connection, record)

    event.listen(engine.sync_engine.pool, "checkin", _returned)
    event.listen(engine.sync_engine.pool, "checkout", ping_if_idle)
    return engine


def _returned(_: Any, record: ConnectionPoolEntry) -> None:
    record.info[_RETURNED_AT] = time.monotonic()


def _ping_if_idle(dialect: Dialect, connection: Any, record: ConnectionPoolEntry) -> None:
    """SQLAlchemy's pool_pre_ping, only for a connection that sat unused for a while (a database
    restarted meanwhile has closed it). Its ping costs three round trips on asyncpg (BEGIN, a
    query, ROLLBACK), as much as a short request's own work, and a connection back from a request
    a moment ago is as alive as a ping would show. A connection that died within the window fails
    its one request with a disconnect error (a 503 the caller retries), and SQLAlchemy then
    replaces every connection of the pool."""
    returned = record.info.get(_RETURNED_AT)
    if returned is None or time.monotonic() - returned < IDLE_PING_SECONDS:
        return
    try:
        dialect.do_ping(connection)
    except Exception as error:
        # The pool's documented way to say "this one is dead": it opens another and retries.
        raise exc.DisconnectionError(f"pooled connection failed its ping: {error}") from error


def _sqlite_pragmas(dbapi_connection: Any, _: Any) -> None:
    # WAL lets the API read while the worker writes; foreign keys are off by default in SQLite.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def session_factory(engine: AsyncEngine, *, audit_key: str | None = None) -> SessionFactory:
    """``audit_key`` keys the audit chain of entries these sessions write (core.audit_chain);
    without it, the process settings' ``audit_key``."""
    info = {"audit_key": audit_key} if audit_key is not None else {}
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False, info=info)


async def insert_if_absent(
    session: AsyncSession, table: sa.Table, values: dict[str, Any], unique_on: list[str]
) -> None:
    """INSERT ... ON CONFLICT DO NOTHING on the unique columns, on SQLite and PostgreSQL.

    Two requests creating the same row at once then both succeed instead of one failing on the
    unique index; read the row back afterwards.
    """
    await session.exec(
        insert_unless_present(session.get_bind().dialect.name, table, values, unique_on)
    )


def insert_unless_present(
    dialect: str, table: sa.Table, values: dict[str, Any], unique_on: list[str]
) -> Any:
    """The statement insert_if_absent runs, for a caller that wants it RETURNING something."""
    insert: Any
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - only the two supported backends
        raise NotImplementedError(dialect)
    return insert(table).values(**values).on_conflict_do_nothing(index_elements=unique_on)


def local_day(column: Any, tz: ZoneInfo, dialect: str) -> Any:
    """The calendar day ('YYYY-MM-DD') of a UTC timestamp column in the hospital's zone, on
    PostgreSQL or SQLite (which knows no zones: the zone's offset now, fine for China's)."""
    if dialect == "postgresql":
        return sa.func.to_char(sa.func.timezone(tz.key, column), "YYYY-MM-DD")
    offset = datetime.now(tz).utcoffset()
    hours = int(offset.total_seconds() // 3600) if offset else 0
    return sa.func.date(column, f"{hours:+d} hours")


async def plan_for_each_call(session: AsyncSession) -> None:
    """Has PostgreSQL plan this transaction's statements for their own parameter values every
    time. A report's dates decide how much of a table it reads; after five calls PostgreSQL may
    switch a prepared statement to a generic plan that knows no dates, and a year's report by
    week then took twice as long (84 to 176 ms over 100,000 tasks). Planning costs well under a
    millisecond. Lasts until the transaction ends; SQLite has no plan cache to steer."""
    connection = await session.connection()
    if connection.dialect.name == "postgresql":
        await connection.exec_driver_sql("SET LOCAL plan_cache_mode = force_custom_plan")


async def release_connection(session: AsyncSession) -> None:
    """Ends a read-only transaction so that its connection returns to the pool before a wait on
    another system: a Temporal update waits for a worker, which may be restarting, and requests
    holding connections through such waits can drain the pool for everyone else. The session
    takes a connection again when next used (its objects stay loaded: no expiry on commit)."""
    if session.new or session.dirty or session.deleted:
        raise RuntimeError("release_connection would commit unsaved changes")
    await session.commit()


async def serialise(session: AsyncSession, name: str, *, sqlite_table: sa.Table) -> None:
    """Makes transactions that name the same lock run one after another, across processes,
    until this one ends: a PostgreSQL advisory lock keyed by the name; on SQLite, which has one
    write lock for the whole database, a write that changes nothing in ``sqlite_table`` takes it
    before the transaction reads anything."""
    connection = await session.connection()
    dialect = connection.dialect.name
    if dialect == "postgresql":
        lock = sa.func.hashtextextended(name, 0)
        await connection.execute(sa.select(sa.func.pg_advisory_xact_lock(lock)))
    elif dialect == "sqlite":
        key = sqlite_table.primary_key.columns[0]
        await connection.execute(sa.update(sqlite_table).where(sa.false()).values({key: key}))
    else:  # pragma: no cover - only the two supported backends
        raise NotImplementedError(dialect)


@asynccontextmanager
async def transaction(sessions: SessionFactory) -> AsyncIterator[AsyncSession]:
    """One unit of work: commits when the block ends normally, rolls back on any exception."""
    async with sessions() as session, session.begin():
        yield session


# SQLSTATE classes of a database that cannot be reached, rather than of a statement that is
# wrong: 08 connection exceptions; 57P01-57P03 shutting down, crashed, starting up.
_UNREACHABLE_SQLSTATES = ("08", "57P0")


# untranslatable_character (a NUL in text or JSON), character_not_in_repertoire.
_UNSTORABLE_TEXT_SQLSTATES = frozenset({"22P05", "22021"})


def _sqlstate(exc: sa.exc.DBAPIError) -> str | None:
    found = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return found if isinstance(found, str) else None


def unstorable_text(exc: BaseException) -> bool:
    """Whether PostgreSQL refused a value's characters: the caller's input, not our bug."""
    return isinstance(exc, sa.exc.DBAPIError) and _sqlstate(exc) in _UNSTORABLE_TEXT_SQLSTATES


def database_unreachable(exc: BaseException) -> bool:
    """Whether an error means the database is down, restarting or out of connections (worth a
    retry later), as opposed to a bad statement or a bug."""
    if isinstance(exc, sa.exc.TimeoutError):  # no pooled connection came free in time
        return True
    if isinstance(exc, sa.exc.DBAPIError):
        if exc.connection_invalidated or isinstance(exc, sa.exc.InterfaceError):
            return True
        sqlstate = _sqlstate(exc)
        return sqlstate is not None and sqlstate.startswith(_UNREACHABLE_SQLSTATES)
    # The asyncpg dialect lets a refused TCP connection through unwrapped.
    return isinstance(exc, ConnectionError)
