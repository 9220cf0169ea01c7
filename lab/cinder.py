"""The lab's real Cinder (block storage): api, scheduler and volume services from PyPI.

Started by `python -m lab up --cinder` (or `Lab.up(cinder=True)`), between RabbitMQ and the Glance
hosts: Glance with a Cinder store will not start while cinder-api is down (its workers look the volume
type up at boot). The volume backend is Cinder's NFS driver over the lab's export, with only the NFS
transport emulated (lab/nfs_emulation.py); the backend advertises multiattach through
`extra_capabilities`, since the NFS driver itself does not and a multiattach type would not schedule.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from keystoneauth1 import exceptions as ks_exc

from lab import nfs_emulation, procs, rabbitmq
from lab.identity import IdentityAdmin, password_session
from lab.keystone import authtoken_section, procs_popen, wait_ok
from lab.paths import LabSetupError, lab_venv_bin
from lab.rabbitmq import RabbitMQ
from lab.settings import REGION_ONE, REGION_TWO, CinderSettings, LabConfig

SERVICES = ("cinder-api", "cinder-scheduler", "cinder-volume")
BACKEND = "nfs1"
VOLUME_HOST = "lab-cinder"
# Catalog entries PCD and the field use: openstacksdk asks for `block-storage`, glance_store's
# cinder_catalog_info defaults to `volumev3`.
CATALOG = (("cinder", "block-storage", "Cinder (block storage)"),
           ("cinderv3", "volumev3", "Cinder v3 (block storage)"))
# Attachments (GET /attachments) exist from microversion 3.27.
MICROVERSION = {"OpenStack-API-Version": "volume 3.27"}


DEBIAN_PACKAGES = ("rabbitmq-server", "qemu-utils", "e2fsprogs")


def ensure_installed() -> None:
    """Install Debian's rabbitmq-server and qemu-utils when missing (as `lab setup` does PostgreSQL);
    check the lab venv has Cinder."""
    if not (lab_venv_bin() / "cinder-volume").exists():
        raise LabSetupError(
            f"the lab virtualenv {lab_venv_bin().parent} has no Cinder: re-run `make lab-venv` "
            "(lab/requirements.txt lists cinder and glance-store[cinder])"
        )
    if rabbitmq.server_installed() and shutil.which("qemu-img") and shutil.which("mkfs.ext4"):
        return
    if shutil.which("apt-get") is None:
        raise LabSetupError(
            f"the lab's Cinder needs Debian packages {', '.join(DEBIAN_PACKAGES)} and apt-get is unavailable"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", *DEBIAN_PACKAGES], check=True, env=env)
    rabbitmq.require_installed()
    nfs_emulation.require_tools()


class CinderError(RuntimeError):
    """A Cinder service did not start or answer; the message names the log."""


class Cinder:
    """One lab's Cinder services and their config, all under `<state>/cinder`."""

    def __init__(self, cfg: LabConfig) -> None:
        if cfg.cinder is None:
            raise ValueError("this lab has no Cinder: `python -m lab up --cinder`")
        self.cfg = cfg
        self.settings: CinderSettings = cfg.cinder
        self.dir = cfg.root / "cinder"
        self.conf = self.dir / "cinder.conf"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.api_port}"

    def log(self, service: str) -> Path:
        return self.cfg.logs_dir / f"{service}.log"

    def run_dir(self, service: str) -> Path:
        return self.dir / "run" / service

    # ---- config and database --------------------------------------------------------------------
    def write_config(self) -> None:
        etc = lab_venv_bin().parent / "etc" / "cinder"
        for sub in ("state", "locks", "coordination", "mnt"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        shares = self.dir / "nfs_shares"
        shares.write_text(nfs_emulation.share(self.cfg) + "\n")
        svc = self.settings.service
        self.conf.write_text(
            "[DEFAULT]\n"
            f"transport_url = {RabbitMQ(self.cfg).transport_url}\n"
            "auth_strategy = keystone\n"
            f"enabled_backends = {BACKEND}\n"
            f"host = {VOLUME_HOST}\n"
            "my_ip = 127.0.0.1\n"
            "osapi_volume_listen = 127.0.0.1\n"
            f"osapi_volume_listen_port = {self.settings.api_port}\n"
            "osapi_volume_workers = 1\n"
            # A lab's services need not drain requests for a minute when the lab goes down.
            "graceful_shutdown_timeout = 5\n"
            f"api_paste_config = {etc / 'api-paste.ini'}\n"
            f"resource_query_filters_file = {etc / 'resource_filters.json'}\n"
            f"state_path = {self.dir / 'state'}\n"
            f"rootwrap_config = {etc / 'rootwrap.conf'}\n"
            "[database]\n"
            f"connection = {self.cfg.pg_url_base}/cinder\n"
            f"{authtoken_section(self.cfg, svc)}"
            "[oslo_concurrency]\n"
            f"lock_path = {self.dir / 'locks'}\n"
            "[coordination]\n"
            f"backend_url = file://{self.dir / 'coordination'}\n"
            f"[{BACKEND}]\n"
            "volume_driver = cinder.volume.drivers.nfs.NfsDriver\n"
            f"volume_backend_name = {BACKEND}\n"
            f"nfs_shares_config = {shares}\n"
            f"nfs_mount_point_base = {self.dir / 'mnt'}\n"
            "nfs_sparsed_volumes = true\n"
            # The lab runs as root: no need for Cinder's "secure NAS" mode (and its guesswork).
            "nas_secure_file_operations = false\n"
            "nas_secure_file_permissions = false\n"
            # The NFS driver does not report multiattach; without this a multiattach type never
            # schedules ("Backend doesn't provide capability 'multiattach'").
            'extra_capabilities = {"multiattach": true}\n'
        )
        os.chmod(self.conf, 0o600)  # service and broker passwords

    def synced(self) -> bool:
        return (self.dir / "db-synced").exists()

    def db_sync(self) -> subprocess.Popen[bytes]:
        argv = [str(lab_venv_bin() / "cinder-manage"), "--config-file", str(self.conf), "db", "sync"]
        return procs_popen(argv, log=self.cfg.logs_dir / "cinder-manage.log")

    def wait_db_sync(self, proc: subprocess.Popen[bytes]) -> None:
        wait_ok(proc, "cinder-manage db sync", self.cfg.logs_dir / "cinder-manage.log")
        (self.dir / "db-synced").touch()

    # ---- processes ------------------------------------------------------------------------------
    def pid(self, service: str) -> int | None:
        """The service's process group leader while it is ours (matched by its working dir)."""
        try:
            leader = int((self.run_dir(service) / "leader.pid").read_text().strip())
        except (OSError, ValueError):
            return None
        return procs.ours(leader, cwd=self.run_dir(service))

    def pids(self) -> dict[str, int | None]:
        return {s: self.pid(s) for s in SERVICES}

    def start(self) -> None:
        """Start whichever services are not running (returns at once; see wait_ready)."""
        for service in SERVICES:
            if self.pid(service) is not None:
                continue
            run = self.run_dir(service)
            run.mkdir(parents=True, exist_ok=True)
            argv = [str(lab_venv_bin() / service), "--config-file", str(self.conf),
                    "--log-file", str(self.log(service))]
            env = dict(os.environ)
            if service == "cinder-volume":
                # Its own mount namespace inside the export's: it sees the export, and the share
                # mounts it makes die with it. Its PATH finds the lab's mount/mount.nfs/sudo first.
                argv = [*nfs_emulation.ExportNamespace(self.cfg).enter(run),
                        "unshare", "-m", "--propagation", "private", "--", *argv]
                env["PATH"] = nfs_emulation.path_with_helpers(self.cfg)
            proc = procs.spawn(argv, cwd=run, env=env, log_path=self.cfg.logs_dir / f"{service}.out")
            (run / "leader.pid").write_text(str(proc.pid))

    def wait_ready(self, timeout: float = 120) -> None:
        """Until cinder-api answers and the scheduler knows the NFS pool (a volume can be created)."""
        procs.wait_http(f"{self.api_url}/", timeout=timeout, ok=(200, 300), pid=self.pid("cinder-api"),
                        what="cinder-api", log_path=self.log("cinder-api"))
        sess = password_session(self.cfg, self.cfg.operator)
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            for service in SERVICES:
                if self.pid(service) is None:
                    raise CinderError(f"{service} exited while starting; see {self.log(service)}")
            try:
                r = sess.get("/scheduler-stats/get_pools", endpoint_filter=_filter(), raise_exc=False,
                             timeout=5)
                if r.status_code == 200 and r.json().get("pools"):
                    return
                last = f"HTTP {r.status_code}: {r.text[:200]}"
            except ks_exc.ClientException as exc:
                last = type(exc).__name__
            time.sleep(0.5)
        raise CinderError(
            f"Cinder's scheduler did not see the {BACKEND} pool within {timeout:.0f}s ({last}); "
            f"see {self.log('cinder-volume')} and {self.log('cinder-scheduler')}"
        )

    def stop(self) -> None:
        # All at once: each may spend its grace period finishing requests (stop_group waits up to 10 s
        # before SIGKILL), and nothing depends on their order once the lab goes down.
        threads = [threading.Thread(target=procs.stop_group, args=(pid,))
                   for pid in self.pids().values() if pid is not None]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # Cinder's privsep daemons re-parent to PID 1: found by the config file they were given.
        procs.stop_matching("privsep-helper", str(self.conf))

    def signal_api(self, sig: signal.Signals) -> None:
        pid = self.pid("cinder-api")
        if pid is None:
            raise CinderError("cinder-api is not running")
        procs.signal_group(pid, sig)


def register(identity: IdentityAdmin, cfg: LabConfig) -> None:
    """Cinder's service user and its catalog entries in both regions (one Cinder serves both)."""
    if cfg.cinder is None:
        raise ValueError("this lab has no Cinder")
    identity.ensure_region(REGION_TWO)  # `up` may not have made it yet
    identity.ensure_user(cfg.cinder.service, "service")
    # Glance's Cinder store creates and attaches volumes as the glance user: Cinder's default policy
    # wants a project member for that (the `service` role alone gets 403 on volume:create).
    identity.ensure_user(cfg.glance_service, "member")
    url = f"http://127.0.0.1:{cfg.cinder.api_port}/v3/%(project_id)s"
    for name, stype, description in CATALOG:
        service_id = identity.ensure_service(name, stype, description)
        for region in (REGION_ONE, REGION_TWO):
            identity.ensure_endpoints(service_id, url, region)


def _filter() -> dict[str, str]:
    return {"service_type": "volumev3", "interface": "public", "region_name": REGION_ONE}


def inventory(cfg: LabConfig, timeout: float = 5) -> dict[str, Any]:
    """Every volume and attachment Cinder knows (all projects), as the API shows them; `error` says
    why there are none when Cinder did not answer (down or frozen)."""
    sess = password_session(cfg, cfg.operator)
    out: dict[str, Any] = {"volumes": [], "attachments": [], "error": ""}
    try:
        vols = sess.get("/volumes/detail?all_tenants=1", endpoint_filter=_filter(), headers=MICROVERSION,
                        timeout=timeout).json()["volumes"]
        atts = sess.get("/attachments?all_tenants=1", endpoint_filter=_filter(), headers=MICROVERSION,
                        timeout=timeout).json()["attachments"]
    except (ks_exc.ClientException, ValueError, KeyError) as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
        return out
    out["volumes"] = [
        {"id": v["id"], "name": v.get("name"), "status": v["status"], "size": v["size"],
         "volume_type": v.get("volume_type"), "multiattach": v.get("multiattach"),
         "image_id": (v.get("metadata") or {}).get("glance_image_id"),
         "attached_hosts": sorted({a.get("host_name") or "" for a in v.get("attachments") or []})}
        for v in vols
    ]
    out["attachments"] = [
        {"id": a["id"], "volume_id": a["volume_id"], "status": a["status"],
         "instance": a.get("instance"), "attached_at": a.get("attached_at")}
        for a in atts
    ]
    return out


def status(cfg: LabConfig) -> dict[str, Any]:
    """Cinder's and RabbitMQ's processes, the export, and the volumes and attachments when cinder-api
    runs (for `python -m lab status`)."""
    if cfg.cinder is None:
        return {"enabled": False}
    cinder = Cinder(cfg)
    pids = {**cinder.pids(), **RabbitMQ(cfg).pids()}
    out: dict[str, Any] = {
        "enabled": True, "api_url": cinder.api_url, "pids": pids,
        "running": all(procs.alive(p) for p in pids.values()),
        "export": str(nfs_emulation.export_dir(cfg)),
        "export_mounted": nfs_emulation.ExportNamespace(cfg).mounted(),
        "volumes": [], "attachments": [], "error": "",
    }
    if pids["cinder-api"] is not None:
        out.update(inventory(cfg))
    return out


def stop_all(cfg: LabConfig) -> None:
    """Stop Cinder, its broker, every privsep daemon of this lab and the export's namespace."""
    if cfg.cinder is None:
        return
    Cinder(cfg).stop()
    RabbitMQ(cfg).stop()
    # Glance hosts' os-brick privsep daemons: each was given its host's config dir under the state dir.
    procs.stop_matching("privsep-helper", str(cfg.root))
    nfs_emulation.ExportNamespace(cfg).stop()


class CinderStartup:
    """Brings a lab's Cinder up in the order it needs, in steps `Lab.up` interleaves with the rest:
    PostgreSQL → (RabbitMQ ∥ db sync ∥ Keystone) → catalog → services → the scheduler sees the pool.
    Every step is idempotent, so the same steps add Cinder to a lab that runs without it."""

    def __init__(self, cfg: LabConfig) -> None:
        self.cfg = cfg
        self.cinder = Cinder(cfg)
        self.rabbit = RabbitMQ(cfg)
        self._sync: subprocess.Popen[bytes] | None = None

    def begin(self) -> None:
        """After PostgreSQL's databases exist: the export, the helpers, the broker and the schema."""
        nfs_emulation.ExportNamespace(self.cfg).start()
        nfs_emulation.write_helpers(self.cfg)
        self.rabbit.start()
        self.cinder.write_config()
        if not self.cinder.synced():
            self._sync = self.cinder.db_sync()

    def after_keystone(self) -> None:
        """Once Keystone answers and the lab's operator user exists: catalog, then the services."""
        marker = self.cinder.dir / "catalog-done"
        if not marker.exists():
            register(IdentityAdmin(self.cfg), self.cfg)
            marker.touch()
        if self._sync is not None:
            self.cinder.wait_db_sync(self._sync)
        self.rabbit.wait_ready()
        self.cinder.start()

    def wait_ready(self) -> None:
        self.cinder.wait_ready()

    def run_all(self) -> None:
        """Every step in turn: for a lab whose PostgreSQL (with Cinder's database) and Keystone run."""
        self.begin()
        self.after_keystone()
        self.wait_ready()
