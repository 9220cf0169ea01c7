"""Run a child process and measure its wall time and peak RSS (``wait4``'s rusage of that child)."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ChildRun:
    """What one child did: exit code, wall seconds from spawn to exit, peak RSS in KiB, CPU seconds
    (user + system, from ``wait4``), its stdout.

    Peak RSS is the child's ``VmHWM`` after its ``exec`` (sampled while it runs): ``ru_maxrss`` from
    ``wait4`` would also count the parent's pages the child carried between ``fork`` and ``exec``.
    """

    returncode: int
    wall: float
    maxrss_kib: int
    cpu: float
    stdout: str
    stderr: str


def run_measured(argv: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: str | None = None,
                 timeout: float = 900) -> ChildRun:
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.monotonic()
        proc = subprocess.Popen(list(argv), stdout=out, stderr=err, env=dict(env) if env else None, cwd=cwd)
        deadline = started + timeout
        hwm = 0
        while True:
            hwm = max(hwm, vm_hwm_kib(proc.pid, argv[0]))
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid == proc.pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.005)
        wall = time.monotonic() - started
        proc.returncode = os.waitstatus_to_exitcode(status)  # wait4 reaped it: tell Popen
        out.seek(0)
        err.seek(0)
        cpu = usage.ru_utime + usage.ru_stime
        return ChildRun(proc.returncode, wall, hwm, cpu, out.read().decode(errors="replace"),
                        err.read().decode(errors="replace"))


def vm_hwm_kib(pid: int, program: str) -> int:
    """The process's peak RSS since its last exec, 0 before it has exec'd ``program`` or once gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
        exe = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return 0
    if Path(exe).name != Path(program).name and not Path(exe).name.startswith("python"):
        return 0  # still the forked copy of the parent
    match = re.search(r"^VmHWM:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) if match else 0
