"""What every benchmark stands on: a private PostgreSQL with the migrated schema and the Temporal
dev server, both started here and removed afterwards (the same harness the tests use)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from sqlmodel import func, select
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from core.crypto import configure_from_settings
from core.db import SessionFactory, create_engine, session_factory
from core.models import AuditEntry
from core.settings import Settings
from harness.databases import clone_database, create_template
from harness.postgres import PostgresServer, start_postgres
from harness.processes import Process, settings_env, start_process
from harness.settings import make_settings
from harness.temporal import DevServer, start_dev_server
from harness.temporal_cluster import SHARDS, TemporalCluster
from infra.toolchain import TEMPORAL_SERVER_VERSION


@dataclass(frozen=True)
class BenchInfra:
    database_url: str
    sessions: SessionFactory
    temporal: WorkflowEnvironment
    # A scratch folder for worker logs and the like, removed afterwards.
    workdir: Path
    # The Temporal server's process when the benchmark started it as one (the cluster).
    temporal_pid: int | None = None


def temporal_kind() -> str:
    """Which Temporal the benchmarks run on: ``dev`` (the CLI's dev server on SQLite, what
    ``make run`` uses) or ``cluster`` (the Temporal server on PostgreSQL, production-shaped),
    from CAREPATH_BENCH_TEMPORAL."""
    kind = os.environ.get("CAREPATH_BENCH_TEMPORAL", "dev")
    if kind not in ("dev", "cluster"):
        raise SystemExit(f"CAREPATH_BENCH_TEMPORAL must be dev or cluster, not {kind!r}")
    return kind


@asynccontextmanager
async def bench_infra() -> AsyncIterator[BenchInfra]:
    # Each part is stopped however a later one fails to start (a Temporal server not yet built
    # left PostgreSQL running).
    async with AsyncExitStack() as stack:
        # Separate folders: the server runs as 'postgres', which cannot enter root's private ones.
        pg_dir = Path(tempfile.mkdtemp(prefix="carepath-bench-pg-"))
        stack.callback(shutil.rmtree, pg_dir, ignore_errors=True)
        workdir = Path(tempfile.mkdtemp(prefix="carepath-bench-"))
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        pg = start_postgres(pg_dir)
        stack.callback(pg.stop)
        cluster = TemporalCluster(pg, workdir) if temporal_kind() == "cluster" else None
        if cluster is not None:
            stack.callback(cluster.stop)
            # The cluster keeps its stores in the same PostgreSQL as the platform, as a small
            # hospital's single database server would.
            temporal = WorkflowEnvironment.from_client(await cluster.start())
        else:
            temporal = await start_dev_server()
        stack.push_async_callback(temporal.shutdown)
        print(f"Temporal: {describe_temporal(cluster)}")
        await create_template(pg)
        url = pg.url(await clone_database(pg))
        configure_from_settings(make_settings(database_url=url))
        engine = create_engine(url)
        stack.push_async_callback(engine.dispose)
        yield BenchInfra(
            url,
            session_factory(engine),
            temporal,
            workdir,
            cluster.process.pid if cluster is not None and cluster.process else None,
        )


def process_env(infra: BenchInfra, settings: Settings) -> dict[str, str]:
    """What a benchmark's worker and API processes read: ``settings``, this Temporal, and only
    warnings in their logs."""
    return {
        **settings_env(settings),
        "CAREPATH_TEMPORAL_ADDRESS": infra.temporal.client.service_client.config.target_host,
        "CAREPATH_LOG_LEVEL": "WARNING",
    }


def start_workers(
    infra: BenchInfra, env: dict[str, str], count: int, *, review: bool = True
) -> list[Process]:
    """``count`` worker processes for the main queues and, unless told not to, one for
    prescriptions' review, as ``make run`` starts one of each."""
    main = ["-m", "workers.main", "--queues", "main"]
    started = [start_process(f"bench-worker-{n}", main, env, infra.workdir) for n in range(count)]
    if review:
        reviews = ["-m", "workers.main", "--queues", "review"]
        started.append(start_process("bench-review-worker", reviews, env, infra.workdir))
    return started


async def settle(sessions: SessionFactory) -> None:
    """VACUUM ANALYZE after seeding: a database in use has been vacuumed and analysed by
    autovacuum, freshly inserted rows have not, and autovacuum would otherwise get to them in the
    middle of the measurements."""
    async with sessions() as session:
        connection = await session.connection()
        await connection.exec_driver_sql("COMMIT")
        await connection.exec_driver_sql("VACUUM ANALYZE")


async def audit_count(sessions: SessionFactory, action: str) -> int:
    """How many audit entries record ``action``: benchmarks check nothing was skipped."""
    async with sessions() as session:
        found = await session.exec(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.action == action)
        )
        return found.one()


def describe_temporal(cluster: TemporalCluster | None) -> str:
    if cluster is None:
        return "the dev server (temporal server start-dev, SQLite)"
    return (
        f"Temporal server {TEMPORAL_SERVER_VERSION} on PostgreSQL "
        f"({cluster.address}, {SHARDS} history shards)"
    )


class RestartableTemporal(Protocol):
    """A Temporal server the benchmark can restart in place: the dev server or the cluster."""

    address: str

    async def start(self) -> object: ...

    async def restart(self) -> None: ...

    async def connect(self) -> Client: ...

    def stop(self, grace: float = ...) -> None: ...


@dataclass(frozen=True)
class RestartableInfra:
    """PostgreSQL and Temporal (the dev server, or the cluster on that PostgreSQL), each
    restartable in place (same port, same data), for runs that take the platform's own servers
    down on purpose."""

    database_url: str
    sessions: SessionFactory
    postgres: PostgresServer
    temporal: RestartableTemporal
    client: Client
    workdir: Path


@asynccontextmanager
async def restartable_infra() -> AsyncIterator[RestartableInfra]:
    pg_dir = Path(tempfile.mkdtemp(prefix="carepath-bench-pg-"))
    workdir = Path(tempfile.mkdtemp(prefix="carepath-bench-"))
    pg = start_postgres(pg_dir)
    cluster = TemporalCluster(pg, workdir) if temporal_kind() == "cluster" else None
    temporal: RestartableTemporal = cluster or DevServer(workdir)
    try:
        await temporal.start()
        print(f"Temporal: {describe_temporal(cluster)}")
        await create_template(pg)
        url = pg.url(await clone_database(pg))
        configure_from_settings(make_settings(database_url=url))
        engine = create_engine(url)
        try:
            client = await temporal.connect()
            yield RestartableInfra(url, session_factory(engine), pg, temporal, client, workdir)
        finally:
            await engine.dispose()
    finally:
        temporal.stop()
        pg.stop()
        shutil.rmtree(pg_dir, ignore_errors=True)
        shutil.rmtree(workdir, ignore_errors=True)
