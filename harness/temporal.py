"""Temporal servers for tests and benchmarks, from the cached binaries (never downloaded)."""

from __future__ import annotations

import asyncio
import subprocess
from datetime import timedelta
from pathlib import Path

from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from core.temporal import DATA_CONVERTER
from harness.postgres import free_port
from harness.processes import stop_popen
from harness.waiting import eventually
from infra.toolchain import temporal_cli, test_server_script
from integrations.temporal_search import register

# A JVM on a busy 2-core machine can take several seconds to open its port.
TEST_SERVER_STARTUP = timedelta(seconds=90)
DEV_SERVER_STARTUP = timedelta(seconds=60)


async def start_dev_server() -> WorkflowEnvironment:
    env = await WorkflowEnvironment.start_local(
        data_converter=DATA_CONVERTER,
        dev_server_existing_path=str(temporal_cli()),
        dev_server_startup_timeout=DEV_SERVER_STARTUP,
        dev_server_log_level="error",
    )
    await register(env.client, env.client.namespace)
    return env


async def start_time_skipping_server() -> WorkflowEnvironment:
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=DATA_CONVERTER,
        test_server_existing_path=str(test_server_script()),
        test_server_startup_timeout=TEST_SERVER_STARTUP,
    )
    await register(env.client, env.client.namespace)
    return env


async def connect_when_up(
    address: str,
    process: subprocess.Popen[bytes],
    log: Path,
    *,
    within: float,
    namespace: str = "default",
) -> Client:
    """A client once the Temporal frontend at ``address`` answers; fails at once if the server
    process has exited (see its ``log``)."""

    async def probe() -> Client | None:
        if process.poll() is not None:
            raise RuntimeError(f"the Temporal server exited; see {log}")
        try:
            client = await Client.connect(
                address, namespace=namespace, data_converter=DATA_CONVERTER
            )
            await client.workflow_service.get_system_info(GetSystemInfoRequest())
        except (RuntimeError, RPCError):
            return None
        return client

    return await eventually(probe, within=within, what=f"Temporal at {address}", interval=0.2)


async def quiet_client(address: str, namespace: str = "default") -> Client:
    """A client that rides out server restarts without a warning per retried call on stderr."""
    quiet = Runtime(
        telemetry=TelemetryConfig(
            logging=LoggingConfig(filter=TelemetryFilter(core_level="ERROR", other_level="ERROR"))
        )
    )
    return await Client.connect(
        address, namespace=namespace, data_converter=DATA_CONVERTER, runtime=quiet
    )


class DevServer:
    """The Temporal dev server as its own process with file persistence, for runs that restart
    it: started again on the same port and database file, it keeps every workflow, timer and
    task queue, and clients connected to its address carry on once it answers again."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.db_file = workdir / "temporal.db"
        self.log = workdir / "temporal.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    async def start(self) -> None:
        self.process = self._spawn()
        await self._wait_ready()

    def _spawn(self) -> subprocess.Popen[bytes]:
        sink = self.log.open("ab")
        process = subprocess.Popen(
            [
                str(temporal_cli()),
                "server",
                "start-dev",
                "--ip",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--headless",
                "--db-filename",
                str(self.db_file),
                "--log-level",
                "error",
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
        sink.close()
        return process

    async def _wait_ready(self) -> None:
        assert self.process is not None
        client = await connect_when_up(
            self.address, self.process, self.log, within=DEV_SERVER_STARTUP.total_seconds()
        )
        await register(client, client.namespace)

    async def connect(self) -> Client:
        return await quiet_client(self.address)

    def stop(self, grace: float = 15.0) -> None:
        process, self.process = self.process, None
        if process is not None:
            stop_popen(process, grace)

    async def restart(self) -> None:
        """Stops the server (SIGTERM, then SIGKILL) and starts it again on the same state."""
        await asyncio.to_thread(self.stop)
        await self.start()
        self.restarts += 1
