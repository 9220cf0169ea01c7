"""Helpers for the lab's own tests: Keystone sessions, host lookup, baseline restore, waiting.

These tests talk to the lab with plain requests/keystoneauth only (no imagelib_ha code): the lab and
the client must stay two independent readings of the APIs.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3

from lab.api import Lab

REGION_ONE_HOSTS = ("lab-host-1", "lab-host-2", "lab-host-3")


def login(st: dict[str, Any], who: str = "admin") -> ks_session.Session:
    c = st[who]
    auth = v3.Password(
        auth_url=st["auth_url"], username=c["username"], password=c["password"],
        project_name=c["project_name"], user_domain_name=c["user_domain_name"],
        project_domain_name=c["project_domain_name"],
    )
    return ks_session.Session(auth=auth, timeout=30)


def token_of(st: dict[str, Any], who: str = "admin") -> str:
    token = login(st, who).get_token()
    assert token, f"no token for {who}"
    return token


def host(st: dict[str, Any], name: str) -> dict[str, Any]:
    return next(h for h in st["hosts"] if h["name"] == name)


def reset_faults(lab: Lab) -> None:
    """Shared storage, no resmgr faults, default resmgr options, every role host serving."""
    st = lab.status()
    if st["storage"] != "shared":
        lab.set_storage("shared")
    cfg = lab.config
    lab.set_resmgr_options(converge_seconds=cfg.converge_seconds, removal_404_seconds=cfg.removal_404_seconds,
                           v2_roles_spelling=cfg.v2_roles_spelling)
    for h in st["hosts"]:
        lab.clear_fault(h["name"])
        if h["drained"]:
            lab.undrain(h["name"])
        if h["role_state"] == "applied" and (h["frozen"] or not h["running"]):
            lab.restart(h["name"])


def restore_baseline(lab: Lab) -> None:
    """reset_faults, and no host holding a role."""
    reset_faults(lab)
    for h in lab.status()["hosts"]:
        if h["roles"] or h["pid"]:
            name: str = h["name"]
            wait_until(functools.partial(_settled, lab, name), timeout=60, what=f"{name} to settle")
            lab.revoke_role(h["name"])


def _settled(lab: Lab, name: str) -> bool:
    return bool(host(lab.status(), name)["role_status"] != "converging")


def wait_until(pred: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
