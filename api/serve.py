"""The API as several processes on one port: ``python -m api.serve --host H --port P
--processes N [--no-access-log]``; ``make run`` and the production command start it.

Each process listens on a socket of its own bound with SO_REUSEPORT, and the kernel hands each
new connection to one of them by its addresses. ``uvicorn --workers`` shares one listening
socket instead, and there whichever process waits last takes most of the connections: under
bench.api_load one of two processes served nearly all of 50 clients' keep-alive connections
while the other idled, and every request queued behind that one.

A process that dies is started again. One that fails before serving (the app does not import,
the port is taken) stops them all, as it would fail again. SIGTERM or SIGINT stops them all.
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import os
import signal
import socket
import sys
import threading
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess

import uvicorn
from uvicorn.config import STARTUP_FAILURE

# How long processes have to finish their requests when told to stop, before they are killed.
STOP_GRACE_SECONDS = 20
BACKLOG = 2048  # uvicorn's own default


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    # Listening before the app has started: the kernel spreads connections only over sockets
    # that listen, and the first process up would otherwise take every connection opened while
    # the others start (and keep them, kept alive). Those made early wait in the queue instead.
    sock.listen(BACKLOG)
    return sock


def _serve(host: str, port: int, access_log: bool) -> None:
    """One API process (the target of a child process)."""
    try:
        sock = _listen(host, port)
    except OSError as exc:
        sys.stderr.write(f"cannot listen on {host}:{port}: {exc}\n")
        sys.exit(STARTUP_FAILURE)
    from api.main import app

    # What the import built (routes, schemas, table metadata, templates) lives as long as the
    # process: out of the collector's way, a full collection no longer walks all of it while
    # requests wait.
    gc.freeze()
    config = uvicorn.Config(app, host=host, port=port, access_log=access_log, backlog=BACKLOG)
    uvicorn.Server(config).run(sockets=[sock])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--no-access-log", dest="access_log", action="store_false")
    args = parser.parse_args()
    context = multiprocessing.get_context("spawn")
    stopping = threading.Event()

    def start() -> BaseProcess:
        process = context.Process(
            target=_serve, args=(args.host, args.port, args.access_log), name="carepath-api"
        )
        process.start()
        return process

    def stop(_signum: int, _frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    processes = [start() for _ in range(max(1, args.processes))]
    sys.stderr.write(
        f"API on {args.host}:{args.port}: {len(processes)} processes "
        f"({', '.join(str(p.pid) for p in processes)}), each with its own socket\n"
    )
    failed = False
    while not stopping.is_set():
        wait([p.sentinel for p in processes], timeout=0.5)
        for n, process in enumerate(processes):
            if process.is_alive() or stopping.is_set():
                continue
            if process.exitcode == STARTUP_FAILURE:
                sys.stderr.write(f"API process {process.pid} could not start; stopping\n")
                failed = True
                stopping.set()
                break
            processes[n] = start()
            sys.stderr.write(
                f"API process {process.pid} ended ({process.exitcode}); "
                f"started {processes[n].pid}\n"
            )
    for process in processes:
        if process.is_alive() and process.pid is not None:
            os.kill(process.pid, signal.SIGTERM)
    for process in processes:
        process.join(STOP_GRACE_SECONDS)
        if process.is_alive():
            process.kill()
            process.join()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
