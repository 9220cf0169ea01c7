"""Starting, signalling and stopping the lab's server processes, always by PID and process group."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import requests


def spawn(
    argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], log_path: Path
) -> subprocess.Popen[bytes]:
    """Start a server in its own session, so the whole tree (gunicorn master and workers) shares one
    process group that a fault can signal at once."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            list(argv), cwd=cwd, env=dict(env), stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )


def alive(pid: int | None) -> bool:
    """True when pid names a live (not zombie) process."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def ours(pid: int | None, *, cwd: Path | None = None, cmd_marker: str | None = None) -> int | None:
    """pid when it is alive and still the process a pid file named (by working dir or command line):
    a stale pid file must never make the lab signal somebody else's process."""
    if not pid or not alive(pid):
        return None
    try:
        if cwd is not None and Path(os.readlink(f"/proc/{pid}/cwd")) == cwd:
            return pid
        if cmd_marker is not None:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if cmd_marker in cmd:
                return pid
    except OSError:
        pass
    return None


def signal_group(pid: int, sig: signal.Signals) -> None:
    """Signal pid's process group (each server leads its own session); fall back to the pid alone."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def stop_group(pid: int, *, timeout: float = 10.0) -> None:
    """SIGTERM the group (SIGCONT too, so a frozen group can act on it), then SIGKILL what remains."""
    if not group_members(pid) and not alive(pid):
        return
    signal_group(pid, signal.SIGTERM)
    signal_group(pid, signal.SIGCONT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not group_members(pid):
            return
        time.sleep(0.1)
    signal_group(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while group_members(pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def port_listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_http(
    url: str, *, timeout: float, ok: Sequence[int] = (200,), pid: int | None = None, what: str = "",
    log_path: Path | None = None,
) -> int:
    """Poll url until it answers one of ok; raise naming the log when it does not in time."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if pid is not None and not alive(pid):
            raise RuntimeError(f"{what or url} exited while starting; see {log_path}")
        try:
            r = requests.get(url, timeout=2)
            if r.status_code in ok:
                return r.status_code
            last = f"HTTP {r.status_code}"
        except requests.RequestException as exc:
            last = type(exc).__name__
        time.sleep(0.1)
    raise RuntimeError(
        f"{what or url} did not answer at {url} within {timeout:.0f}s ({last}); see {log_path}"
    )


def total_rss_kib(leaders: list[int]) -> int:
    """Resident memory of these leaders' process groups and of their direct children, in one /proc
    pass (PostgreSQL's backends are children of the postmaster, not members of a group of its own)."""
    page_kib = os.sysconf("SC_PAGE_SIZE") // 1024
    wanted = set(leaders)
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid, pgid = int(entry.name), int(fields[1]), int(fields[2])
        if pid in wanted or ppid in wanted or pgid in wanted:
            total += int(fields[21]) * page_kib
    return total


def pids_matching(*markers: str) -> list[int]:
    """Live processes whose command line contains every marker: how the lab finds daemons that
    re-parent to PID 1 and leave their process group (oslo.privsep's), by their config path."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if cmd and all(m in cmd for m in markers) and alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def stop_matching(*markers: str) -> None:
    """SIGTERM, then SIGKILL, every process whose command line contains every marker."""
    pids = pids_matching(*markers)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
