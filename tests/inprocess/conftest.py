"""Fixtures for the engine-order tests: a fresh toy stack per test."""

from __future__ import annotations

from pathlib import Path

import pytest
from toystack import ToyStack


@pytest.fixture
def toy(tmp_path: Path) -> ToyStack:
    return ToyStack(tmp_path)
