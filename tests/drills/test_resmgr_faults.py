"""Drill: resmgr faults while three hosts get the role at once, through the role provider.

lab-host-1's role writes are refused with 409 for a while, lab-host-2's role flaps through ``failed``,
lab-host-3 fails for good. The first two converge, the third ends in an error carrying the host's
message, and its failure changes nothing on the other two.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from drillkit import REGION_ONE_HOSTS, cloud_of, host

from imagelib_ha.client.errors import RoleFailed
from imagelib_ha.providers.role import ImageLibraryRoleProvider
from lab.api import Lab

pytestmark = pytest.mark.lab

FAST = {"poll_interval": 0.25, "converge_timeout": 120, "failed_grace": 8, "conflict_timeout": 60}
FAILURE = "mount.nfs: access denied by server while mounting nfs.lab.local:/exports/images"


@pytest.fixture
def bare_lab(lab: Lab) -> Iterator[tuple[Lab, dict[str, Any]]]:
    """The RegionOne hosts without the role and without faults; put back as they were afterwards."""
    held = {n for n in REGION_ONE_HOSTS if host(lab.status(), n)["roles"]}

    def bare() -> None:
        for name in REGION_ONE_HOSTS:
            lab.clear_fault(name)
            if host(lab.status(), name)["roles"]:
                lab.revoke_role(name)

    bare()
    try:
        yield lab, lab.status()
    finally:
        bare()
        for name in held:
            lab.grant_role(name)


def test_conflict_and_flap_converge_while_a_failing_host_stays_isolated(
    bare_lab: tuple[Lab, dict[str, Any]],
) -> None:
    lab, status = bare_lab
    lab.set_fault("lab-host-1", conflict_seconds=3)
    lab.set_fault("lab-host-2", flap_failed_seconds=2)
    lab.set_fault("lab-host-3", fail_message=FAILURE)
    provider = ImageLibraryRoleProvider()  # one object for all three, as in the provider process
    outcome: dict[str, Any] = {}

    def create(name: str, grace: float) -> None:
        h = host(status, name)
        checked = provider.check({}, {"cloud": cloud_of(status), "host": h["hostname"],
                                      "expected_region": status["region"], **FAST, "failed_grace": grace})
        assert checked.failures == []
        try:
            outcome[name] = provider.create(checked.inputs)
        except Exception as exc:  # noqa: BLE001 - judged below
            outcome[name] = exc

    graces = {"lab-host-1": 8, "lab-host-2": 8, "lab-host-3": 1}
    threads = [threading.Thread(target=create, args=(n, graces[n])) for n in REGION_ONE_HOSTS]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    for name in ("lab-host-1", "lab-host-2"):
        created = outcome[name]
        assert not isinstance(created, Exception), f"{name}: {created}"
        assert (created.outs["role_status"], created.outs["glance_role_state"]) == ("ok", "applied")
        assert created.outs["endpoint"] == host(status, name)["url"]
    failed = outcome["lab-host-3"]
    assert isinstance(failed, RoleFailed), failed
    text = str(failed)
    assert FAILURE in text and host(status, "lab-host-3")["hostname"] in text
    assert status["admin"]["password"] not in text

    after = lab.status()
    for name in ("lab-host-1", "lab-host-2"):
        h = host(after, name)
        assert h["roles"] and h["running"] and h["role_status"] == "ok", h
    assert not host(after, "lab-host-3")["running"]
    for name in ("lab-host-1", "lab-host-2"):
        provider.delete(outcome[name].id, outcome[name].outs)
