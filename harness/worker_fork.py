"""A worker parent for runs that SIGKILL the worker every few seconds: ``python -m
harness.worker_fork``. It imports the worker once, then forks a fresh worker process for each log
path it reads on stdin and answers with that process's pid.

A worker started from nothing spends seconds of CPU importing before it serves; killed every few
seconds, it would spend most of its life importing, and the run would measure start-up, not
recovery. A forked worker is still a new process: it connects to Temporal, registers and runs
``workers.main`` from the start, with an empty workflow cache, and dies to SIGKILL without a
word, as a killed worker does. Only the imports are shared (a supervisor that preloads does the
same).

Nothing here may start a thread or an event loop before forking: the parent only imports.
"""

from __future__ import annotations

import os
import signal
import sys
import traceback

import workers.main as worker


def _serve(log: str) -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    sink = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(sink, 1)
    os.dup2(sink, 2)
    os.close(sink)
    os.close(0)
    code = 0
    try:
        worker.run()
    # Whatever ends it, the child must not return into the parent's loop (it would fork too).
    except BaseException:  # noqa: BLE001
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main() -> None:
    # Children are reaped as they die: the caller kills them by pid and watches the pid go.
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    for line in sys.stdin:
        log = line.strip()
        if not log:
            continue
        pid = os.fork()
        if pid == 0:
            _serve(log)
        sys.stdout.write(f"{pid}\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
