"""The lab's control client: faults and live changes on a running lab, for tests, drills and the CLI.

`LabControl` knows one lab by its state directory and reaches its agent (found by PID file) through the
agent's control endpoint (`/_lab/*`, token in lab.json): Glance process faults (kill, freeze, drain...),
the machine-level host faults, resmgr's faults, instant role grants for fixtures, enrolment, password
rotation, token revocation, storage mode and resmgr timing. Cinder's API is signalled directly.
`lab.api.Lab` adds the lifecycle (up, down, purge, status, env) to it.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
from pathlib import Path
from typing import Any

import requests

from lab import cinder as lab_cinder
from lab import procs
from lab.agent import AGENT_PID_FILE
from lab.host_faults import HOST_FAULTS
from lab.paths import default_state_dir
from lab.settings import REGION_ONE, LabConfig, load_config


class LabError(RuntimeError):
    """A lab operation failed; the message names the cause and where the logs are."""


class LabControl:
    """The control calls of one lab, kept in one state directory (its agent must be running)."""

    def __init__(self, state_dir: str | os.PathLike[str] | None = None) -> None:
        self.state_dir = Path(state_dir).resolve() if state_dir is not None else default_state_dir()

    # ---- config ---------------------------------------------------------------------------------
    @property
    def config(self) -> LabConfig:
        cfg = load_config(self.state_dir)
        if cfg is None:
            raise LabError(f"no lab in {self.state_dir}: run `python -m lab up` first")
        return cfg

    def _logs_hint(self) -> str:
        return f"logs are in {self.state_dir / 'logs'}"

    # ---- the agent ------------------------------------------------------------------------------
    def agent_pid(self) -> int | None:
        try:
            pid = int(json.loads((self.state_dir / AGENT_PID_FILE).read_text())["pid"])
        except (OSError, ValueError, KeyError):
            return None
        return procs.ours(pid, cmd_marker=f"lab.agent {self.state_dir}")

    def agent_alive(self) -> bool:
        return self.agent_pid() is not None

    # ---- control calls --------------------------------------------------------------------------
    def _control(self, method: str, path: str, body: dict[str, Any] | None = None,
                 timeout: float = 180) -> dict[str, Any]:
        cfg = self.config
        r = requests.request(method, f"{cfg.control_url}/{path}", json=body or {}, timeout=timeout,
                             headers={"X-Lab-Control": cfg.control_token})
        if r.status_code != 200:
            try:
                msg = r.json().get("message", r.text)
            except ValueError:
                msg = r.text
            raise LabError(f"lab {path}: {msg} ({self._logs_hint()})")
        return dict(r.json())

    def _host_action(self, name: str, action: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        if not self.agent_alive():
            raise LabError(f"the lab in {self.state_dir} is not running: run `python -m lab up`")
        return self._control("POST", f"hosts/{name}/{action}", body)

    def kill(self, name: str) -> None:
        self._host_action(name, "kill")

    def freeze(self, name: str) -> None:
        self._host_action(name, "freeze")

    def thaw(self, name: str) -> None:
        self._host_action(name, "thaw")

    def restart(self, name: str) -> None:
        self._host_action(name, "restart")

    def drain(self, name: str) -> None:
        self._host_action(name, "drain")

    def undrain(self, name: str) -> None:
        self._host_action(name, "undrain")

    def reconverge(self, name: str) -> None:
        """Converge a host's applied role again now: its Glance config is rendered afresh from the
        region blueprint (a hand edit is overwritten) and its Glance restarts."""
        self._host_action(name, "reconverge")

    def cinder_freeze(self) -> None:
        """SIGSTOP cinder-api (connections are accepted, nothing answers)."""
        self._signal_cinder_api(signal.SIGSTOP)

    def cinder_thaw(self) -> None:
        """SIGCONT a frozen cinder-api."""
        self._signal_cinder_api(signal.SIGCONT)

    def _signal_cinder_api(self, sig: signal.Signals) -> None:
        try:
            self._cinder().signal_api(sig)
        except lab_cinder.CinderError as exc:
            raise LabError(f"{exc}: start it with `python -m lab up`") from exc

    def cinder_inventory(self) -> dict[str, Any]:
        """Every Cinder volume and attachment, as the Cinder API lists them."""
        return lab_cinder.inventory(self.config)

    def _cinder(self) -> lab_cinder.Cinder:
        cfg = self.config
        if cfg.cinder is None:
            raise LabError(f"the lab in {self.state_dir} runs without Cinder: `python -m lab up --cinder`")
        return lab_cinder.Cinder(cfg)

    def host_fault(self, name: str, action: str, *args: str) -> None:
        """A machine-level fault on one host (lab.host_faults.HOST_FAULTS names them and their args)."""
        if action not in HOST_FAULTS:
            raise LabError(f"unknown host fault {action!r}; known: {', '.join(HOST_FAULTS)}")
        names = HOST_FAULTS[action][1]
        if len(args) != len(names):
            raise LabError(f"{action} takes {' '.join(n.upper() for n in names) or 'no arguments'}")
        self._host_action(name, action, dict(zip(names, args, strict=True)))

    def grant_role(self, name: str) -> None:
        """Give a host the role at once (no convergence delay, no HTTP resmgr): for fixtures."""
        self._host_action(name, "grant")

    def revoke_role(self, name: str) -> None:
        self._host_action(name, "revoke")

    def set_fault(self, name: str, *, conflict_seconds: float = 0, flap_failed_seconds: float = 0,
                  fail_message: str = "", deauth_error: bool = False, clear: bool = False) -> None:
        """Arm resmgr faults for one host; ``clear`` removes them (a host in deauth-error recovers).

        ``deauth_error``: the next role removal through resmgr stops in ``deauth-error``, and role writes
        answer 409 RoleUpdateConflict until the fault is cleared.
        """
        self._host_action(name, "fault", {
            "conflict_seconds": conflict_seconds, "flap_failed_seconds": flap_failed_seconds,
            "fail_message": fail_message, "deauth_error": deauth_error, "clear": clear})

    def clear_fault(self, name: str) -> None:
        self.set_fault(name, clear=True)

    def add_host(self, region: str = REGION_ONE) -> str:
        """Enrol one more host in ``region`` while the lab runs (no role yet); returns its name."""
        if not self.agent_alive():
            raise LabError(f"the lab in {self.state_dir} is not running: run `python -m lab up`")
        return str(self._control("POST", "hosts", {"region": region})["added"])

    def remove_host(self, name: str) -> None:
        """Take a host without a role out of the lab (it leaves resmgr and lab.json)."""
        self._host_action(name, "remove")

    def rotate_password(self, password: str | None = None) -> str:
        """Change the admin user's password in Keystone and in lab.json (so `env`/`status` give the
        new one); returns it. Keystone revokes the admin's earlier tokens, as a real cloud does."""
        if not self.agent_alive():
            raise LabError(f"the lab in {self.state_dir} is not running: run `python -m lab up`")
        new = password or secrets.token_urlsafe(18)
        self._control("POST", "rotate-password", {"password": new})
        return new

    def set_storage(self, mode: str) -> None:
        if mode not in ("shared", "local"):
            raise LabError(f"storage mode must be 'shared' or 'local', not {mode!r}")
        self._control("POST", "storage", {"mode": mode})

    def revoke_tokens(self) -> None:
        """Invalidate every token issued so far to the admin and member users."""
        self._control("POST", "revoke-tokens")

    def set_resmgr_options(self, *, converge_seconds: float | None = None,
                           removal_404_seconds: float | None = None,
                           v2_roles_spelling: str | None = None,
                           token_cache_seconds: int | None = None) -> None:
        """Tune the running lab; a new token cache time restarts the serving hosts to apply it."""
        body: dict[str, Any] = {}
        if token_cache_seconds is not None:
            body["token_cache_seconds"] = token_cache_seconds
        if converge_seconds is not None:
            body["converge_seconds"] = converge_seconds
        if removal_404_seconds is not None:
            body["removal_404_seconds"] = removal_404_seconds
        if v2_roles_spelling is not None:
            body["v2_roles_spelling"] = v2_roles_spelling
        self._control("POST", "options", body)
