"""The platform's real processes (API, worker, simulator), started as the launcher starts them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from core.settings import Settings
from harness.waiting import answers_ok, eventually
from infra.toolchain import REPO_ROOT


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def stop(self, grace: float = 15.0) -> int:
        return stop_popen(self.popen, grace)

    def tail(self, lines: int = 40) -> str:
        return _tail(self.name, self.log, lines)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> None:
        self.popen.kill()
        self.popen.wait()


def stop_popen(popen: subprocess.Popen[bytes], grace: float = 15.0) -> int:
    """SIGTERM, then SIGKILL after ``grace`` seconds; the exit code."""
    if popen.poll() is None:
        popen.send_signal(signal.SIGTERM)
        try:
            popen.wait(grace)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait()
    return popen.returncode


def start_api(
    env: dict[str, str], log_dir: Path, port: int, processes: int, *, access_log: bool = False
) -> Process:
    """The API as production runs it (``api.serve``), by default without the access log."""
    args = ["-m", "api.serve", "--host", "127.0.0.1", "--port", str(port),
            "--processes", str(processes)]  # fmt: skip
    return start_process("api", args if access_log else [*args, "--no-access-log"], env, log_dir)


def child_pids(pid: int) -> list[int]:
    """The processes ``pid`` started (Linux)."""
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


async def api_ready(http: httpx.AsyncClient) -> None:
    """Waits until the API at ``http``'s base URL answers /readyz."""
    await eventually(lambda: answers_ok(http, "/readyz"), within=60, what="the API")


def _tail(name: str, log: Path, lines: int) -> str:
    text = log.read_text(errors="replace") if log.exists() else ""
    return f"--- {name} ---\n" + "\n".join(text.splitlines()[-lines:])


def start_process(name: str, args: list[str], env: dict[str, str], log_dir: Path) -> Process:
    log = log_dir / f"{name}.log"
    sink = log.open("wb")
    popen = subprocess.Popen(
        [sys.executable, *args],
        cwd=REPO_ROOT,
        env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
        stdout=sink,
        stderr=subprocess.STDOUT,
    )
    sink.close()
    return Process(name, popen, log)


def settings_env(settings: Settings) -> dict[str, str]:
    """Settings as the CAREPATH_* environment a platform process (worker, API) reads."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        env[f"CAREPATH_{name.upper()}"] = (
            json.dumps(value) if isinstance(value, dict | list) else str(value)
        )
    return env


@dataclass
class Forked:
    """A worker process that ``harness.worker_fork`` forked (that parent reaps it)."""

    name: str
    pid: int
    log: Path

    def alive(self) -> bool:
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def kill(self) -> None:
        self._signal_and_wait(signal.SIGKILL, 30.0)

    def stop(self, grace: float = 15.0) -> None:
        if not self._signal_and_wait(signal.SIGTERM, grace):
            self.kill()

    def tail(self, lines: int = 40) -> str:
        return _tail(self.name, self.log, lines)

    def _signal_and_wait(self, sig: signal.Signals, within: float) -> bool:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, sig)
        give_up = time.monotonic() + within
        while self.alive():
            if time.monotonic() > give_up:
                return False
            time.sleep(0.01)
        return True


class WorkerFork:
    """The parent of forked workers (``harness.worker_fork``): the worker's imports done once,
    so that a worker killed every few seconds is back serving in about a second."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self._log_dir = log_dir
        self._popen = subprocess.Popen(
            [sys.executable, "-m", "harness.worker_fork"],
            cwd=REPO_ROOT,
            env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=(log_dir / "worker-fork.log").open("wb"),
        )

    def spawn(self, name: str) -> Forked:
        assert self._popen.stdin is not None
        assert self._popen.stdout is not None
        log = self._log_dir / f"{name}.log"
        self._popen.stdin.write(f"{log}\n".encode())
        self._popen.stdin.flush()
        answer = self._popen.stdout.readline()
        if not answer:
            raise RuntimeError(f"the worker parent died: see {self._log_dir / 'worker-fork.log'}")
        return Forked(name, int(answer), log)

    def close(self) -> None:
        if self._popen.stdin is not None:
            with contextlib.suppress(BrokenPipeError):
                self._popen.stdin.close()
        try:
            self._popen.wait(15)
        except subprocess.TimeoutExpired:
            self._popen.kill()
            self._popen.wait()


@dataclass
class KilledOften:
    """A platform process (typically the worker) that a fault run SIGKILLs at a steady pace and
    starts again at once, each time with a fresh log (``<name>-<generation>.log``): a new
    process, or a worker forked from ``fork`` when given."""

    name: str
    args: list[str]
    env: dict[str, str]
    log_dir: Path
    fork: WorkerFork | None = None
    kills: int = 0
    generation: int = 0
    process: Process | Forked | None = None
    # Seconds from each start to serving: what every kill costs.
    start_seconds: list[float] = field(default_factory=list)
    _started_at: float = 0.0

    def start(self) -> Process | Forked:
        self.generation += 1
        self._started_at = time.monotonic()
        name = f"{self.name}-{self.generation}"
        self.process = (
            self.fork.spawn(name)
            if self.fork is not None
            else start_process(name, self.args, self.env, self.log_dir)
        )
        return self.process

    def kill_and_restart(self) -> None:
        """SIGKILL: no goodbye to the server, no finishing the activities in flight."""
        if self.process is not None and self.process.alive():
            self.process.kill()
            self.kills += 1
        self.start()

    async def started(self, marker: str = "worker started", within: float = 120.0) -> bool:
        """Whether the current generation logged ``marker`` (it is serving) within ``within``
        seconds. A kill schedule counts from here: on a busy machine a worker can take longer
        to import and connect than the kill interval, and would then never serve at all."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + within
        while loop.time() < give_up:
            process = self.process
            if process is None or not process.alive():
                return False
            if process.log.exists() and marker in process.log.read_text(errors="replace"):
                self.start_seconds.append(time.monotonic() - self._started_at)
                return True
            await asyncio.sleep(0.2)
        return False

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
