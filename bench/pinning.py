"""Client on one core, lab on the other: whether the client keeps up with a server, not co-location.

On a two-core machine an unpinned upload makes the client's sha512 and Glance's work share both
cores, so the figure measures co-location (``performance-notes.md``). A PCD client and an image-library
host never share cores. With the lab's processes (PostgreSQL, Keystone, the agent, every Glance and
their workers) held to one core and the client and curl on the other (as ``taskset`` would, through
``sched_setaffinity``), each contender has a core of its own against the same server.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from bench.cpu import descendants

CLIENT_CORE = 0
LAB_CORE = 1


def can_pin() -> bool:
    """Two cores this process may use (affinity can be narrowed to one each)."""
    return {CLIENT_CORE, LAB_CORE} <= os.sched_getaffinity(0)


def lab_roots(status: dict[str, Any]) -> list[int]:
    """The lab's server processes: each has its workers, backends and hosts below it."""
    roots = [int(p) for p in (status.get("pids") or {}).values() if p]
    roots += [int(h["pid"]) for h in status["hosts"] if h.get("pid")]
    return roots


@contextmanager
def client_pinned() -> Iterator[None]:
    """This process (and every child it starts meanwhile: the client, curl, sha512sum) on
    ``CLIENT_CORE``. Children inherit affinity, so their own measurements (``wait4``, ``VmHWM``) stay
    those of the program itself, not of a ``taskset`` wrapper."""
    saved = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {CLIENT_CORE})
    try:
        yield
    finally:
        os.sched_setaffinity(0, saved)


@contextmanager
def lab_pinned(status: dict[str, Any]) -> Iterator[set[int]]:
    """Every lab process held to ``LAB_CORE`` while inside; each one's affinity restored after.

    Processes started meanwhile inherit their parent's affinity (a new worker stays on the lab's core).
    """
    saved: dict[int, set[int]] = {}
    for tid in _threads(descendants(lab_roots(status))):
        try:
            saved[tid] = os.sched_getaffinity(tid)
            os.sched_setaffinity(tid, {LAB_CORE})
        except OSError:
            saved.pop(tid, None)  # gone meanwhile
    try:
        yield set(saved)
    finally:
        for tid, cores in saved.items():
            try:
                os.sched_setaffinity(tid, cores)
            except OSError:
                pass


def _threads(pids: set[int]) -> list[int]:
    """Every thread of ``pids``: Linux's affinity is per thread (gthread workers have several), and a
    thread started later inherits its creator's."""
    tids: list[int] = []
    for pid in pids:
        try:
            tids += [int(t) for t in os.listdir(f"/proc/{pid}/task")]
        except OSError:
            continue
    return tids
