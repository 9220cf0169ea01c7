"""Shared fixtures. `lab`: one embedded lab per test session (see docs/contracts.md)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagelib_ha.client.log_cursors import STATE_DIR_ENV as CLIENT_STATE_DIR_ENV
from lab.api import Lab
from lab.paths import STATE_DIR_ENV


@pytest.fixture(scope="session", autouse=True)
def _own_log_cursors(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The host checks' log cursors of this session, not the operator's (~/.local/state)."""
    mp = pytest.MonkeyPatch()
    mp.setenv(CLIENT_STATE_DIR_ENV, str(tmp_path_factory.mktemp("client-state")))
    yield
    mp.undo()


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    """A running lab: the one named by $PCD_LAB_STATE_DIR when it is already up (reused as it is,
    left running), otherwise a fresh one in a temp state dir, stopped and removed after the session.

    A fresh lab's Glances trust a validated token for only 2 s, so `revoke_tokens()` bites within
    seconds in drills (keystonemiddleware's default is 300 s).
    """
    named = os.environ.get(STATE_DIR_ENV)
    if named:
        existing = Lab(named)
        if existing.agent_alive():
            yield existing
            return
    state_dir = Path(tempfile.mkdtemp(prefix="pcd-lab-test-"))
    fresh = Lab(state_dir)
    try:
        fresh.up(hosts=3, token_cache_seconds=2)  # short, so the token-revocation drill bites
        yield fresh
    finally:
        fresh.purge()
