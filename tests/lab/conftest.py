"""Fixtures for the lab's own tests: the session lab at a known baseline."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from labhelp import REGION_ONE_HOSTS, host, restore_baseline

from lab.api import Lab


@pytest.fixture
def clean_lab(lab: Lab) -> Iterator[Lab]:
    """The session lab at baseline before and after the test."""
    restore_baseline(lab)
    yield lab
    restore_baseline(lab)


@pytest.fixture
def serving_lab(clean_lab: Lab) -> Iterator[Lab]:
    """The session lab with the three RegionOne hosts holding the role (granted at once)."""
    threads = [threading.Thread(target=clean_lab.grant_role, args=(n,)) for n in REGION_ONE_HOSTS]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    st = clean_lab.status()
    assert all(host(st, n)["running"] for n in REGION_ONE_HOSTS), st["hosts"]
    yield clean_lab
