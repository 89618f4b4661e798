"""Where a benchmark's CPU went: every process on the machine, grouped by what it is (our worker,
the API, the Temporal server, PostgreSQL, the simulators, the load generator), per item the
benchmark pushed through. On a machine where all of them share the cores, that split says which
part bounds the rate, and the machine's total per item bounds what any tuning of one part buys.

Linux only (/proc). Processes that start and end inside the window are missed; the ones that
matter here (pooled PostgreSQL backends, the servers, the workers) live throughout."""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

# First match wins; a process that matches none is counted under its nearest matching ancestor
# (the API's processes are children of ``api.serve``), else as "other".
_GROUPS = (
    ("workers.main", "worker"),
    ("api.serve", "API"),
    ("temporal", "Temporal server"),
    ("postgres", "PostgreSQL"),
    ("simulators.", "simulators"),
    ("bench.", "load generator"),
)
_TICK = os.sysconf("SC_CLK_TCK")


def _processes() -> dict[int, tuple[int, str, float]]:
    """pid → (parent pid, command line, CPU seconds used so far)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # ended while we looked
            continue
        fields = stat.rpartition(")")[2].split()
        used = (int(fields[11]) + int(fields[12])) / _TICK
        found[int(entry.name)] = (int(fields[1]), cmdline or stat.partition("(")[2], used)
    return found


def _group(pid: int, processes: dict[int, tuple[int, str, float]]) -> str:
    seen = set()
    while pid in processes and pid not in seen:
        seen.add(pid)
        parent, cmdline, _ = processes[pid]
        for marker, group in _GROUPS:
            if marker in cmdline:
                return group
        pid = parent
    return "other"


def _busy_seconds() -> float:
    """CPU time the whole machine has spent busy (not idle or waiting on disk), all cores."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / _TICK


@dataclass
class CpuSplit:
    """Taken when the measured window opens; ``report`` closes it."""

    processes: dict[int, tuple[int, str, float]]
    busy: float

    @classmethod
    def start(cls) -> CpuSplit:
        return cls(_processes(), _busy_seconds())

    def report(self, items: int, unit: str) -> str:
        after = _processes()
        used: dict[str, float] = defaultdict(float)
        for pid, (_, _, seconds) in after.items():
            before = self.processes.get(pid)
            used[_group(pid, after)] += seconds - (before[2] if before else 0.0)
        busy = _busy_seconds() - self.busy
        per_item = busy * 1000 / max(items, 1)
        parts = ", ".join(
            f"{group} {seconds * 1000 / max(items, 1):.1f}"
            for group, seconds in sorted(used.items(), key=lambda kv: -kv[1])
            if seconds * 1000 / max(items, 1) >= 0.05
        )
        cores = os.cpu_count() or 1
        return (
            f"CPU per {unit}: {per_item:.1f} ms on the whole machine ({parts}); "
            f"{cores} cores at that cost: at most {cores * 1000 / max(per_item, 1e-9):.0f} a second"
        )
