"""The platform's real processes (API, worker, simulator), started as the launcher starts them."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from core.settings import Settings
from infra.toolchain import REPO_ROOT


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def stop(self, grace: float = 15.0) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        return self.popen.returncode

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return f"--- {self.name} ---\n" + "\n".join(text.splitlines()[-lines:])


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
class KilledOften:
    """A platform process (typically the worker) that a fault run SIGKILLs at a steady pace and
    starts again at once, each time with a fresh log (``<name>-<generation>.log``)."""

    name: str
    args: list[str]
    env: dict[str, str]
    log_dir: Path
    kills: int = 0
    generation: int = 0
    process: Process | None = None

    def start(self) -> Process:
        self.generation += 1
        self.process = start_process(
            f"{self.name}-{self.generation}", self.args, self.env, self.log_dir
        )
        return self.process

    def kill_and_restart(self) -> None:
        """SIGKILL: no goodbye to the server, no finishing the activities in flight."""
        if self.process is not None and self.process.popen.poll() is None:
            self.process.popen.kill()
            self.process.popen.wait()
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
            if process is None or process.popen.poll() is not None:
                return False
            if process.log.exists() and marker in process.log.read_text(errors="replace"):
                return True
            await asyncio.sleep(0.2)
        return False

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
