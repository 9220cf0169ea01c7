"""A real OpenSSH sshd per lab host, inside the host's namespace, and the lab's client-side files.

Each host's sshd listens on its own 127.0.0.1 port with key authentication only. The lab keeps, in
``<state>/ssh/``: the client key pair whose public half every host authorizes (``id_ed25519``), a
``known_hosts`` holding every host's public host key under its hostname and address, and an OpenSSH
client config (``ssh_config``) mapping each hostname to 127.0.0.1 and its port, so that
``ssh -F <state>/ssh/ssh_config lab-host-2.lab.local`` (or any client reading that file) reaches it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from lab import procs
from lab.host_ns import HostNamespace
from lab.paths import LabSetupError
from lab.settings import LabConfig, free_port

SSHD = Path("/usr/sbin/sshd")


def ensure_openssh_installed() -> None:
    """Install Debian's `openssh-server` when sshd is missing (`python -m lab setup`)."""
    if SSHD.exists() and shutil.which("ssh-keygen") is not None:
        return
    if shutil.which("apt-get") is None:
        raise LabSetupError("OpenSSH's sshd is missing and apt-get is unavailable: install openssh-server")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "openssh-server"], check=True, env=env)
    if not SSHD.exists():
        raise LabSetupError(f"apt-get installed openssh-server but {SSHD} did not appear")


def client_dir(cfg: LabConfig) -> Path:
    return cfg.root / "ssh"


def client_key(cfg: LabConfig) -> Path:
    return client_dir(cfg) / "id_ed25519"


def known_hosts(cfg: LabConfig) -> Path:
    return client_dir(cfg) / "known_hosts"


def ssh_config(cfg: LabConfig) -> Path:
    return client_dir(cfg) / "ssh_config"


def _keygen(path: Path, comment: str) -> None:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
                       check=True, capture_output=True)
    path.chmod(0o600)


class HostSshd:
    """One lab host's sshd: config, host key, port and process."""

    def __init__(self, cfg: LabConfig, ns: HostNamespace) -> None:
        self.cfg = cfg
        self.ns = ns
        self.dir = ns.dir / "ssh"

    @property
    def host_key(self) -> Path:
        return self.dir / "ssh_host_ed25519_key"

    def port(self) -> int:
        """This host's SSH port, picked free once and kept in its state dir."""
        f = self.dir / "port"
        try:
            return int(f.read_text())
        except (OSError, ValueError):
            self.dir.mkdir(parents=True, exist_ok=True)
            port = free_port(self.cfg.root)
            f.write_text(str(port))
            return port

    def _pid(self) -> int | None:
        try:
            pid = int((self.dir / "sshd.pid").read_text().strip())
        except (OSError, ValueError):
            return None
        return procs.ours(pid, cmd_marker=str(self.dir / "sshd_config"))

    def running(self) -> bool:
        return self._pid() is not None

    def _write_config(self) -> None:
        ensure_client_key(self.cfg)
        _keygen(self.host_key, f"root@{self.ns.spec.hostname}")
        auth = self.dir / "authorized_keys"
        auth.write_text(client_key(self.cfg).with_suffix(".pub").read_text())
        auth.chmod(0o600)
        path = f"{self.ns.bin_dir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        (self.dir / "sshd_config").write_text(
            f"Port {self.port()}\n"
            "ListenAddress 127.0.0.1\n"
            f"HostKey {self.host_key}\n"
            f"PidFile {self.dir / 'sshd.pid'}\n"
            f"AuthorizedKeysFile {auth}\n"
            "PubkeyAuthentication yes\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            "PermitRootLogin prohibit-password\n"
            "UsePAM no\n"
            # The state dir may sit under a directory other users can write (e.g. /tmp).
            "StrictModes no\n"
            "PrintMotd no\n"
            "X11Forwarding no\n"
            "MaxSessions 64\n"
            "MaxStartups 64:30:128\n"
            "LogLevel ERROR\n"
            # The host's own systemctl comes first, as /usr/bin/systemctl does on a real host.
            f"SetEnv PATH={path}\n"
        )

    def start(self) -> None:
        if self.running():
            return
        if not SSHD.exists():
            raise LabSetupError(f"{SSHD} is missing: run `python -m lab setup` (installs openssh-server)")
        self._write_config()
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation directory
        proc = procs.spawn([*self.ns.nsenter(), str(SSHD), "-D", "-e", "-f", str(self.dir / "sshd_config")],
                           cwd=self.dir, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
                           log_path=self.dir / "sshd.log")
        port = self.port()
        deadline = time.monotonic() + 15
        while not procs.port_listening(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"{self.ns.spec.name}: sshd did not listen on {port}; see {self.dir / 'sshd.log'}")
            time.sleep(0.02)

    def stop(self) -> None:
        pid = self._pid()
        if pid is not None:
            procs.stop_group(pid)


def ensure_client_key(cfg: LabConfig) -> None:
    """The lab client's key pair (made once; every host authorizes its public half)."""
    _keygen(client_key(cfg), "pcd-lab-client")


def write_client_files(cfg: LabConfig, hosts: list[HostSshd]) -> None:
    """known_hosts and ssh_config for every host that has a host key."""
    lines, conf = [], []
    for h in hosts:
        if not h.host_key.exists():
            continue
        pub = " ".join(h.host_key.with_suffix(".pub").read_text().split()[:2])
        port = h.port()
        lines.append(f"[{h.ns.spec.hostname}]:{port},[127.0.0.1]:{port} {pub}")
        conf.append(f"Host {h.ns.spec.hostname}\n    HostName 127.0.0.1\n    Port {port}\n    User root\n")
    known_hosts(cfg).write_text("\n".join(lines) + "\n")
    ssh_config(cfg).write_text("\n".join(conf))
