"""Helpers the lab-backed client and provider tests share: sessions from the lab's status, the
RegionOne hosts, and a module fixture body that grants the role to those hosts and takes back only
what it granted."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from cloud_config import cloud_config
from keystoneauth1 import session as ks_session

from imagelib_ha.client.glance import GlanceHost
from imagelib_ha.client.resmgr import ResmgrClient
from imagelib_ha.client.session import CloudAccess, make_session
from lab.api import Lab


def cloud_of(status: dict[str, Any]) -> dict[str, Any]:
    """The lab admin's credentials as ``client.session.CloudAccess`` keys."""
    return {"auth_url": status["auth_url"], "region": status["region"], **status["admin"]}


def stack_config_of(status: dict[str, Any]) -> dict[str, str]:
    """The stack config the engine sends a provider's ``Configure`` for the lab: the admin's cloud."""
    return cloud_config(cloud_of(status))


def session_of(status: dict[str, Any]) -> ks_session.Session:
    return make_session(CloudAccess.from_dict(cloud_of(status)))


def region_hosts(status: dict[str, Any]) -> list[dict[str, Any]]:
    return [h for h in status["hosts"] if h["region"] == status["region"]]


def wait_resmgr_knows(status: dict[str, Any], timeout: float = 60.0) -> None:
    """Until resmgr's per-host GET answers for every RegionOne host again.

    After a host's last role goes, PCD (and the lab, for ``removal_404_seconds``) answers 404 to the
    per-host GET for a while. Tests that start from "no roles" wait that window out, so each judges what
    it means to; the window itself is tested on purpose where it matters.
    """
    client = ResmgrClient(session_of(status), region=status["region"])
    deadline = time.monotonic() + timeout
    for h in region_hosts(status):
        while client.get_host(h["id"]) is None:
            assert time.monotonic() < deadline, f"resmgr still answers 404 for {h['name']}"
            time.sleep(0.25)


def wait_serving(status: dict[str, Any], timeout: float = 60.0) -> None:
    """Until every RegionOne host answers its probe (after a grant, a restart or a storage switch)."""
    session = session_of(status)
    deadline = time.monotonic() + timeout
    for h in region_hosts(status):
        while GlanceHost(session, h["endpoint"]).probe(timeout=3).status != "serving":
            assert time.monotonic() < deadline, f"{h['name']} did not come back"
            time.sleep(0.5)


def granted_region_roles(lab: Lab, *, wait: bool = True) -> Iterator[dict[str, Any]]:
    """Grant the role to every RegionOne host lacking it, yield the lab status, revoke those grants."""
    granted = []
    for h in region_hosts(lab.status()):
        if not h["roles"]:
            lab.grant_role(h["name"])
            granted.append(h["name"])
    status = lab.status()
    if wait:
        wait_serving(status)
    yield status
    for name in granted:
        lab.revoke_role(name)


def bare_region(lab: Lab) -> None:
    """No faults and no roles on the RegionOne hosts: where the role tests start and end."""
    for h in region_hosts(lab.status()):
        lab.clear_fault(h["name"])
        if h["roles"]:
            lab.revoke_role(h["name"])


def bare_region_roles(lab: Lab) -> Iterator[tuple[Lab, dict[str, Any]]]:
    """A fixture body: the RegionOne hosts bare (``bare_region``), then put back as they were."""
    held = [h["name"] for h in region_hosts(lab.status()) if h["roles"]]
    bare_region(lab)
    wait_resmgr_knows(lab.status())
    try:
        yield lab, lab.status()
    finally:
        bare_region(lab)
        for name in held:
            lab.grant_role(name)
