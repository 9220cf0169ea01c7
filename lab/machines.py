"""The lab hosts as machines: each host's namespace holder and sshd, kept for the lab's whole run.

The supervisor asks for a host's namespace before starting its Glance in it; `status` reports each
host's SSH port; `down` stops holders and sshds left behind by a dead agent, by their pid files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lab import host_store, nfs_emulation
from lab.host_ns import GLANCE_UID, HostNamespace
from lab.settings import HostSpec, LabConfig
from lab.sshd import HostSshd, write_client_files


class HostMachines:
    """Every lab host's namespace and sshd, by host name."""

    def __init__(self, cfg: LabConfig) -> None:
        self.cfg = cfg

    def ns(self, spec: HostSpec) -> HostNamespace:
        return HostNamespace(self.cfg, spec)

    def sshd(self, spec: HostSpec) -> HostSshd:
        return HostSshd(self.cfg, self.ns(spec))

    def start(self, spec: HostSpec, store_source: Path, conf_dir: Path, *,
              store: host_store.HostStore | None = None, converge: bool = False) -> int:
        """The host's namespace (made once) with its sshd running; returns the holder pid.

        store: what the region blueprint asks the host to serve (a file store is bound at its path;
        a Cinder store needs the host nested in the export namespace, so a host made before the lab
        had Cinder is made again). converge: the role is being applied, which lays the host out again
        (store mounted, glance uid the common one), so a machine fault lasts until the host's next role
        change."""
        ns = self.ns(spec)
        export = nfs_emulation.ExportNamespace(self.cfg)
        cinder = isinstance(store, host_store.CinderStore)
        if cinder and ns.holder_pid() is not None and not ns.in_export():
            self.stop(spec)
        in_export = cinder or (self.cfg.cinder is not None and export.pid() is not None)
        path = store.path if isinstance(store, host_store.FileStore) else ns.store_path()
        fresh = ns.holder_pid() is None
        pid = ns.ensure(store_source, conf_dir, store_path=path,
                        export_enter=export.enter(ns.dir) if in_export else None)
        if converge and not fresh:
            ns.mount_store(store_source, path)
            ns.set_glance_uid(GLANCE_UID)
        self.sshd(spec).start()
        self.publish()
        return pid

    def publish(self) -> None:
        """Rewrite the lab's known_hosts and ssh_config from every host's key and port."""
        write_client_files(self.cfg, [self.sshd(s) for s in self.cfg.hosts])

    def stop(self, spec: HostSpec) -> None:
        self.sshd(spec).stop()
        self.ns(spec).stop()

    def stop_all(self) -> None:
        for spec in self.cfg.hosts:
            self.stop(spec)

    def status(self, spec: HostSpec) -> dict[str, Any]:
        sshd = self.sshd(spec)
        ns = self.ns(spec)
        return {"ssh_port": sshd.port() if (sshd.dir / "port").exists() else None,
                "sshd_running": sshd.running(), "namespace_pid": ns.holder_pid()}
