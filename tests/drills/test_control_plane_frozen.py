"""A control plane that accepts connections and never answers ends the run within its deadline, with a
message naming the silent service (Keystone, resmgr), through the providers as the engine calls them.

SIGSTOP keeps the listening sockets open: the kernel still completes TCP handshakes, so only a read
timeout can end the wait, exactly as with a hung service.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from imagelib_ha.client.errors import PcdError
from imagelib_ha.client.resmgr import GET_CONNECT_RETRIES
from imagelib_ha.providers.baseline import ImageLibraryRoleBaselineProvider
from lab.api import Lab

TIMEOUT = 2.0
# Time beyond the request timeout a failing call may take (process start, token, one retry-free call).
SLACK = 3.0


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (gunicorn's workers), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


@contextmanager
def frozen(pid: int) -> Iterator[None]:
    pids = descendants(pid)
    for p in pids:
        os.kill(p, signal.SIGSTOP)
    try:
        yield
    finally:
        for p in pids:
            os.kill(p, signal.SIGCONT)


def configured_baseline(status: dict[str, Any]) -> ImageLibraryRoleBaselineProvider:
    provider = ImageLibraryRoleBaselineProvider()
    cloud = {"authUrl": status["auth_url"], "region": status["region"], "timeoutSeconds": TIMEOUT,
             "username": status["admin"]["username"], "password": status["admin"]["password"],
             "projectName": status["admin"]["project_name"]}
    provider.configure_from({"pcd-imagelib-ha:cloud": json.dumps(cloud)}, {})
    return provider


def create_fails(provider: ImageLibraryRoleBaselineProvider, status: dict[str, Any]) -> tuple[str, float]:
    started = time.monotonic()
    with pytest.raises(PcdError) as caught:
        provider.create({"region": status["region"], "hosts": ["lab-host-1.lab.local"]})
    return str(caught.value), time.monotonic() - started


@pytest.mark.lab
def test_a_frozen_keystone_ends_the_call_within_its_timeout_naming_keystone(lab: Lab) -> None:
    status = lab.status()
    provider = configured_baseline(status)
    with frozen(status["pids"]["keystone"]):
        message, took = create_fails(provider, status)
    assert took < TIMEOUT + SLACK, f"took {took:.1f}s"
    assert message.startswith(f"Keystone at {status['auth_url']} did not answer"), message
    assert status["admin"]["password"] not in message


@pytest.mark.lab
def test_a_frozen_resmgr_ends_the_call_within_its_timeout_naming_resmgr(lab: Lab) -> None:
    status = lab.status()
    provider = configured_baseline(status)
    with frozen(status["pids"]["agent"]):
        message, took = create_fails(provider, status)
    # A read is retried once on a timeout (keystoneauth cannot tell a hung server from a dropped
    # connection), after 0.5 s: still bounded.
    assert took < TIMEOUT * (1 + GET_CONNECT_RETRIES) + 0.5 + SLACK, f"took {took:.1f}s"
    assert "resmgr" in message, message
    assert "Keystone" not in message
    # Thawed, the same provider object works again: nothing stuck on it.
    assert provider.create({"region": status["region"], "hosts": ["lab-host-1.lab.local"]}).outs["entries"]
