"""Where the lab finds its tools and keeps its state."""

from __future__ import annotations

import glob
import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

# The lab's servers run from their own virtualenv so the OpenStack server stack's pins never meet the
# Pulumi SDK's; `make lab-venv` creates it next to the checkout.
LAB_VENV_ENV = "PCD_LAB_VENV"
STATE_DIR_ENV = "PCD_LAB_STATE_DIR"


class LabSetupError(RuntimeError):
    """Something the lab needs on this machine is missing; the message says how to get it."""


def lab_venv_bin() -> Path:
    """The bin/ directory of the lab virtualenv (override with $PCD_LAB_VENV)."""
    venv = Path(os.environ.get(LAB_VENV_ENV) or REPO_ROOT / ".venv-lab")
    bindir = venv / "bin"
    if not (bindir / "gunicorn").exists() or not (bindir / "keystone-manage").exists():
        raise LabSetupError(
            f"the lab virtualenv {venv} lacks gunicorn/keystone-manage: run `make lab-venv` "
            f"(or point ${LAB_VENV_ENV} at a venv with lab/requirements.txt installed)"
        )
    return bindir


def default_state_dir() -> Path:
    return Path(os.environ.get(STATE_DIR_ENV) or REPO_ROOT / ".lab").resolve()


def postgres_bin_dir() -> Path | None:
    """Newest installed PostgreSQL server's bin dir (Debian layout), or None."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parent.parent.name)
    )
    return Path(found[-1]).parent if found else None
