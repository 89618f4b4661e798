"""The API as `make run` and production start it (`api.serve`): one process per core, each on a
socket of its own, so that staff's browsers are spread over the processes; a process that dies
is replaced; a port that cannot be had stops the start with a reason."""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from harness.postgres import free_port
from harness.processes import Process, child_pids, settings_env, start_api
from harness.settings import make_settings
from harness.waiting import answers_ok, eventually

BROWSERS = 40


def _api_processes(supervisor: int) -> list[int]:
    """The supervisor's children that serve (not multiprocessing's resource tracker)."""
    return [
        pid
        for pid in child_pids(supervisor)
        if b"resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]


def _running(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def _connections_held(pid: int, port: int) -> int:
    """How many established TCP connections to ``port`` the process holds."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    held = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port = int(fields[1].rsplit(":", 1)[1], 16)
        if local_port == port and fields[3] == "01" and fields[9] in inodes:
            held += 1
    return held


def _port(api: Process) -> int:
    args = [str(a) for a in api.popen.args]  # type: ignore[union-attr]
    return int(args[args.index("--port") + 1])


@pytest.fixture
def api(database_url: str, dev_env: WorkflowEnvironment, tmp_path: Path) -> Iterator[Process]:
    port = free_port()
    settings = make_settings(
        database_url=database_url,
        temporal_address=dev_env.client.service_client.config.target_host,
        api_host="127.0.0.1",
        api_port=port,
    )
    process = start_api(settings_env(settings), tmp_path, port, 2)
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
async def browsers(api: Process) -> AsyncIterator[list[httpx.AsyncClient]]:
    async with AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(
                httpx.AsyncClient(
                    base_url=f"http://127.0.0.1:{_port(api)}",
                    limits=httpx.Limits(max_connections=1),
                    timeout=30,
                )
            )
            for _ in range(BROWSERS)
        ]


async def test_browsers_are_spread_over_the_processes_and_a_dead_one_is_replaced(
    api: Process, browsers: list[httpx.AsyncClient]
) -> None:
    await eventually(lambda: answers_ok(browsers[0], "/readyz"), within=60, what="the API")
    for browser in browsers:
        assert (await browser.get("/healthz")).status_code == 200
    first, second = _api_processes(api.popen.pid)
    held = {pid: _connections_held(pid, _port(api)) for pid in (first, second)}
    assert sum(held.values()) == BROWSERS, api.tail()
    # By the kernel's hash of each connection's addresses: about half each (one process taking
    # fewer than 8 of 40 happens about once in 10,000 runs).
    assert min(held.values()) >= 8, held

    os.kill(first, signal.SIGKILL)

    async def replaced() -> list[int] | None:
        serving = _api_processes(api.popen.pid)
        return serving if len(serving) == 2 and first not in serving else None

    serving = await eventually(replaced, within=60, what="a new API process")
    assert second in serving
    # New connections, wherever the kernel sends them, are answered by the processes alive.
    for _ in range(10):
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{_port(api)}") as fresh:
            await eventually(lambda: answers_ok(fresh, "/readyz"), within=60, what="the API")
    assert api.alive()

    assert api.stop() == 0
    for pid in serving:
        assert not _running(pid), f"API process {pid} still runs"


def test_a_port_in_use_stops_the_start_with_the_reason(
    database_url: str, dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = make_settings(
            database_url=database_url,
            temporal_address=dev_env.client.service_client.config.target_host,
        )
        process = start_api(settings_env(settings), tmp_path, port, 2)
        try:
            assert process.popen.wait(60) == 1
        finally:
            process.stop()
    assert f"cannot listen on 127.0.0.1:{port}" in process.tail()
