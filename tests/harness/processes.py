"""The platform's real processes (API, worker, simulator), started as the launcher starts them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

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
