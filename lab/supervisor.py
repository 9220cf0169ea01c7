"""The lab's host supervisor: role convergence, the hosts' Glance processes and their catalog entries.

resmgr (the emulator) asks it to assign or remove the image-library role; it walks PCD's role states
over a configurable time, starts or stops the host's real Glance, and adds or removes the host's
`image-cluster` endpoint in Keystone once the role has converged. Faults act on the same records.
"""

from __future__ import annotations

import contextlib
import copy
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from lab import glance, host_store, procs
from lab.identity import IdentityAdmin
from lab.machines import HostMachines
from lab.settings import REGION_ONE, HostSpec, LabConfig, grow_hosts, load_config, release_port

GLANCE_ROLE = "pf9-glance-role"
StorageMode = Literal["shared", "local"]


class RoleUpdateConflict(Exception):
    """A role write while the host converges, sits in ``deauth-error`` or has a conflict fault: 409."""


@dataclass
class HostRuntime:
    """What the lab knows about one host right now: role state, its Glance process, faults."""

    spec: HostSpec
    roles: list[str] = field(default_factory=list)
    role_state: str | None = None  # per-role state of pf9-glance-role, None when never assigned
    role_status: str = "ok"
    message: str = ""
    busy: bool = False
    settings: dict[str, Any] | None = None
    proc: subprocess.Popen[bytes] | None = None
    frozen: bool = False
    gone_until: float = 0.0  # per-host GETs answer 404 until then (PCD quirk after removal)
    conflict_until: float = 0.0
    flap_failed_seconds: float = 0.0
    fail_message: str = ""
    deauth_error: bool = False  # the next removal through resmgr ends in `deauth-error`
    endpoint_registered: bool = False
    store: host_store.HostStore | None = None  # rendered from the blueprint at the last convergence

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.spec.port}"


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Supervisor:
    """Owns every host's runtime state; all mutations hold its lock."""

    def __init__(self, cfg: LabConfig, *, use_namespace: bool, identity: IdentityAdmin) -> None:
        self.cfg = cfg
        self.use_namespace = use_namespace
        self.identity = identity
        self.lock = threading.RLock()
        self.identity_lock = threading.Lock()
        self.hosts = {h.id: HostRuntime(spec=h) for h in cfg.hosts}
        self.storage: StorageMode = "shared"
        self.converge_seconds = cfg.converge_seconds
        self.removal_404_seconds = cfg.removal_404_seconds
        self.v2_roles_spelling = cfg.v2_roles_spelling
        self.blueprints: dict[str, dict[str, Any]] = {}
        for region in sorted({h.region for h in cfg.hosts} | {REGION_ONE}):
            self.blueprints[region] = {
                "name": region,
                "networkingType": "ovn",
                "imageLibraryStorage": str(cfg.store_path),
                "imageLibrarySharedStorage": True,
            }
        # Hosts as machines reachable over SSH need their own long-lived namespaces.
        self.machines = HostMachines(cfg) if use_namespace else None
        self.public_proc: subprocess.Popen[bytes] | None = None
        self.public_ready = threading.Event()
        self.public_error = ""
        with self.identity_lock:
            self.cluster_service_id = identity.cluster_service_id()
            # Roles do not survive a restart of the lab: drop stale per-host endpoints.
            identity.remove_endpoints(self.cluster_service_id)

    # ---- lookups -------------------------------------------------------------------------------
    def find(self, key: str) -> HostRuntime:
        spec = self.cfg.host(key)
        return self.hosts[spec.id]

    def glance_instance(self, h: HostRuntime) -> glance.GlanceInstance:
        hd = self.cfg.host_dir(h.spec.name)
        source = self.cfg.shared_dir if self.storage == "shared" else hd / "local-store"
        return glance.GlanceInstance(name=h.spec.name, port=h.spec.port, run_dir=hd / "glance",
                                     store_source=source, store=h.store or self.desired_store(h),
                                     region=h.spec.region, hostname=h.spec.hostname)

    def public_instance(self) -> glance.GlanceInstance:
        d = self.cfg.root / "public-glance"
        return glance.GlanceInstance(name="public-glance", port=self.cfg.public_glance_port,
                                     run_dir=d / "glance", store_source=d / "local-store",
                                     store=host_store.FileStore(self.cfg.store_path))

    def desired_store(self, h: HostRuntime) -> host_store.HostStore:
        """The store the host's region blueprint asks for now (PCD's host agent renders it)."""
        with self.lock:
            blueprint = dict(self.blueprints.get(h.spec.region, {}))
        return host_store.from_blueprint(blueprint, self.cfg.store_path)

    def log_file(self, name: str) -> Path:
        if self.machines is not None and name in self.hosts_by_name():
            return self.machines.ns(self.cfg.host(name)).log_file  # /var/log/airctl/ inside the host
        return self.cfg.logs_dir / f"{name}-glance.log"

    def hosts_by_name(self) -> set[str]:
        return {h.spec.name for h in self.hosts.values()}

    def start_machines(self) -> None:
        """Every host's namespace and sshd (a machine runs sshd with or without the role)."""
        if self.machines is None:
            return
        for h in list(self.hosts.values()):
            inst = self.glance_instance(h)
            self.machines.start(h.spec, inst.store_source, inst.conf_dir)

    # ---- public control-plane Glance ----------------------------------------------------------
    def start_public(self) -> None:
        inst = self.public_instance()
        try:
            self.start_machines()
            self.public_proc = glance.start(self.cfg, inst, use_namespace=self.use_namespace,
                                            log_file=self.log_file(inst.name))
            glance.wait_ready(inst, self.public_proc, self.log_file(inst.name))
        except Exception as exc:  # noqa: BLE001 - reported through status; `up` prints it
            self.public_error = str(exc)
        self.public_ready.set()

    # ---- enrolment (a host joins or leaves the region while the lab runs) -----------------------
    def add_host(self, region: str) -> HostSpec:
        """Enrol one more host in ``region``: it shows in resmgr at once, without a role."""
        with self.lock:
            self.cfg.hosts = grow_hosts(self.cfg, region)
            spec = next(h for h in self.cfg.hosts if h.id not in self.hosts)
            self.hosts[spec.id] = HostRuntime(spec=spec)
            self.cfg.save()
        if self.machines is not None:
            inst = self.glance_instance(self.hosts[spec.id])
            self.machines.start(spec, inst.store_source, inst.conf_dir)
        return spec

    def remove_host(self, key: str) -> None:
        """Take a host out of the region; refused while it holds a role or runs Glance."""
        with self.lock:
            h = self.find(key)
            if h.roles or h.busy or h.proc is not None:
                raise ValueError(f"{h.spec.name} holds a role or runs Glance: revoke its role first")
            if self.machines is not None:
                self.machines.stop(h.spec)
            del self.hosts[h.spec.id]
            self.cfg.hosts = [s for s in self.cfg.hosts if s.id != h.spec.id]
            self.cfg.save()
            if self.machines is not None:
                self.machines.publish()
            release_port(self.cfg, h.spec.port)

    # ---- host Glance processes ----------------------------------------------------------------
    def _start_glance(self, h: HostRuntime, *, render: bool = True) -> None:
        inst = self.glance_instance(h)
        enter: list[str] = []
        if self.machines is not None:
            self.machines.start(h.spec, inst.store_source, inst.conf_dir, store=inst.store, converge=render)
            ns = self.machines.ns(h.spec)
            if isinstance(inst.store, host_store.CinderStore):
                # Shares glance_store mounted for the Glance that ran before: its mount-count file is
                # wiped at start, so the mounts go too (the host's namespace outlives its Glance).
                ns.unmount_under(inst.cinder_mount_point_base)
            enter = ns.nsenter(wd=inst.run_dir)
        h.proc = glance.start(self.cfg, inst, use_namespace=self.use_namespace,
                              log_file=self.log_file(h.spec.name), enter_host=enter, render=render)
        if self.machines is not None:
            self.machines.ns(h.spec).glance_started(h.proc.pid, inst.conf_file)
        h.frozen = False
        glance.wait_ready(inst, h.proc, self.log_file(h.spec.name))

    def _stop_glance(self, h: HostRuntime) -> None:
        if h.proc is not None:
            procs.stop_group(h.proc.pid)
            with contextlib.suppress(subprocess.TimeoutExpired):
                h.proc.wait(timeout=5)
        # os-brick's privsep daemon (Cinder store) re-parents to PID 1: found by the host's config dir.
        procs.stop_matching("privsep-helper", str(self.glance_instance(h).conf_dir))
        h.proc = None
        h.frozen = False

    def reload_cinder(self) -> None:
        """Take the Cinder settings `up --cinder` saved while the agent ran (the agent writes lab.json
        too, and must not drop them)."""
        saved = load_config(self.cfg.root)
        with self.lock:
            if saved is not None:
                self.cfg.cinder = saved.cinder

    def _render_store(self, h: HostRuntime) -> None:
        """Converging the role renders the host's store from its region's blueprint, as PCD's host
        agent does."""
        self.reload_cinder()
        with self.lock:
            h.store = self.desired_store(h)

    def stop_service(self, h: HostRuntime) -> None:
        """`systemctl stop`: the service goes, the role and its endpoint stay."""
        self._stop_glance(h)

    def start_service(self, h: HostRuntime) -> None:
        """`systemctl start`: on the config as it is (only a converge renders it again)."""
        self._start_glance(h, render=False)

    def running(self, h: HostRuntime) -> bool:
        return h.proc is not None and h.proc.poll() is None

    def _add_endpoint(self, h: HostRuntime) -> None:
        with self.identity_lock:
            self.identity.ensure_endpoints(self.cluster_service_id, h.url, h.spec.region)
        h.endpoint_registered = True

    def _remove_endpoint(self, h: HostRuntime) -> None:
        with self.identity_lock:
            self.identity.remove_endpoints(self.cluster_service_id, h.url)
        h.endpoint_registered = False

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

    # ---- faults ---------------------------------------------------------------------------------
    def _require_proc(self, h: HostRuntime) -> subprocess.Popen[bytes]:
        if h.proc is None:
            raise ValueError(f"{h.spec.name} runs no Glance (it does not hold the image-library role)")
        return h.proc

    def kill(self, key: str) -> None:
        h = self.find(key)
        proc = self._require_proc(h)
        procs.signal_group(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
        h.frozen = False

    def freeze(self, key: str) -> None:
        h = self.find(key)
        procs.signal_group(self._require_proc(h).pid, signal.SIGSTOP)
        h.frozen = True

    def thaw(self, key: str) -> None:
        h = self.find(key)
        procs.signal_group(self._require_proc(h).pid, signal.SIGCONT)
        h.frozen = False

    def restart(self, key: str) -> None:
        h = self.find(key)
        if not h.roles:
            raise ValueError(f"{h.spec.name} does not hold the image-library role: nothing to restart")
        self._stop_glance(h)
        self._start_glance(h)

    def drain(self, key: str, drained: bool) -> None:
        h = self.find(key)
        disable = self.glance_instance(h).disable_file
        disable.parent.mkdir(parents=True, exist_ok=True)
        if drained:
            disable.write_text("drained by the lab\n")
        else:
            disable.unlink(missing_ok=True)

    def set_storage(self, mode: StorageMode) -> None:
        """Rebind every serving host's store: the shared dir, or each host's own dir."""
        self.storage = mode
        serving = [h for h in self.hosts.values() if h.proc is not None]
        for h in serving:
            self._stop_glance(h)
            if self.machines is not None:
                self.machines.ns(h.spec).mount_store(self.glance_instance(h).store_source)
        threads = [threading.Thread(target=self._start_glance, args=(h,)) for h in serving]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def set_token_cache(self, seconds: int) -> None:
        """Change Glance's token cache time (kept for this state dir); serving hosts restart to apply."""
        if seconds == self.cfg.token_cache_seconds:
            return
        self.cfg.token_cache_seconds = seconds
        self.cfg.save()
        self.set_storage(self.storage)

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

    def rotate_admin_password(self, password: str) -> None:
        """Give the admin user a new password in Keystone and keep it in lab.json."""
        with self.identity_lock:
            self.identity.set_password(self.cfg.admin.username, password)
        # Keystone revokes the user's tokens on a password change, by a revocation event with
        # whole-second precision (Fernet issue times): a token issued in the same second would count
        # as revoked. Return once a fresh login gets a valid token.
        time.sleep(1.05)
        with self.lock:
            self.cfg.admin = self.cfg.admin.model_copy(update={"password": password})
            self.cfg.save()

    def revoke_tokens(self) -> None:
        with self.identity_lock:
            self.identity.revoke_user_tokens([self.cfg.admin.username, self.cfg.member.username])

    def shutdown(self) -> None:
        for h in self.hosts.values():
            self._stop_glance(h)
        if self.machines is not None:
            self.machines.stop_all()
        if self.public_proc is not None:
            procs.stop_group(self.public_proc.pid)

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
