"""Drill: resmgr faults while three hosts get the role at once, through the roles provider.

lab-host-1's role writes are refused with 409 for a while, lab-host-2's role flaps through ``failed``,
lab-host-3 fails for good. One create of the set converges the first two, ends in one error naming the
third with the host's message, withdraws the third's assignment, and changes nothing on the other two.
The engine records no state for a failed create: the next create, the fault fixed, finds the first two
assigned, knows them as this stack's (the baseline saw them without the role), and its delete removes
all three.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from cloud_config import configured
from drillkit import REGION_ONE_HOSTS, cloud_of, host, wait_until
from labkit import wait_resmgr_knows

from imagelib_ha.client.errors import PcdError
from imagelib_ha.providers.baseline import ImageLibraryRoleBaselineProvider
from imagelib_ha.providers.roles import ImageLibraryRolesProvider
from lab.api import Lab

pytestmark = pytest.mark.lab

FAST = {"poll_interval": 0.25, "converge_timeout": 120, "failed_grace": 6, "conflict_timeout": 60}
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
    wait_resmgr_knows(lab.status())
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
    baseline_provider = configured(ImageLibraryRoleBaselineProvider(), cloud_of(status))
    roles = configured(ImageLibraryRolesProvider(), cloud_of(status))
    refs = [host(status, n)["hostname"] for n in REGION_ONE_HOSTS]
    checked_baseline = baseline_provider.check({}, {"region": status["region"], "hosts": refs})
    assert checked_baseline.failures == []
    baseline = baseline_provider.create(checked_baseline.inputs).outs
    news = {"hosts": [{"host": r, "region": status["region"], "mount_path": None} for r in refs],
            "baseline": baseline["entries"], "expected_region": status["region"], **FAST}
    checked = roles.check({}, news)
    assert checked.failures == []

    with pytest.raises(PcdError) as caught:
        roles.create(checked.inputs)
    text = str(caught.value)
    assert "1 of 3 hosts" in text
    assert FAILURE in text and host(status, "lab-host-3")["hostname"] in text
    assert host(status, "lab-host-1")["hostname"] not in text
    assert host(status, "lab-host-2")["hostname"] not in text
    assert status["admin"]["password"] not in text

    after = lab.status()
    for name in ("lab-host-1", "lab-host-2"):
        h = host(after, name)
        assert h["roles"] and h["running"] and h["role_status"] == "ok", h
    assert not host(after, "lab-host-3")["running"]
    # The assignment was withdrawn (one DELETE, not waited for: the removal converges on its own).
    wait_until(lambda: not host(lab.status(), "lab-host-3")["roles"], timeout=60,
               what="lab-host-3's withdrawn role to be removed")

    # The engine retries after the fault is fixed: the two converged hosts are this stack's.
    lab.clear_fault("lab-host-3")
    wait_resmgr_knows(status)  # lab-host-3's per-host GET answers 404 for a while after the removal
    outs = roles.create(checked.inputs).outs
    assert [m["owned"] for m in outs["members"]] == [True, True, True]
    assert [m["endpoint"] for m in outs["members"]] == [host(status, n)["url"] for n in REGION_ONE_HOSTS]
    roles.delete("r", outs)
    assert not any(host(lab.status(), n)["roles"] for n in REGION_ONE_HOSTS)
