"""The stack configs the program tests run: the lab stack file and both variants of the example file."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from ssh_material import lab_ssh_env

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "pcd-imagelib-ha:"
# What `pulumi config set --secret --path cloud.password` would add to a real stack.
EXAMPLE_PASSWORD = "example-Secret-9f3"
LAB_PASSWORD = "lab-Secret-77c1"
LAB_ENV = {
    "OS_AUTH_URL": "http://127.0.0.1:45123/v3",
    "PCD_LAB_PASSWORD": LAB_PASSWORD,
    "PCD_LAB_STORE_PATH": "/tmp/pcd-lab-x/mnt/imagelibrary-data",
    **lab_ssh_env(),
}


def _stack_file(name: str) -> dict[str, Any]:
    data = yaml.safe_load((ROOT / name).read_text())
    return {key.removeprefix(PREFIX): value for key, value in data["config"].items()}


def lab_config() -> dict[str, Any]:
    """Pulumi.lab.yaml as written (its secrets and ports come from LAB_ENV)."""
    return _stack_file("Pulumi.lab.yaml")


def lab_cinder_config() -> dict[str, Any]:
    """Pulumi.lab-cinder.yaml as written (its secrets and ports come from LAB_ENV)."""
    return _stack_file("Pulumi.lab-cinder.yaml")


def example_nfs_config() -> dict[str, Any]:
    """Pulumi.example.yaml as written (the NFS variant), plus the password set as a secret."""
    config = _stack_file("Pulumi.example.yaml")
    config["cloud"]["password"] = EXAMPLE_PASSWORD
    return config


def example_cinder_config() -> dict[str, Any]:
    """Pulumi.example.yaml with its commented Cinder storage block in place of the NFS one."""
    lines = (ROOT / "Pulumi.example.yaml").read_text().splitlines()
    start = lines.index("  # pcd-imagelib-ha:storage:")
    block = []
    for line in lines[start:]:
        if not line.startswith("  # ") or (block and not line.startswith("  #   ")):
            break
        block.append(line.replace("  # ", "", 1))
    storage = yaml.safe_load("\n".join(block))[f"{PREFIX}storage"]
    config = example_nfs_config()
    config["storage"] = storage
    return config


def with_change(config: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``config`` with one value at a dotted path (``storage.nfs.mountPath``) replaced."""
    changed = copy.deepcopy(config)
    *parents, last = path.split(".")
    node: Any = changed
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return changed
