"""Fixtures for the program tests: the lab stack's environment variables, set for each test."""

from __future__ import annotations

import pytest
from program_configs import LAB_ENV


@pytest.fixture
def lab_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for key, value in LAB_ENV.items():
        monkeypatch.setenv(key, value)
    return LAB_ENV
