"""CPU seconds (user + system) that a group of processes and their descendants have used so far.

Used to split a benchmark's wall time into who burned the CPU: the client, the lab's Glance
processes, its PostgreSQL backends, its Keystone. Read from ``/proc/<pid>/stat``; a descendant is
counted while it lives (the lab's workers and pooled database connections outlive a benchmark).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        # The command name may hold spaces and parentheses: split after the last ')'.
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def descendants(roots: Iterable[int]) -> set[int]:
    """``roots`` and every process below them, found in one pass over ``/proc``."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry))
    found: set[int] = set()
    pending = [p for p in roots if p]
    while pending:
        pid = pending.pop()
        if pid not in found:
            found.add(pid)
            pending.extend(children.get(pid, []))
    return found


class ProcessGroupCpu:
    """The processes under some root pids, whose CPU use is read at will (in seconds)."""

    def __init__(self, roots: Iterable[int]) -> None:
        self.pids = descendants(roots)

    def seconds(self) -> float:
        ticks = 0
        for pid in self.pids:
            fields = _stat_fields(pid)
            if fields is not None:
                ticks += int(fields[11]) + int(fields[12])  # utime, stime
        return ticks / TICKS


def machine_busy_seconds() -> float:
    """CPU seconds every core of the machine has spent busy so far (``/proc/stat``: all but idle and
    iowait): the lab, the client and any background load alike."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / TICKS


def pid_from_file(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
