"""Fixtures of the fault drills: the session lab with the three RegionOne hosts serving.

Every drill starts and ends with the hosts holding the role, running, thawed, undrained and without
faults (restored even when the drill fails); the module returns the roles it granted at its end.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from drillkit import REGION_ONE_HOSTS, host, restore_hosts, serves, session_of, wait_until

from lab.api import Lab


@pytest.fixture(scope="module")
def _role_hosts(lab: Lab) -> Iterator[Lab]:
    before = {n: bool(host(lab.status(), n)["roles"]) for n in REGION_ONE_HOSTS}
    threads = [threading.Thread(target=lab.grant_role, args=(n,)) for n, held in before.items() if not held]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    yield lab
    restore_hosts(lab)
    for name, held in before.items():
        if not held:
            lab.revoke_role(name)


@pytest.fixture
def drill_lab(_role_hosts: Lab) -> Iterator[tuple[Lab, dict[str, Any]]]:
    """The lab and its status, three RegionOne hosts serving; restored after the drill, pass or fail."""
    lab = _role_hosts
    restore_hosts(lab)
    status = lab.status()
    session = session_of(status)
    for name in REGION_ONE_HOSTS:
        endpoint: str = host(status, name)["endpoint"]

        def serving(e: str = endpoint) -> bool:
            return serves(session, e)

        wait_until(serving, timeout=60, what=f"{name} to serve")
    try:
        yield lab, status
    finally:
        restore_hosts(lab)
