"""SSH material for tests that never connect: a real key pair, a known_hosts file and an ssh_config
(the stack config checks that the key parses and the files are readable)."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import asyncssh


@functools.cache
def ssh_material_dir() -> Path:
    d = Path(tempfile.mkdtemp(prefix="pcd-test-ssh-"))
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    host_pub = host_key.export_public_key().decode().strip()
    (d / "known_hosts").write_text(f"[lab-host-1.lab.local]:2201 {host_pub}\n")
    (d / "ssh_config").write_text("Host lab-host-1.lab.local\n    HostName 127.0.0.1\n    Port 2201\n")
    (d / "id_ed25519").write_bytes(asyncssh.generate_private_key("ssh-ed25519").export_private_key())
    (d / "host_key.pub").write_text(host_pub)
    return d


def lab_ssh_env() -> dict[str, str]:
    """What `python -m lab env` exports for SSH, pointing at generated material."""
    d = ssh_material_dir()
    return {"PCD_LAB_SSH_KEY": (d / "id_ed25519").read_text(), "PCD_LAB_KNOWN_HOSTS": str(d / "known_hosts"),
            "PCD_LAB_SSH_CONFIG": str(d / "ssh_config")}
