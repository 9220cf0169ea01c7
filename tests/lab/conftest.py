"""Fixtures for the lab's own tests: the session lab at a known baseline."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from labhelp import REGION_ONE_HOSTS, host, reset_faults, restore_baseline

from lab.api import Lab


@pytest.fixture
def clean_lab(lab: Lab) -> Iterator[Lab]:
    """The session lab at baseline (no roles, shared storage, no faults) before and after the test."""
    restore_baseline(lab)
    yield lab
    restore_baseline(lab)


@pytest.fixture(scope="module")
def _roles_undone_after_module(lab: Lab) -> Iterator[None]:
    # Granting three roles starts three Glances (seconds each): keep them across a module's tests,
    # and undo them when the module ends.
    yield
    restore_baseline(lab)


@pytest.fixture
def serving_lab(lab: Lab, _roles_undone_after_module: None) -> Iterator[Lab]:
    """The session lab with the three RegionOne hosts holding the role and serving, no faults."""
    reset_faults(lab)
    st = lab.status()
    missing = [n for n in REGION_ONE_HOSTS if host(st, n)["role_state"] != "applied"]
    threads = [threading.Thread(target=lab.grant_role, args=(n,)) for n in missing]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    st = lab.status()
    assert all(host(st, n)["running"] for n in REGION_ONE_HOSTS), st["hosts"]
    yield lab
    reset_faults(lab)
