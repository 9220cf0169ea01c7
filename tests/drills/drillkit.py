"""Helpers the fault drills share: sessions, image records of a key, the shared store, lab restore.

The drills drive the project's own client (imagelib_ha.client) against the session lab and check
what the lab really holds afterwards: image records by key in every status, files in the shared store.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from keystoneauth1 import session as ks_session

from imagelib_ha.client.failover import KEY_PROPERTY, MAX_ATTEMPT_IDS, attempt_image_id
from imagelib_ha.client.glance import GlanceHost, HostUnavailable, Timeouts
from imagelib_ha.client.session import CloudAccess, make_session
from lab.api import Lab

REGION_ONE_HOSTS = ("lab-host-1", "lab-host-2", "lab-host-3")


def cloud_of(status: dict[str, Any]) -> dict[str, Any]:
    return {"auth_url": status["auth_url"], "region": status["region"], **status["admin"]}


def session_of(status: dict[str, Any]) -> ks_session.Session:
    return make_session(CloudAccess.from_dict(cloud_of(status)))


def host(status: dict[str, Any], name: str) -> dict[str, Any]:
    return next(h for h in status["hosts"] if h["name"] == name)


def endpoints(status: dict[str, Any]) -> list[str]:
    return [host(status, n)["endpoint"] for n in REGION_ONE_HOSTS]


def unique_key(label: str) -> str:
    return f"drills/{label}:{uuid.uuid4().hex[:16]}"


def write_image(path: Path, size: int) -> Path:
    block = os.urandom(1024 * 1024)
    with path.open("wb") as handle:
        left = size
        while left > 0:
            handle.write(block[: min(left, len(block))])
            left -= len(block)
    return path


def records_of_key(session: ks_session.Session, endpoint: str, key: str) -> list[dict[str, Any]]:
    """Every record carrying ``key`` in any status Glance still shows: listed ones (hidden too) and,
    because Glance never lists ``killed`` records, every attempt id looked up one by one."""
    glance = GlanceHost(session, endpoint, timeouts=Timeouts(connect=3, read=30))
    found = {r["id"]: r for r in glance.find_by_property(KEY_PROPERTY, key)}
    for n in range(MAX_ATTEMPT_IDS // 4):
        image_id = attempt_image_id(key, n)
        if image_id not in found:
            record = glance.get_image(image_id)
            if record is not None and record.get("status") not in ("deleted", "pending_delete"):
                found[image_id] = record
    return list(found.values())


def delete_key(session: ks_session.Session, endpoint: str, key: str) -> None:
    glance = GlanceHost(session, endpoint, timeouts=Timeouts(connect=3, read=30))
    for record in records_of_key(session, endpoint, key):
        glance.delete_image(str(record["id"]))


def store_files(status: dict[str, Any]) -> set[str]:
    shared = Path(status["shared_dir"])
    return {p.name for p in shared.iterdir() if p.is_file()} if shared.exists() else set()


def wait_until(pred: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def serves(session: ks_session.Session, endpoint: str) -> bool:
    try:
        return GlanceHost(session, endpoint, timeouts=Timeouts(connect=2, read=5)).probe().status == "serving"
    except HostUnavailable:
        return False


def restore_hosts(lab: Lab, names: Iterable[str] = REGION_ONE_HOSTS) -> None:
    """Every named host holding the role, running, thawed, undrained, without faults; storage shared."""
    status = lab.status()
    if status["storage"] != "shared":
        lab.set_storage("shared")
    for name in names:
        h = host(status, name)
        lab.clear_fault(name)
        if not h["roles"]:
            lab.grant_role(name)
            continue
        if h["drained"]:
            lab.undrain(name)
        if h["frozen"] or not h["running"]:
            lab.restart(name)
