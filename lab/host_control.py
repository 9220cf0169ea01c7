"""The lab's hosts as processes: each host's runtime record, its Glance, its catalog entry, its faults.

`HostControl` owns every host's runtime state: it enrols and removes hosts, starts the hosts' machines
(namespaces and sshd) and the public control-plane Glance, starts and stops each host's real Glance on
the store its region's blueprint asks for, adds and removes the host's `image-cluster` endpoint in
Keystone, and applies the process-level faults (kill, freeze, thaw, restart, drain, storage mode,
token cache, password rotation). The role state machine that drives it is lab/supervisor.py.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from lab import glance, host_store, procs
from lab.identity import IdentityAdmin
from lab.machines import HostMachines
from lab.settings import REGION_ONE, HostSpec, LabConfig, grow_hosts, load_config, release_port

StorageMode = Literal["shared", "local"]


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


class HostControl:
    """Owns every host's runtime state; all mutations hold its lock."""

    def __init__(self, cfg: LabConfig, *, use_namespace: bool, identity: IdentityAdmin) -> None:
        self.cfg = cfg
        self.use_namespace = use_namespace
        self.identity = identity
        self.lock = threading.RLock()
        self.identity_lock = threading.Lock()
        self.hosts = {h.id: HostRuntime(spec=h) for h in cfg.hosts}
        self.storage: StorageMode = "shared"
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
