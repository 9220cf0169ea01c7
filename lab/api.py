"""The lab's Python API (what tests, drills and benchmarks use); the CLI wraps it.

`Lab` is the lab's lifecycle: setup, up (backends, the agent, the catalog), down, purge, status, and
the environment and clouds.yaml clients use. Its fault and control calls (kill, freeze, set_fault,
rotate_password...) come from `lab.control.LabControl`, which it extends.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

from lab import cinder as lab_cinder
from lab import glance, procs, sshd
from lab.agent import component_pids
from lab.control import LabControl, LabError
from lab.identity import IdentityAdmin, bootstrap_operator
from lab.keystone import Keystone, wait_ok
from lab.machines import HostMachines
from lab.paths import REPO_ROOT, lab_venv_bin
from lab.postgres import Postgres, ensure_server_installed
from lab.settings import (
    REGION_ONE,
    REGION_TWO,
    LabConfig,
    enable_cinder,
    load_config,
    load_or_create,
    release_ports,
)
from lab.sshd import ensure_openssh_installed


class Lab(LabControl):
    """One embedded PCD-like region on 127.0.0.1, kept in one state directory."""

    def __init__(self, state_dir: str | os.PathLike[str] | None = None) -> None:
        super().__init__(state_dir)
        self._timings: dict[str, float] = {}
        self._last_mark = 0.0

    # ---- lifecycle ------------------------------------------------------------------------------
    def setup(self, *, cinder: bool = False) -> None:
        """Check/install what the lab needs on this machine (PostgreSQL and OpenSSH servers, the lab
        venv); with ``cinder``, also Debian's rabbitmq-server and qemu-utils and the venv's Cinder."""
        lab_venv_bin()
        ensure_server_installed()
        ensure_openssh_installed()
        if cinder:
            lab_cinder.ensure_installed()

    def up(
        self, hosts: int | None = None, *, region_two_hosts: int | None = None,
        token_cache_seconds: int | None = None, converge_seconds: float | None = None,
        removal_404_seconds: float | None = None, v2_roles_spelling: str | None = None,
        cinder: bool = False,
    ) -> dict[str, Any]:
        """Start (or finish starting) the lab; returns its status.

        ``cinder``: also run Cinder (api, scheduler, volume over RabbitMQ; see lab/cinder.py). Once a
        state dir has Cinder, every later `up` starts it too. Asked of a running lab without Cinder,
        Cinder is added to it while it runs; hosts then pick a Cinder store up at their next
        convergence (when the blueprint names a volume type).
        """
        saved = load_config(self.state_dir)
        self.setup(cinder=cinder or (saved is not None and saved.cinder is not None))
        if self.agent_alive():
            # Already running: apply what can change live, keep the rest.
            self.set_resmgr_options(
                converge_seconds=converge_seconds, removal_404_seconds=removal_404_seconds,
                v2_roles_spelling=v2_roles_spelling, token_cache_seconds=token_cache_seconds,
            )
            if cinder or self.config.cinder is not None:
                self._add_cinder()
            return self.status()
        cfg = load_or_create(self.state_dir, hosts=hosts, region_two_hosts=region_two_hosts)
        if cinder:
            enable_cinder(cfg)
        changes: dict[str, Any] = {
            "token_cache_seconds": token_cache_seconds, "converge_seconds": converge_seconds,
            "removal_404_seconds": removal_404_seconds, "v2_roles_spelling": v2_roles_spelling,
        }
        for key, value in changes.items():
            if value is not None:
                setattr(cfg, key, value)
        cfg = LabConfig.model_validate(cfg.model_dump())  # re-check the values just set
        cfg.save()
        self._timings = {}
        t0 = time.monotonic()
        try:
            startup = self._start_backends(cfg)
            agent = self._spawn_agent(cfg)
            # The agent needs only the operator user; the rest of the catalog is made meanwhile.
            catalog_marker = cfg.root / "keystone" / "catalog-done"
            if not catalog_marker.exists():
                IdentityAdmin(cfg).setup_catalog()
                catalog_marker.touch()
                self._mark("catalog (agent starting meanwhile)")
            self._wait_agent(cfg, agent)
            self._mark("agent + public Glance")
            if startup is not None:
                startup.wait_ready()
                self._mark("cinder services ready")
        except Exception as exc:
            raise LabError(f"lab up failed: {exc}; {self._logs_hint()}") from exc
        self._timings["total"] = round(time.monotonic() - t0, 2)
        (cfg.logs_dir / "up-timings.json").write_text(json.dumps(self._timings, indent=2))
        return {**self.status(), "up_timings": self._timings}

    def _mark(self, phase: str) -> None:
        """Record how long a phase of `up` took (reported by `up`; benchmarks read logs/up-timings.json)."""
        now = time.monotonic()
        self._timings[phase] = round(now - self._last_mark, 2)
        self._last_mark = now

    def _start_backends(self, cfg: LabConfig) -> lab_cinder.CinderStartup | None:
        """PostgreSQL, Keystone, the databases; Cinder's broker and services when the lab has Cinder
        (returned, to wait for once the agent runs)."""
        cfg.logs_dir.mkdir(parents=True, exist_ok=True)
        self._last_mark = time.monotonic()
        pg = Postgres(cfg)
        pg.start()
        pg.create_databases(cinder=cfg.cinder is not None)
        self._mark("postgres")
        startup = lab_cinder.CinderStartup(cfg) if cfg.cinder is not None else None
        if startup is not None:
            startup.begin()  # RabbitMQ boots and Cinder's schema syncs while Keystone starts
            self._mark("cinder export + rabbitmq/db sync started")
        ks = Keystone(cfg)
        ks.write_config()
        glance_marker = cfg.root / "glance-manage" / "synced"
        gsync = None if glance_marker.exists() else glance.db_sync(cfg)
        if not ks.bootstrapped():
            manage_log = cfg.logs_dir / "keystone-manage.log"
            ks.write_keys()
            wait_ok(ks.db_sync(), "keystone-manage db_sync", manage_log)
            wait_ok(ks.bootstrap(), "keystone-manage bootstrap", manage_log)
            ks.mark_bootstrapped()
            self._mark("keystone db_sync + keys + bootstrap")
        ks.start()
        if gsync is not None:
            glance.wait_db_sync(cfg, gsync)
            glance_marker.touch()
            self._mark("glance db_sync (rest)")
        ks.wait_ready()
        self._mark("keystone start")
        operator_marker = cfg.root / "keystone" / "operator-done"
        if not operator_marker.exists():
            bootstrap_operator(cfg)
            operator_marker.touch()
            self._mark("lab operator user")
        if startup is not None:
            startup.after_keystone()
            self._mark("cinder catalog + db sync + rabbitmq")
        return startup

    def _add_cinder(self) -> None:
        """Bring Cinder up beside a running lab (idempotent: starts only what is not running)."""
        cfg = self.config
        enable_cinder(cfg)
        # The agent saves lab.json too: it must hold the Cinder settings before it next writes.
        self._control("POST", "reload-cinder")
        try:
            Postgres(cfg).create_databases(cinder=True)
            lab_cinder.CinderStartup(cfg).run_all()
        except Exception as exc:
            raise LabError(f"adding Cinder to the running lab failed: {exc}; {self._logs_hint()}") from exc

    def _spawn_agent(self, cfg: LabConfig) -> subprocess.Popen[bytes]:
        self._stop_orphan_glances(cfg)  # they would hold the hosts' ports
        return procs.spawn([sys.executable, "-m", "lab.agent", str(cfg.root)], cwd=REPO_ROOT,
                           env=dict(os.environ), log_path=cfg.logs_dir / "agent.log")

    def _wait_agent(self, cfg: LabConfig, proc: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise LabError(
                    f"the lab agent exited (code {proc.returncode}); see {cfg.logs_dir / 'agent.log'}"
                )
            with contextlib.suppress(requests.RequestException):
                st = self._control("GET", "status", timeout=2)
                if st.get("public_glance_error"):
                    raise LabError(f"the public Glance did not start: {st['public_glance_error']}")
                if st.get("public_glance_ready"):
                    return
            time.sleep(0.1)
        raise LabError(f"the lab agent did not become ready; see {cfg.logs_dir / 'agent.log'}")

    def down(self) -> None:
        """Stop every process of this lab, by PID, and leave nothing listening."""
        cfg = load_config(self.state_dir)
        if cfg is None:
            return
        pid = self.agent_pid()
        if pid is not None:
            with contextlib.suppress(requests.RequestException, LabError):
                self._control("POST", "shutdown", timeout=5)
            deadline = time.monotonic() + 30
            while procs.alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            procs.stop_group(pid)
        self._stop_orphan_glances(cfg)
        HostMachines(cfg).stop_all()  # holders and sshds a dead agent left behind, by pid file
        lab_cinder.stop_all(cfg)
        Keystone(cfg).stop()
        Postgres(cfg).stop()

    def purge(self) -> None:
        """down, then delete this lab's state (and its PostgreSQL dir) and free its ports' claims."""
        cfg = load_config(self.state_dir)
        self.down()
        if cfg is not None:
            release_ports(cfg)
            pg_dir = Path(cfg.pg_dir)
            if not pg_dir.is_relative_to(self.state_dir):
                shutil.rmtree(pg_dir, ignore_errors=True)
        shutil.rmtree(self.state_dir, ignore_errors=True)

    def _stop_orphan_glances(self, cfg: LabConfig) -> None:
        """Stop Glances a dead agent left behind: masters found by their pid files, checked to be
        ours by working directory before signalling."""
        for run_dir in self._glance_run_dirs(cfg):
            gpid = procs.ours(_pid_from(run_dir / "gunicorn.pid"), cwd=run_dir)
            if gpid is not None:
                procs.stop_group(gpid)

    def _glance_run_dirs(self, cfg: LabConfig) -> list[Path]:
        dirs = [cfg.root / "public-glance" / "glance"]
        dirs += [cfg.host_dir(h.name) / "glance" for h in cfg.hosts]
        return dirs

    # ---- status ---------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        cfg = self.config
        live: dict[str, Any] = {}
        if self.agent_alive():
            with contextlib.suppress(requests.RequestException, LabError):
                live = self._control("GET", "status", timeout=10)
        pids = component_pids(cfg)
        pids["public_glance"] = live.get("public_glance_pid")
        running = bool(live) and all(procs.alive(p) for p in pids.values())
        hosts = live.get("hosts") or [
            {"name": h.name, "id": h.id, "hostname": h.hostname, "region": h.region, "port": h.port,
             "endpoint": None, "url": f"http://127.0.0.1:{h.port}", "pid": None, "running": False,
             "frozen": False, "drained": False, "roles": [], "role_status": None, "role_state": None,
             "message": "", "local_dir": str(cfg.host_dir(h.name) / "local-store"),
             "glance_conf": str(cfg.host_dir(h.name) / "glance" / "etc" / "glance-api.conf"),
             "log": str(cfg.logs_dir / f"{h.name}-glance.log")}
            for h in cfg.hosts
        ]
        leaders = [p for p in pids.values() if p] + [h["pid"] for h in hosts if h.get("pid")]
        cinder = lab_cinder.status(cfg)
        cinder_leaders = [p for p in (cinder.get("pids") or {}).values() if p]
        rss = procs.total_rss_kib(leaders + cinder_leaders)
        if cinder_leaders:
            cinder["rss_mib"] = round(procs.total_rss_kib(cinder_leaders) / 1024, 1)
        return {
            "state_dir": str(cfg.root),
            "running": running,
            "auth_url": cfg.auth_url,
            "region": REGION_ONE,
            "regions": [REGION_ONE, REGION_TWO],
            "admin": cfg.admin.model_dump(),
            "member": cfg.member.model_dump(),
            "resmgr_url": cfg.resmgr_url,
            "public_glance_url": cfg.public_glance_url,
            "store_path": live.get("store_path", str(cfg.store_path)),
            "shared_dir": str(cfg.shared_dir),
            "storage": live.get("storage", "shared"),
            "namespaces": live.get("namespaces", False),
            "token_cache_seconds": live.get("token_cache_seconds", cfg.token_cache_seconds),
            "converge_seconds": live.get("converge_seconds", cfg.converge_seconds),
            "removal_404_seconds": live.get("removal_404_seconds", cfg.removal_404_seconds),
            "v2_roles_spelling": live.get("v2_roles_spelling", cfg.v2_roles_spelling),
            "ports": {"postgres": cfg.pg_port, "keystone": cfg.keystone_port, "resmgr": cfg.resmgr_port,
                      "public_glance": cfg.public_glance_port},
            "pids": pids,
            "pg_dir": cfg.pg_dir,
            "logs_dir": str(cfg.logs_dir),
            "rss_mib": round(rss / 1024, 1),
            "hosts": hosts,
            "cinder": cinder,
        }

    def env(self) -> dict[str, str]:
        """What python-openstackclient (and the lab stack) need: ``OS_*`` with the password, and the
        ``clouds.yaml`` the lab writes (entry ``pcd-lab``) for ``openstack --os-cloud pcd-lab``."""
        cfg = self.config
        a = cfg.admin
        return {
            "OS_AUTH_URL": cfg.auth_url, "OS_REGION_NAME": REGION_ONE, "OS_USERNAME": a.username,
            "OS_PASSWORD": a.password, "OS_IDENTITY_API_VERSION": "3",
            "OS_PROJECT_NAME": a.project_name, "OS_USER_DOMAIN_NAME": a.user_domain_name,
            "OS_PROJECT_DOMAIN_NAME": a.project_domain_name, "PCD_LAB_PASSWORD": a.password,
            "OS_CLIENT_CONFIG_FILE": str(self.write_clouds_yaml()),
            **self._ssh_env(cfg),
        }

    @staticmethod
    def _ssh_env(cfg: LabConfig) -> dict[str, str]:
        """The lab client's SSH key (its text), known_hosts and ssh_config, for the host checks
        (none without namespaces: the hosts then run no sshd)."""
        key = sshd.client_key(cfg)
        if not key.exists() or not sshd.known_hosts(cfg).exists():
            return {}
        return {"PCD_LAB_SSH_KEY": key.read_text(), "PCD_LAB_KNOWN_HOSTS": str(sshd.known_hosts(cfg)),
                "PCD_LAB_SSH_CONFIG": str(sshd.ssh_config(cfg))}

    def write_clouds_yaml(self) -> Path:
        """Write ``<state>/clouds.yaml`` with the entry ``pcd-lab`` (owner-only: it holds the password)."""
        cfg = self.config
        a = cfg.admin
        entry = {
            "auth": {
                "auth_url": cfg.auth_url, "username": a.username, "password": a.password,
                "project_name": a.project_name, "user_domain_name": a.user_domain_name,
                "project_domain_name": a.project_domain_name,
            },
            "region_name": REGION_ONE, "identity_api_version": 3, "interface": "public",
        }
        path = self.state_dir / "clouds.yaml"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"clouds": {"pcd-lab": entry}}, indent=2))  # JSON is YAML
        os.chmod(tmp, 0o600)
        tmp.replace(path)
        return path


def _pid_from(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None
