"""``make run``: the whole platform on its embedded defaults, in the foreground.

Starts, in order: the Temporal dev server (file persistence, UI), database migrations and the
demo seed, the HIS simulator, the worker and the API. Ctrl-C (or ``make stop``) stops them in
reverse order; if any of them dies, the rest are stopped too, so nothing is left half-running.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import httpx

from core.crypto import configure_from_settings
from core.db import create_engine, session_factory
from core.dev_keys import dev_payment_keys
from core.logs import configure_logging, get_logger
from core.migrate import upgrade
from core.settings import Settings, get_settings
from infra.seed import seed_demo
from infra.toolchain import temporal_cli
from messaging.templates import load_platform_templates

log = get_logger("launcher")

STOP_GRACE_SECONDS = 15.0
SIM_TWILIO_URL = "http://127.0.0.1:8082"
SIM_WECHAT_URL = "http://127.0.0.1:8083"
SIM_WECHATPAY_URL = "http://127.0.0.1:8085"


@dataclass
class Child:
    name: str
    argv: list[str]
    log_file: Path
    process: asyncio.subprocess.Process | None = None
    pump: asyncio.Task[None] | None = field(default=None, repr=False)

    async def start(self, env: dict[str, str]) -> None:
        self.process = await asyncio.create_subprocess_exec(
            *self.argv,
            # The launcher's own working directory, not the source tree's: relative settings
            # (data_dir, the SQLite URL, .env) must mean the same files to every process, and an
            # installed wheel's "source tree" is site-packages.
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            # Own process group: the terminal's Ctrl-C reaches only the launcher, which then
            # stops the children in order instead of all at once.
            start_new_session=True,
        )
        self.pump = asyncio.create_task(self._pump_output())

    async def _pump_output(self) -> None:
        assert self.process is not None
        assert self.process.stdout is not None
        with self.log_file.open("ab") as sink:
            async for line in self.process.stdout:
                sink.write(line)
                sink.flush()
                sys.stderr.write(f"[{self.name}] {line.decode(errors='replace')}")

    async def stop(self) -> None:
        process = self.process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), STOP_GRACE_SECONDS)
        except TimeoutError:
            log.warning("did not stop in time, killing", service=self.name)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
        if self.pump is not None:
            await self.pump


async def _wait_for_port(host: str, port: int, child: Child, within: float = 90.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if child.process is not None and child.process.returncode is not None:
            raise RuntimeError(f"{child.name} exited with code {child.process.returncode}")
        try:
            _, writer = await asyncio.open_connection(host, port)
        except OSError:
            await asyncio.sleep(0.2)
            continue
        writer.close()
        await writer.wait_closed()
        return
    raise RuntimeError(f"{child.name} did not open {host}:{port} within {within:.0f}s")


async def _wait_for_ready(url: str, child: Child, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(timeout=2.0) as http:
        while time.monotonic() < deadline:
            if child.process is not None and child.process.returncode is not None:
                raise RuntimeError(f"{child.name} exited with code {child.process.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(url)).status_code == 200:
                    return
            await asyncio.sleep(0.3)
    raise RuntimeError(f"{child.name} was not ready at {url} within {within:.0f}s")


def _pid_file(settings: Settings) -> Path:
    return settings.data_dir / "run" / "launcher.pid"


def _running_pid(pid_file: Path) -> int | None:
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, 0)
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return None
    except PermissionError:
        return int(pid_file.read_text().strip())
    return pid


def embedded_environment(settings: Settings) -> dict[str, str]:
    """What ``make run`` sets for its children unless the operator already has: the message
    channels point at the local Twilio and WeChat simulators, WeChat first, then SMS, then the
    outbox. Only in development; elsewhere the configuration is the operator's."""
    if settings.environment != "development":
        return {}
    platform = load_platform_templates(max_sms_segments=settings.sms_max_segments)
    return {
        "CAREPATH_MESSAGE_CHANNELS": "wechat,sms,outbox",
        "CAREPATH_TWILIO_API_BASE_URL": SIM_TWILIO_URL,
        "CAREPATH_WECHAT_API_BASE_URL": SIM_WECHAT_URL,
        "CAREPATH_WECHATPAY_API_BASE_URL": SIM_WECHATPAY_URL,
        "CAREPATH_WECHAT_TEMPLATE_IDS": json.dumps(
            {code: f"TPL-{code.upper()}" for code in platform}
        ),
    }


def _banner(
    settings: Settings, tokens: list[tuple[str, str]], sign_ins: list[tuple[str, str, str]]
) -> str:
    lines = [
        "",
        "CarePath is running (embedded defaults). Ctrl-C or `make stop` stops everything.",
        f"  API and patient pages  http://{settings.api_host}:{settings.api_port}  (docs: /docs)",
        f"  Temporal frontend      {settings.temporal_address}",
        f"  Temporal UI            {settings.temporal_ui_url}",
        f"  HIS simulator          {settings.his_base_url}  (docs: /docs)",
        f"  Twilio simulator       {settings.twilio_api_base_url}  (sent SMS: /sim/messages)",
        f"  WeChat simulator       {settings.wechat_api_base_url}  (sent: /sim/messages)",
        f"  Enterprise simulator   {settings.enterprise_base_urls.get('ENT-DEMO', '-')}"
        "  (herbal orders: /sim/orders)",
        f"  Insurance simulator    {settings.insurance_base_url}  (ledger: /sim/ledger)",
        f"  Payment simulator      {settings.wechatpay_api_base_url}  (trades: /sim/orders)",
        f"  Exam vendor simulator  {settings.exam_base_url}  (bookings: /sim/bookings)",
        f"  Identity simulator     {settings.identity_base_url}  (checks: /sim/checks)",
        f"  Message channels       {' → '.join(settings.enabled_channels)}",
        f"  Data                   {settings.data_dir.resolve()}",
        "  Demo staff tokens (Authorization: Bearer <token>):",
        *[f"    {token:<24} {who}" for token, who in tokens],
        *(
            [
                f"  Staff workbench        {settings.public_base_url.rstrip('/')}/w  (sign in as"
                " below; the same accounts for POST /api/auth/sign-in):"
            ]
            if sign_ins
            else []
        ),
        *[f"    {user:<18} / {password:<19} {who}" for user, password, who in sign_ins],
        "  Watch a discharged patient's follow-up end to end: `make demo`",
        "  Watch a herbal prescription's review and delivery: `make demo-rx`",
        "  Watch a mixed insurance + WeChat Pay payment and a refund: `make demo-pay`",
        "  Watch a physical exam through the vendor interfaces (US-K1..H5): `make demo-exam`",
        "  Watch a home-nursing visit from order to rating: `make demo-nursing`",
        "",
    ]
    return "\n".join(lines)


async def run(settings: Settings, *, embedded_temporal: bool) -> int:
    data = settings.data_dir
    for sub in ("temporal", "logs", "run"):
        (data / sub).mkdir(parents=True, exist_ok=True)
    pid_file = _pid_file(settings)
    other = _running_pid(pid_file)
    if other is not None and other != os.getpid():
        log.error("already running; stop it first with `make stop`", pid=other)
        return 1
    pid_file.write_text(str(os.getpid()))

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    python = sys.executable
    temporal = urlparse(f"//{settings.temporal_address}")
    his = urlparse(settings.his_base_url)
    ui_port = urlparse(settings.temporal_ui_url).port or 8233
    logs = data / "logs"
    children: list[Child] = []
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    async def launch(child: Child) -> Child:
        await child.start(env)
        children.append(child)
        log.info("started", service=child.name, pid=child.process.pid if child.process else None)
        return child

    exit_code = 0
    try:
        if embedded_temporal:
            server = await launch(
                Child(
                    "temporal",
                    [
                        str(temporal_cli()),
                        "server",
                        "start-dev",
                        "--ip",
                        temporal.hostname or "127.0.0.1",
                        "--port",
                        str(temporal.port or 7233),
                        "--ui-port",
                        str(ui_port),
                        "--db-filename",
                        str((data / "temporal" / "temporal.db").resolve()),
                        "--log-level",
                        "error",
                        # "default" always exists; any other namespace is created on start.
                        *(
                            ["--namespace", settings.temporal_namespace]
                            if settings.temporal_namespace != "default"
                            else []
                        ),
                    ],
                    logs / "temporal.log",
                )
            )
            await _wait_for_port(temporal.hostname or "127.0.0.1", temporal.port or 7233, server)

        await asyncio.to_thread(upgrade, settings.database_url)
        if settings.environment == "development":
            # Before any child starts: the payment simulator, worker and API all read them.
            dev_payment_keys(settings.data_dir)
        tokens: list[tuple[str, str]] = []
        sign_ins: list[tuple[str, str, str]] = []
        if settings.environment == "development":
            configure_from_settings(settings)
            engine = create_engine(settings.database_url)
            staff = await seed_demo(session_factory(engine), settings)
            await engine.dispose()
            tokens = [
                (s.token, f"{s.name} ({s.role}, {s.department_code or 'all'})") for s in staff
            ]
            sign_ins = [
                (s.username, s.password, f"{s.name} ({s.role})")
                for s in staff
                if s.username and s.password
            ]

        sim = await launch(Child("his-sim", [python, "-m", "simulators.his"], logs / "his-sim.log"))
        await _wait_for_port(his.hostname or "127.0.0.1", his.port or 8081, sim)
        for name, module, url in (
            ("twilio-sim", "simulators.twilio", settings.twilio_api_base_url),
            ("wechat-sim", "simulators.wechat", settings.wechat_api_base_url),
            ("enterprise-sim", "simulators.enterprise",
             settings.enterprise_base_urls.get("ENT-DEMO", "")),
            ("insurance-sim", "simulators.insurance", settings.insurance_base_url),
            ("wechatpay-sim", "simulators.wechatpay", settings.wechatpay_api_base_url),
            ("exam-sim", "simulators.exam", settings.exam_base_url),
            ("identity-sim", "simulators.identity", settings.identity_base_url),
        ):  # fmt: skip
            target = urlparse(url)
            if target.hostname in ("127.0.0.1", "localhost"):
                child = await launch(Child(name, [python, "-m", module], logs / f"{name}.log"))
                await _wait_for_port(target.hostname, target.port or 80, child)
        # Prescriptions' review in a process of its own: its deadlines never wait for an event
        # loop busy with everything else (workers/main.py).
        for name, queues in (("worker", "main"), ("review-worker", "review")):
            worker = [python, "-m", "workers.main", "--queues", queues]
            await launch(Child(name, worker, logs / f"{name}.log"))
        api = await launch(
            Child(
                "api",
                [
                    python,
                    "-m",
                    "api.serve",
                    "--host",
                    settings.api_host,
                    "--port",
                    str(settings.api_port),
                    "--processes",
                    str(settings.api_processes or os.cpu_count() or 1),
                ],
                logs / "api.log",
            )
        )
        await _wait_for_ready(f"http://{settings.api_host}:{settings.api_port}/readyz", api)
        sys.stderr.write(_banner(settings, tokens, sign_ins) + "\n")

        waits = {
            asyncio.ensure_future(c.process.wait()): c for c in children if c.process is not None
        }
        stopper = asyncio.ensure_future(stop.wait())
        done, _ = await asyncio.wait([stopper, *waits], return_when=asyncio.FIRST_COMPLETED)
        for finished in done:
            if finished is not stopper:
                child = waits[finished]
                log.error(
                    "service exited; stopping the rest", service=child.name, code=finished.result()
                )
                exit_code = 1
        stopper.cancel()
        for pending in waits:
            pending.cancel()
    except Exception as exc:  # noqa: BLE001 - any start-up failure stops what was started
        log.error("start-up failed; stopping what was started", error=str(exc))
        exit_code = 1
    finally:
        for child in reversed(children):
            log.info("stopping", service=child.name)
            await child.stop()
        with contextlib.suppress(FileNotFoundError):
            pid_file.unlink()
        log.info("all services stopped")
    return exit_code


def stop_running(settings: Settings, timeout: float = 60.0) -> int:
    pid_file = _pid_file(settings)
    pid = _running_pid(pid_file)
    if pid is None:
        sys.stderr.write("CarePath is not running.\n")
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _running_pid(pid_file) is None:
            sys.stderr.write("CarePath stopped.\n")
            return 0
        time.sleep(0.2)
    sys.stderr.write(f"CarePath (pid {pid}) did not stop within {timeout:.0f}s.\n")
    return 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", nargs="?", choices=["start", "stop"], default="start")
    parser.add_argument(
        "--external-temporal",
        action="store_true",
        help="use the Temporal cluster at CAREPATH_TEMPORAL_ADDRESS instead of the dev server",
    )
    args = parser.parse_args()
    settings = get_settings()
    if args.command == "stop":
        sys.exit(stop_running(settings))
    # The children read their configuration from the environment; an operator's own values win.
    for key, value in embedded_environment(settings).items():
        os.environ.setdefault(key, value)
    settings = Settings()
    configure_logging(json=settings.json_logs, level=settings.log_level)
    sys.exit(asyncio.run(run(settings, embedded_temporal=not args.external_temporal)))


if __name__ == "__main__":
    main()
