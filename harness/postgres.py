"""A private PostgreSQL server for the test session, from Debian's packages.

Started in a temporary directory on a free loopback port and stopped at the end; tuned for speed
(no fsync), never for durability. Each test gets its own database cloned from a migrated template.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path


class PostgresUnavailable(RuntimeError):
    pass


def find_pg_bin() -> Path:
    configured = os.environ.get("CAREPATH_PG_BIN")
    candidates = [Path(configured)] if configured else []
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for candidate in candidates:
        if (candidate / "initdb").exists() and (candidate / "pg_ctl").exists():
            return candidate
    raise PostgresUnavailable(
        "PostgreSQL server binaries not found; `make setup-test` installs the Debian package"
    )


# Ports handed out in this process. A port is free when chosen but not held until its server
# binds it, and the kernel may offer the same number again meanwhile: never hand it out twice.
_HANDED_OUT: set[int] = set()


def free_port() -> int:
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


@dataclass
class PostgresServer:
    bin_dir: Path
    data_dir: Path
    socket_dir: Path
    port: int
    run_as: str | None
    user: str = "postgres"

    def url(self, database: str, driver: str = "asyncpg") -> str:
        return f"postgresql+{driver}://{self.user}@127.0.0.1:{self.port}/{database}"

    def dsn(self, database: str) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> None:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if self.run_as:
            # initdb and postgres refuse to run as root; CI machines run tests as root.
            command = ["runuser", "-u", self.run_as, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            log = self.data_dir.parent / "postgres.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise PostgresUnavailable(
                f"{' '.join(args[:2])} failed ({result.returncode}): {result.stderr}\n{tail}"
            )

    def start(self) -> None:
        self._run(
            "initdb",
            "-D",
            str(self.data_dir),
            "-U",
            self.user,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        )
        self._launch()

    def _launch(self) -> None:
        options = " ".join(
            [
                f"-p {self.port}",
                f"-k {self.socket_dir}",
                "-c listen_addresses=127.0.0.1",
                "-c fsync=off",
                "-c synchronous_commit=off",
                "-c full_page_writes=off",
                "-c max_connections=300",
                "-c shared_buffers=128MB",
            ]
        )
        log = self.data_dir.parent / "postgres.log"
        self._run("pg_ctl", "-D", str(self.data_dir), "-o", options, "-l", str(log), "-w", "start")

    def stop(self) -> None:
        if (self.data_dir / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "-w", "stop")

    def restart(self) -> None:
        """Stops the server and starts it again on the same data directory and port: every
        client connection is cut off, committed data survives. Stopped "fast" rather than
        "immediate": with synchronous_commit off, an immediate stop could drop the last
        fraction of a second of commits, which no product code could be blamed for."""
        if (self.data_dir / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop")
        self._launch()


def start_postgres(base_dir: Path) -> PostgresServer:
    bin_dir = find_pg_bin()
    run_as = None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError as exc:
            raise PostgresUnavailable("running as root but no 'postgres' system user") from exc
        run_as = "postgres"
    base_dir.mkdir(parents=True, exist_ok=True)
    socket_dir = base_dir / "sock"
    socket_dir.mkdir(exist_ok=True)
    if run_as:
        base_dir.chmod(0o755)
        for path in (base_dir, socket_dir):
            shutil.chown(path, user=run_as)
    server = PostgresServer(
        bin_dir=bin_dir,
        data_dir=base_dir / "data",
        socket_dir=socket_dir,
        port=free_port(),
        run_as=run_as,
    )
    server.start()
    return server
