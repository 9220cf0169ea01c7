"""Real Glance API processes: one per image-library host plus the public control-plane one.

Each runs under gunicorn (gthread workers) in its own mount namespace where its store directory is
bind-mounted at the common store path, so every host records the same absolute image paths and
"local storage" fails the way it does on real hosts.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lab import host_store, nfs_emulation, procs
from lab.host_ns import CONF_DIR_IN_HOST
from lab.image_source import import_filtering_section
from lab.keystone import _gunicorn_conf, authtoken_section, procs_popen, wait_ok
from lab.paths import lab_venv_bin
from lab.settings import REGION_ONE, LabConfig


def namespaces_supported() -> bool:
    """Whether this process may create private mount namespaces and bind-mount in them
    ($PCD_LAB_NO_NAMESPACES=1 forces the fallback, to try it where namespaces work)."""
    if os.environ.get("PCD_LAB_NO_NAMESPACES") == "1":
        return False
    res = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "--", "true"], capture_output=True, check=False
    )
    return res.returncode == 0


@dataclass(frozen=True)
class GlanceInstance:
    """Where one Glance process keeps its files and which store it serves."""

    name: str
    port: int
    run_dir: Path
    store_source: Path  # the directory bound at a file store's path (shared or this host's own)
    store: host_store.HostStore  # what the region blueprint asks for (see lab/host_store.py)
    region: str = REGION_ONE
    hostname: str = ""  # the host's own hostname in its UTS namespace (Cinder records attachments by it)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def conf_dir(self) -> Path:
        return self.run_dir / "etc"

    @property
    def conf_file(self) -> Path:
        return self.conf_dir / "glance-api.conf"

    @property
    def disable_file(self) -> Path:
        return self.run_dir / "healthcheck_disable"

    @property
    def cinder_mount_point_base(self) -> Path:
        return self.run_dir / "cinder-mnt"


def _paste_ini(disable_file: Path) -> str:
    packaged = lab_venv_bin().parent / "etc" / "glance" / "glance-api-paste.ini"
    text = packaged.read_text()
    # Drain switch: /healthcheck answers 503 while this host's own disable file exists.
    return re.sub(r"^disable_by_file_path = .*$", f"disable_by_file_path = {disable_file}", text,
                  flags=re.MULTILINE)


def render_config(cfg: LabConfig, inst: GlanceInstance, *, store_path: Path, log_file: Path) -> str:
    svc = cfg.glance_service
    store = host_store.render(inst.store, cfg=cfg, region=inst.region,
                              mount_point_base=inst.cinder_mount_point_base, file_path=store_path)
    return (
        "[DEFAULT]\n"
        f"enabled_backends = {store.enabled_backends}\n"
        f"worker_self_reference_url = {inst.url}\n"
        f"log_file = {log_file}\n"
        "[database]\n"
        f"connection = {cfg.pg_url_base}/glance\n"
        f"{store.sections}"
        "[os_glance_staging_store]\n"
        f"filesystem_store_datadir = {inst.run_dir / 'staging'}\n"
        "[os_glance_tasks_store]\n"
        f"filesystem_store_datadir = {inst.run_dir / 'tasks'}\n"
        f"{authtoken_section(cfg, svc)}"
        # How long a validated token is trusted without asking Keystone again: drills lower it so
        # `revoke-tokens` bites quickly.
        f"token_cache_time = {cfg.token_cache_seconds}\n"
        "[paste_deploy]\n"
        "flavor = keystone\n"
        f"config_file = {inst.conf_dir / 'glance-api-paste.ini'}\n"
        "[oslo_concurrency]\n"
        f"lock_path = {inst.run_dir / 'locks'}\n"
    )


def write_instance_files(cfg: LabConfig, inst: GlanceInstance, *, store_path: Path, log_file: Path) -> None:
    for sub in ("etc", "staging", "tasks", "locks"):
        (inst.run_dir / sub).mkdir(parents=True, exist_ok=True)
    inst.store_source.mkdir(parents=True, exist_ok=True)
    # Web-download import filtering is its own section, apart from the store config.
    inst.conf_file.write_text(render_config(cfg, inst, store_path=store_path, log_file=log_file)
                              + import_filtering_section(cfg.root))
    os.chmod(inst.conf_file, 0o600)  # holds the service password
    (inst.conf_dir / "glance-api-paste.ini").write_text(_paste_ini(inst.disable_file))
    (inst.run_dir / "gunicorn.conf.py").write_text(
        # Threaded workers: a sync worker busy with an upload fails health probes, and a long upload
        # must not be cut by a worker timeout (nor a thawed frozen host have its worker killed).
        _gunicorn_conf(app="glance.wsgi.api:application", port=inst.port,
                       pidfile=inst.run_dir / "gunicorn.pid", workers=1, threads=8, timeout=3600)
    )


# Run inside the host's new mount and UTS namespaces: its own hostname and /etc/hosts (Cinder records
# each attachment under the attaching host's name), its file store bound at the blueprint's path.
_NS_SETUP = (
    'set -e; if [ -n "$1" ]; then hostname "$1"; mount --bind "$2" /etc/hosts; fi; '
    'if [ -n "$3" ]; then mount --bind "$3" "$4"; fi; exec "$5"'
)


def start(
    cfg: LabConfig, inst: GlanceInstance, *, use_namespace: bool, log_file: Path,
    enter_host: Sequence[str] = (), render: bool = True,
) -> subprocess.Popen[bytes]:
    """Start inst's Glance; returns the process leading its group.

    enter_host: the argv prefix entering a host's long-lived namespaces (lab.host_ns: its hostname, its
    file store already bound at the blueprint's path, its config dir seen at /etc/glance, where Glance
    is then told to read it; for a Cinder store, nested in the export namespace). render=False restarts
    the service on the config as it is (a hand edit survives a restart, not a converge)."""
    file_store = inst.store if isinstance(inst.store, host_store.FileStore) else None
    store_path = file_store.path if file_store is not None and use_namespace else inst.store_source
    if render:
        write_instance_files(cfg, inst, store_path=store_path, log_file=log_file)
    gunicorn = str(lab_venv_bin() / "gunicorn")
    env = {**os.environ, "OS_GLANCE_CONFIG_DIR": str(inst.conf_dir)}
    enter: list[str] = []
    if isinstance(inst.store, host_store.CinderStore):
        # The mount-count file under the mount point base survives a crash and would make the next
        # attach skip its mount: the host's share mounts are gone (the caller unmounted them), so
        # start from nothing.
        shutil.rmtree(inst.cinder_mount_point_base, ignore_errors=True)
        inst.cinder_mount_point_base.mkdir(parents=True)
        # The lab's mount/mount.nfs/sudo helpers first; inside the export namespace (the "share").
        env["PATH"] = nfs_emulation.path_with_helpers(cfg)
        if not enter_host:
            enter = nfs_emulation.ExportNamespace(cfg).enter(inst.run_dir)
    if enter_host:
        env["OS_GLANCE_CONFIG_DIR"] = str(CONF_DIR_IN_HOST)
        return procs.spawn([*enter_host, gunicorn], cwd=inst.run_dir, env=env,
                           log_path=log_file.with_suffix(".out"))
    if not use_namespace:
        return procs.spawn([*enter, gunicorn], cwd=inst.run_dir, env=env,
                           log_path=log_file.with_suffix(".out"))
    # The public control-plane Glance: a private namespace of its own, made here.
    hosts_file = inst.run_dir / "hosts"
    if inst.hostname:
        short = inst.hostname.split(".")[0]
        hosts_file.write_text(f"127.0.0.1\tlocalhost\n127.0.1.1\t{inst.hostname} {short}\n")
    bind_src, bind_dst = "", ""
    if file_store is not None:
        file_store.path.mkdir(parents=True, exist_ok=True)
        bind_src, bind_dst = str(inst.store_source), str(file_store.path)
    # unshare execs (no fork) so the leader pid stays the gunicorn master's after `exec`.
    uts = ["-u"] if inst.hostname else []
    argv = [
        *enter, "unshare", "-m", *uts, "--propagation", "private", "--", "/bin/sh", "-c", _NS_SETUP,
        "lab-glance-ns", inst.hostname, str(hosts_file), bind_src, bind_dst, gunicorn,
    ]
    return procs.spawn(argv, cwd=inst.run_dir, env=env, log_path=log_file.with_suffix(".out"))


def wait_ready(
    inst: GlanceInstance, proc: subprocess.Popen[bytes], log_file: Path, timeout: float = 90
) -> None:
    procs.wait_http(f"{inst.url}/healthcheck", timeout=timeout, ok=(200, 503), pid=proc.pid,
                    what=f"Glance {inst.name}", log_path=log_file)


def db_sync(cfg: LabConfig) -> subprocess.Popen[bytes]:
    """Create the shared Glance schema (once per state dir)."""
    d = cfg.root / "glance-manage"
    d.mkdir(parents=True, exist_ok=True)
    conf = d / "glance-manage.conf"
    conf.write_text(f"[DEFAULT]\nlog_file = {cfg.logs_dir / 'glance-manage.log'}\n"
                    f"[database]\nconnection = {cfg.pg_url_base}/glance\n")
    os.chmod(conf, 0o600)
    return procs_popen([str(lab_venv_bin() / "glance-manage"), "--config-file", str(conf), "db_sync"],
                       log=cfg.logs_dir / "glance-manage.log")


def wait_db_sync(cfg: LabConfig, proc: subprocess.Popen[bytes]) -> None:
    wait_ok(proc, "glance-manage db_sync", cfg.logs_dir / "glance-manage.log")
