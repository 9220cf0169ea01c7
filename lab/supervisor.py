"""The lab's host supervisor: role convergence on top of the hosts' Glance processes and catalog entries.

resmgr (the emulator) asks it to assign or remove the image-library role; it walks PCD's role states
over a configurable time, starts or stops the host's real Glance, and adds or removes the host's
`image-cluster` endpoint in Keystone once the role has converged. Faults act on the same records:
resmgr's faults (conflicts, failures, deauth-error) here, the process faults in lab/host_control.py.
It also renders the hosts as resmgr shows them (`record`) and the lab agent's `status`.
"""

from __future__ import annotations

import copy
import threading
import time
from datetime import UTC, datetime
from typing import Any

from lab import host_store
from lab.host_control import HostControl, HostRuntime
from lab.identity import IdentityAdmin
from lab.settings import LabConfig

GLANCE_ROLE = "pf9-glance-role"


class RoleUpdateConflict(Exception):
    """A role write while the host converges, sits in ``deauth-error`` or has a conflict fault: 409."""


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Supervisor(HostControl):
    """Adds the role state machine, resmgr's faults and the views to the hosts' process control."""

    def __init__(self, cfg: LabConfig, *, use_namespace: bool, identity: IdentityAdmin) -> None:
        super().__init__(cfg, use_namespace=use_namespace, identity=identity)
        self.converge_seconds = cfg.converge_seconds
        self.removal_404_seconds = cfg.removal_404_seconds
        self.v2_roles_spelling = cfg.v2_roles_spelling

    # ---- role convergence ---------------------------------------------------------------------
    def _check_writable(self, h: HostRuntime) -> None:
        if h.busy:
            raise RoleUpdateConflict(f"host {h.spec.id} is converging ({h.role_state}); retry later")
        if time.monotonic() < h.conflict_until:
            raise RoleUpdateConflict(f"host {h.spec.id} has a role update in progress; retry later")
        if h.role_state == "deauth-error":
            raise RoleUpdateConflict(
                f"host {h.spec.id} failed to remove its role (deauth-error) and awaits recovery; retry later"
            )

    def _wait_settled(self, key: str, timeout: float = 120) -> None:
        """Fixtures' instant changes wait for a convergence under way instead of racing it."""
        deadline = time.monotonic() + timeout
        while self.find(key).busy and time.monotonic() < deadline:
            time.sleep(0.1)

    def assign(self, key: str, *, settings: dict[str, Any] | None = None, instant: bool = False,
               reconverge: bool = False) -> None:
        """Start applying the image-library role (returns at once unless instant)."""
        if instant:
            self._wait_settled(key)
        with self.lock:
            h = self.find(key)
            if reconverge and GLANCE_ROLE not in h.roles:
                raise ValueError(f"{h.spec.name} does not hold the image-library role: nothing to reconverge")
            if not instant:
                self._check_writable(h)
            # An applied role converges again when asked to (`reconverge`) or when the blueprint
            # now asks for another store than the one the host runs; otherwise a PUT changes nothing.
            if (GLANCE_ROLE in h.roles and h.role_state == "applied" and not reconverge
                    and h.store == self.desired_store(h)):
                return
            h.busy = True
            h.roles = [GLANCE_ROLE]
            h.settings = settings or (h.settings if reconverge else None) or self._default_settings(h)
            h.role_status = "converging"
            h.role_state = "start-apply"
            h.message = ""
            h.gone_until = 0.0
        if instant:
            self._apply(h, 0.0)
        else:
            threading.Thread(target=self._apply, args=(h, self.converge_seconds / 4), daemon=True).start()

    def _default_settings(self, h: HostRuntime) -> dict[str, Any]:
        return {
            "endpoint_address": h.url,
            "filesystem_store_datadir": str(self.cfg.store_path),
            "update_public_glance_endpoint": "false",
            "region": h.spec.region,
        }

    def _set(self, h: HostRuntime, **changes: Any) -> None:
        with self.lock:
            for k, v in changes.items():
                setattr(h, k, v)

    def _apply(self, h: HostRuntime, step: float) -> None:
        try:
            time.sleep(step)
            self._set(h, role_state="pre-auth")
            time.sleep(step)
            if h.fail_message:
                self._set(h, role_state="auth-error", role_status="failed", message=h.fail_message,
                          busy=False)
                return
            self._set(h, role_state="auth-converging")
            started = time.monotonic()
            self._stop_glance(h)  # left over from an earlier failed apply: it would hold the port
            self._render_store(h)
            self._start_glance(h)
            if h.flap_failed_seconds > 0:
                # Normal onboarding can flap through `failed` before it settles.
                self._set(h, role_status="failed", message="pf9-glance-role: service check failed, retrying")
                time.sleep(h.flap_failed_seconds)
                self._set(h, role_status="converging", message="")
            time.sleep(max(0.0, step - (time.monotonic() - started)))
            self._set(h, role_state="auth-converged")
            self._add_endpoint(h)
            time.sleep(step)
            self._set(h, role_state="applied", role_status="ok", busy=False)
        except Exception as exc:  # noqa: BLE001 - any failure is the role's failure, shown in status
            self._set(h, role_state="auth-error", role_status="failed", busy=False,
                      message=f"pf9-glance-role failed to apply: {exc}")

    def remove(self, key: str, *, instant: bool = False) -> None:
        """Start removing the role (returns at once unless instant)."""
        if instant:
            self._wait_settled(key)
        with self.lock:
            h = self.find(key)
            if not instant:
                self._check_writable(h)
            if not h.roles:
                return
            h.busy = True
            h.role_status = "converging"
            h.role_state = "start-deauth"
            h.message = ""
        if instant:
            self._deauth(h, 0.0)  # fixtures' removals never take the deauth-error fault
        else:
            threading.Thread(target=self._deauth, args=(h, self.converge_seconds / 2, h.deauth_error),
                             daemon=True).start()

    def _deauth(self, h: HostRuntime, step: float, stuck: bool = False) -> None:
        try:
            self._remove_endpoint(h)
            self._stop_glance(h)
            time.sleep(step)
            if stuck:
                # The service is gone but the host agent never confirms the removal: PCD keeps the
                # role listed in `deauth-error` and refuses role writes until the host recovers.
                self._set(h, role_state="deauth-error", role_status="failed", busy=False,
                          message="pf9-glance-role failed to remove: host agent did not confirm (lab fault)")
                return
            self._finish_removal(h)
        except Exception as exc:  # noqa: BLE001 - any failure is the role's failure, shown in status
            self._set(h, role_state="deauth-error", role_status="failed", busy=False,
                      message=f"pf9-glance-role failed to remove: {exc}")

    def _finish_removal(self, h: HostRuntime) -> None:
        self._set(h, role_state=None, roles=[], settings=None, role_status="ok", busy=False, message="",
                  gone_until=time.monotonic() + self.removal_404_seconds, store=None)

    # ---- resmgr's faults on role writes and convergence -----------------------------------------
    def set_fault(self, key: str, *, conflict_seconds: float = 0, flap_failed_seconds: float = 0,
                  fail_message: str = "", deauth_error: bool = False, clear: bool = False) -> None:
        recovered: HostRuntime | None = None
        with self.lock:
            h = self.find(key)
            if clear:
                h.conflict_until, h.flap_failed_seconds, h.fail_message = 0.0, 0.0, ""
                h.deauth_error = False
                if h.role_state == "auth-error":
                    h.role_status, h.message = "ok", ""
                if h.role_state == "deauth-error":
                    recovered = h  # the host recovers: the removal it was stuck in completes
            elif deauth_error:
                h.deauth_error = True
            if conflict_seconds:
                h.conflict_until = time.monotonic() + conflict_seconds
            if flap_failed_seconds:
                h.flap_failed_seconds = flap_failed_seconds
            if fail_message:
                h.fail_message = fail_message
        if recovered is not None:
            # A removal that failed part way may have left the endpoint or the service behind.
            if recovered.endpoint_registered:
                self._remove_endpoint(recovered)
            self._stop_glance(recovered)
            self._finish_removal(recovered)

    # ---- views ----------------------------------------------------------------------------------
    def record(self, h: HostRuntime, *, version: int, role_settings: bool = False) -> dict[str, Any]:
        """A host as resmgr v1/v2 shows it."""
        with self.lock:
            roles = list(h.roles)
            if version == 2:
                roles = ["image-library" if self.v2_roles_spelling == "image-library" else r for r in roles]
            rec: dict[str, Any] = {
                "id": h.spec.id,
                "info": {
                    "hostname": h.spec.hostname, "os_family": "Linux", "arch": "x86_64",
                    "os_info": "Ubuntu 22.04 (lab)", "responding": True, "last_response_time": _now_iso(),
                },
                "roles": roles,
                "role_status": h.role_status,
                "roles_status_details": {GLANCE_ROLE: h.role_state} if h.role_state else {},
                "hypervisor_info": {"hypervisor_type": "kvm"},
                "extensions": {
                    "ip_address": {"status": "ok", "data": ["127.0.0.1"]},
                    "region": {"status": "ok", "data": h.spec.region},
                },
                "region": h.spec.region,
                "message": h.message,
            }
            if version == 2:
                rec["hostconfig_id"] = f"hostconfig-{h.spec.region.lower()}"
                if role_settings:
                    rec["role_settings"] = {GLANCE_ROLE: copy.deepcopy(h.settings)} if h.settings else {}
            return rec

    def status(self) -> dict[str, Any]:
        cfg = self.cfg
        hosts = []
        with self.lock:
            for h in self.hosts.values():
                inst = self.glance_instance(h)
                hosts.append({
                    "name": h.spec.name, "id": h.spec.id, "hostname": h.spec.hostname,
                    "region": h.spec.region, "port": h.spec.port,
                    "endpoint": h.url if h.endpoint_registered else None,
                    "url": h.url,
                    "pid": h.proc.pid if h.proc is not None else None,
                    "running": self.running(h), "frozen": h.frozen,
                    "drained": inst.disable_file.exists(), "roles": list(h.roles),
                    "role_status": h.role_status, "role_state": h.role_state, "message": h.message,
                    "local_dir": str(cfg.host_dir(h.spec.name) / "local-store"),
                    "store": host_store.describe(h.store) if h.store is not None else None,
                    "glance_conf": str(inst.conf_file), "log": str(self.log_file(h.spec.name)),
                    **(self.machines.status(h.spec) if self.machines is not None else {"ssh_port": None}),
                })
        return {
            "storage": self.storage,
            "namespaces": self.use_namespace,
            # Without namespaces there is no common mount point: shared hosts use the shared dir itself.
            "store_path": str(cfg.store_path if self.use_namespace else cfg.shared_dir),
            "shared_dir": str(cfg.shared_dir),
            "public_glance_pid": self.public_proc.pid if self.public_proc else None,
            "public_glance_ready": self.public_ready.is_set() and not self.public_error,
            "public_glance_error": self.public_error,
            "converge_seconds": self.converge_seconds,
            "removal_404_seconds": self.removal_404_seconds,
            "v2_roles_spelling": self.v2_roles_spelling,
            "token_cache_seconds": self.cfg.token_cache_seconds,
            "hosts": hosts,
        }
