"""A production-shaped Temporal for benchmarks: the Temporal server (go.temporal.io/server, the
version the CLI embeds) with its persistence and visibility on PostgreSQL, the schema set up by
its own temporal-sql-tool, as a hospital's cluster would run it (one process hosting the four
services here; a cluster splits them). ``make setup-bench`` builds both from the Go module proxy.
"""

from __future__ import annotations

import asyncio
import random
import socket
import subprocess
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import yaml
from google.protobuf.duration_pb2 import Duration
from temporalio.api.workflowservice.v1 import (
    DescribeNamespaceRequest,
    RegisterNamespaceRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from harness.postgres import PostgresServer, free_port
from harness.processes import stop_popen
from harness.temporal import connect_when_up, quiet_client
from harness.waiting import eventually
from infra.toolchain import temporal_server
from integrations.temporal_search import register

STARTUP = timedelta(seconds=120)
NAMESPACE = "default"
SHARDS = 4


def _membership_port() -> int:
    """A free port below 32768: the cluster_membership table keeps ports as SMALLINT, and the
    kernel's ephemeral ports (what free_port gives) start above it."""
    for _ in range(200):
        port = random.randint(20_000, 32_000)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below 32768")


@dataclass
class TemporalCluster:
    postgres: PostgresServer
    workdir: Path
    process: subprocess.Popen[bytes] | None = None
    address: str = ""

    @property
    def log(self) -> Path:
        return self.workdir / "temporal-server.log"

    def _schema(self, tool: Path, schema: Path) -> None:
        for database, folder in (("temporal", "temporal"), ("temporal_visibility", "visibility")):
            base = [
                str(tool), "--plugin", "postgres12", "--endpoint", "127.0.0.1",
                "--port", str(self.postgres.port), "--user", self.postgres.user,
                "--database", database,
            ]  # fmt: skip
            for step in (
                ["create-database"],
                ["setup-schema", "-v", "0.0"],
                ["update-schema", "-d", str(schema / folder / "versioned")],
            ):
                done = subprocess.run([*base, *step], capture_output=True, text=True, check=False)
                if done.returncode != 0:
                    raise RuntimeError(f"temporal-sql-tool {step[0]} {database}: {done.stderr}")

    def _config(self) -> Path:
        frontend = free_port()
        self.address = f"127.0.0.1:{frontend}"

        def store(database: str, connections: int) -> dict[str, object]:
            return {
                "sql": {
                    "pluginName": "postgres12",
                    "databaseName": database,
                    "connectAddr": f"127.0.0.1:{self.postgres.port}",
                    "connectProtocol": "tcp",
                    "user": self.postgres.user,
                    "password": "",
                    "maxConns": connections,
                    "maxIdleConns": connections,
                    "maxConnLifetime": "1h",
                }
            }

        def service(grpc: int) -> dict[str, object]:
            return {
                "rpc": {
                    "grpcPort": grpc,
                    "membershipPort": _membership_port(),
                    "bindOnLocalHost": True,
                }
            }

        config = {
            "log": {"stdout": True, "level": "warn"},
            "persistence": {
                "defaultStore": "default",
                "visibilityStore": "visibility",
                "numHistoryShards": SHARDS,
                "datastores": {
                    "default": store("temporal", 20),
                    "visibility": store("temporal_visibility", 10),
                },
            },
            "global": {
                "membership": {"maxJoinDuration": "30s", "broadcastAddress": "127.0.0.1"},
                "metrics": {
                    "prometheus": {
                        "framework": "tally",
                        "timerType": "histogram",
                        "listenAddress": f"127.0.0.1:{free_port()}",
                    }
                },
            },
            "services": {
                "frontend": service(frontend),
                "matching": service(free_port()),
                "history": service(free_port()),
                "worker": service(free_port()),
            },
            "clusterMetadata": {
                "enableGlobalNamespace": False,
                "failoverVersionIncrement": 10,
                "masterClusterName": "active",
                "currentClusterName": "active",
                "clusterInformation": {
                    "active": {
                        "enabled": True,
                        "initialFailoverVersion": 1,
                        "rpcName": "frontend",
                        "rpcAddress": self.address,
                    }
                },
            },
            "dcRedirectionPolicy": {"policy": "noop"},
            "dynamicConfigClient": {
                "filepath": str(self.workdir / "config" / "dynamic.yaml"),
                "pollInterval": "10s",
            },
        }
        folder = self.workdir / "config"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "bench.yaml").write_text(yaml.safe_dump(config))
        # New namespaces become usable at once rather than after the cache's refresh. Eager
        # activities: a review conclusion's steps skip the server's matching (README, Production).
        (folder / "dynamic.yaml").write_text(
            yaml.safe_dump(
                {
                    "system.forceSearchAttributesCacheRefreshOnRead": [{"value": True}],
                    "frontend.enableUpdateWorkflowExecution": [{"value": True}],
                    "system.enableActivityEagerExecution": [{"value": True}],
                }
            )
        )
        return folder

    async def start(self) -> Client:
        server, tool, schema = temporal_server()
        await asyncio.to_thread(self._schema, tool, schema)
        self._config()
        client = await self._serve(server)
        await self._namespace(client)
        await register(client, NAMESPACE)
        return client

    def _spawn(self, server: Path) -> subprocess.Popen[bytes]:
        sink = self.log.open("ab")
        process = subprocess.Popen(
            [str(server), "--root", str(self.workdir), "--config", "config", "--env", "bench",
             "--allow-no-auth", "start"],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        sink.close()
        return process

    async def _namespace(self, client: Client) -> None:
        """A fresh cluster has no namespace: registers ``default`` and waits until it answers."""
        try:
            await client.workflow_service.register_namespace(
                RegisterNamespaceRequest(
                    namespace=NAMESPACE,
                    workflow_execution_retention_period=Duration(seconds=3 * 24 * 3600),
                )
            )
        except RPCError as exc:
            if exc.status != RPCStatusCode.ALREADY_EXISTS:
                raise

        async def answers() -> bool:
            try:
                await client.workflow_service.describe_namespace(
                    DescribeNamespaceRequest(namespace=NAMESPACE)
                )
            except RPCError:
                return False
            return True

        await eventually(answers, within=STARTUP.total_seconds(), what="the namespace")

    def stop(self, grace: float = 20.0) -> None:
        process, self.process = self.process, None
        if process is not None:
            stop_popen(process, grace)

    async def restart(self) -> None:
        """Stops the server (SIGTERM, then SIGKILL) and starts it again on the same ports and
        stores: what an operator's restart or a crashed host's reboot does to a node."""
        await asyncio.to_thread(self.stop)
        server, _, _ = temporal_server()
        await self._serve(server)

    async def _serve(self, server: Path) -> Client:
        """Starts the server process on the written configuration; a client once it answers."""
        self.process = self._spawn(server)
        return await connect_when_up(
            self.address, self.process, self.log, within=STARTUP.total_seconds(),
            namespace=NAMESPACE,
        )  # fmt: skip

    async def connect(self) -> Client:
        return await quiet_client(self.address, NAMESPACE)
