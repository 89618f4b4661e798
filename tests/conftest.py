"""Session-wide real infrastructure: PostgreSQL, the Temporal dev server and the time-skipping
test server. Every test gets its own database (cloned from a migrated template) and task queue."""

from __future__ import annotations

import faulthandler
import json
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from core.crypto import configure_from_settings
from core.db import SessionFactory, create_engine, session_factory
from core.logs import configure_logging, file_handler
from core.settings import Settings
from harness.clock import clock_started
from harness.databases import clone_database, create_template, drop_database
from harness.postgres import PostgresServer, start_postgres
from harness.settings import TEST_AUDIT_KEY, make_settings
from harness.temporal import start_dev_server, start_time_skipping_server


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    # Not pytest's tmp_path: its parents are private to root, and the server runs as 'postgres'.
    base = Path(tempfile.mkdtemp(prefix="carepath-pg-"))
    server = start_postgres(base)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
async def pg_template(postgres: PostgresServer) -> str:
    return await create_template(postgres)


@pytest.fixture
async def database_url(postgres: PostgresServer, pg_template: str) -> AsyncIterator[str]:
    name = await clone_database(postgres, pg_template)
    yield postgres.url(name)
    await drop_database(postgres, name)


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[SessionFactory]:
    # Encrypted columns need the process keyring (SEC-4); every test setting shares its keys.
    configure_from_settings(make_settings(database_url=database_url))
    engine = create_engine(database_url)
    yield session_factory(engine, audit_key=TEST_AUDIT_KEY)
    await engine.dispose()


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url=database_url)


@pytest.fixture(scope="session")
async def _shared_time_server() -> AsyncIterator[WorkflowEnvironment]:
    env = await start_time_skipping_server()
    yield env
    await env.shutdown()


@pytest.fixture
async def time_env(_shared_time_server: WorkflowEnvironment) -> AsyncIterator[WorkflowEnvironment]:
    """The session's time-skipping server, skipped to the configured start (see harness/clock)."""
    async with clock_started(_shared_time_server):
        yield _shared_time_server


@pytest.fixture
async def isolated_time_env() -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping server of the test's own, started at the configured start. The Java test
    server leaks time-skipping locks, e.g. when a child closes after its parent (see
    harness/time_skipping), which would freeze the clock for every later test sharing it."""
    env = await start_time_skipping_server()
    try:
        async with clock_started(env):
            yield env
    finally:
        await env.shutdown()


@pytest.fixture(scope="session")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await start_dev_server()
    yield env
    await env.shutdown()


@pytest.fixture
def task_queue() -> str:
    return f"test-{uuid.uuid4()}"


# Everything the test process logs, as JSON lines; test_log_privacy.py reads it at the end.
PROCESS_LOG = "pytest-process.log"


@pytest.fixture(scope="session", autouse=True)
def _masked_logging(tmp_path_factory: pytest.TempPathFactory) -> None:
    # Tests log through the same masked pipeline as production, so a leak shows up here first.
    configure_logging(json=False, level="INFO")
    logging.getLogger().addHandler(file_handler(tmp_path_factory.getbasetemp() / PROCESS_LOG))


# A test still running after this is stuck. A deadlock inside Temporal's core holds the GIL, so
# nothing in Python can report it (CI once sat silent until its 90-minute limit): faulthandler's
# watchdog is a C thread, prints every thread's stack to the real stderr and ends the run.
STUCK_AFTER_SECONDS = 600
_REAL_STDERR = pytest.StashKey[int]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_REAL_STDERR] = os.dup(2)  # before a test's output capture replaces fd 2


@pytest.fixture(autouse=True)
def _stuck_test_watchdog(request: pytest.FixtureRequest) -> Iterator[None]:
    with os.fdopen(os.dup(request.config.stash[_REAL_STDERR]), "w") as stderr:
        faulthandler.dump_traceback_later(STUCK_AFTER_SECONDS, exit=True, file=stderr)
        yield
        faulthandler.cancel_dump_traceback_later()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The log check reads what every other test logged, so it runs after them.
    items.sort(key=lambda item: item.get_closest_marker("after_all_others") is not None)


HISTORIES_DIR = Path(__file__).parent / "workflows" / "histories"


@pytest.fixture
def record_history() -> Any:
    """``await record_history(handle, "name")`` saves the run's history for the replay tests
    when CAREPATH_RECORD_HISTORIES=1; otherwise it does nothing. Recorded once per workflow
    change and committed, so later code must replay what earlier code did."""

    async def record(handle: Any, name: str) -> None:
        if os.environ.get("CAREPATH_RECORD_HISTORIES") != "1":
            return
        history = await handle.fetch_history()
        (HISTORIES_DIR / f"{name}.json").write_text(history.to_json())
        # Replays need the real workflow id: derived ids (children, tasks) depend on it.
        index_file = HISTORIES_DIR / "workflow_ids.json"
        index = json.loads(index_file.read_text()) if index_file.exists() else {}
        index[name] = history.workflow_id
        index_file.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")

    return record
