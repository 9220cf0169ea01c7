"""The lab's command line against the session lab, and its config handling without any server."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from lab.api import Lab
from lab.settings import LOWEST_PORT, PORT_CLAIMS_DIR, load_or_create, pick_pg_dir, release_ports


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lab", *args], capture_output=True, text=True, timeout=120,
                          check=False)


@pytest.mark.lab
def test_status_json_and_env_describe_the_running_lab(lab: Lab) -> None:
    res = run_cli("--state-dir", str(lab.state_dir), "status", "--json")
    assert res.returncode == 0, res.stderr
    st = json.loads(res.stdout)
    for key in ("auth_url", "region", "regions", "admin", "member", "resmgr_url", "public_glance_url",
                "store_path", "shared_dir", "storage", "namespaces", "hosts"):
        assert key in st, key
    assert st["running"] and st["region"] == "RegionOne" and st["regions"] == ["RegionOne", "RegionTwo"]
    for key in ("name", "id", "hostname", "region", "port", "endpoint", "pid", "running", "frozen",
                "drained", "roles", "role_status", "local_dir", "glance_conf"):
        assert key in st["hosts"][0], key
    assert [h["name"] for h in st["hosts"]] == ["lab-host-1", "lab-host-2", "lab-host-3", "lab-host-r2-1"]
    env = run_cli("--state-dir", str(lab.state_dir), "env")
    assert env.returncode == 0
    # Parsed as the shell that evals it would (the SSH key's value spans lines).
    lines = dict(word.split("=", 1) for word in shlex.split(env.stdout) if word != "export")
    assert lines["OS_AUTH_URL"] == st["auth_url"] and lines["OS_REGION_NAME"] == "RegionOne"
    assert lines["PCD_LAB_PASSWORD"] == st["admin"]["password"]
    if st["namespaces"]:
        assert lines["PCD_LAB_SSH_KEY"].startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
        assert Path(lines["PCD_LAB_KNOWN_HOSTS"]).is_file() and Path(lines["PCD_LAB_SSH_CONFIG"]).is_file()
        assert all(h["ssh_port"] for h in st["hosts"])
    human = run_cli("--state-dir", str(lab.state_dir), "status")
    assert human.returncode == 0 and "lab-host-r2-1" in human.stdout
    assert st["admin"]["password"] not in human.stdout


def test_cli_errors_name_the_problem_and_the_fix(tmp_path: Path) -> None:
    res = run_cli("--state-dir", str(tmp_path / "nothing-here"), "status")
    assert res.returncode == 1
    assert "no lab in" in res.stderr and "python -m lab up" in res.stderr


@pytest.mark.lab
def test_unknown_host_is_named_with_the_known_ones(lab: Lab) -> None:
    res = run_cli("--state-dir", str(lab.state_dir), "kill", "no-such-host")
    assert res.returncode == 1
    assert "no-such-host" in res.stderr and "lab-host-1" in res.stderr


def test_state_dir_keeps_its_ports_and_grows_hosts(tmp_path: Path) -> None:
    first = load_or_create(tmp_path / "s", hosts=2, region_two_hosts=0)
    again = load_or_create(tmp_path / "s")
    assert again.model_dump() == first.model_dump()
    grown = load_or_create(tmp_path / "s", hosts=3)
    assert [h.name for h in grown.hosts] == ["lab-host-1", "lab-host-2", "lab-host-3"]
    assert grown.hosts[:2] == first.hosts
    ports = grown.all_ports()
    assert len(set(ports)) == len(ports)
    # Below the ephemeral range, and claimed machine-wide for this state dir until released.
    assert all(LOWEST_PORT <= p < 32768 for p in ports)
    assert all((PORT_CLAIMS_DIR / str(p)).read_text() == str(grown.root) for p in ports)
    other = load_or_create(tmp_path / "t", hosts=3)
    assert set(other.all_ports()).isdisjoint(ports)
    assert oct(os.stat(tmp_path / "s" / "lab.json").st_mode & 0o777) == "0o600"
    release_ports(grown)
    release_ports(other)
    assert not any((PORT_CLAIMS_DIR / str(p)).exists() for p in ports)


def test_postgres_data_goes_to_tmp_when_the_state_dir_is_not_traversable(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    os.chmod(private, 0o700)
    inside = private / "state"
    assert str(pick_pg_dir(inside)).startswith("/tmp/pcd-lab-pg-")
    open_dir = Path(tempfile.mkdtemp(prefix="pcd-lab-open-"))  # directly under /tmp (mode 1777)
    try:
        os.chmod(open_dir, 0o755)
        assert pick_pg_dir(open_dir / "state") == open_dir / "state" / "postgres"
    finally:
        open_dir.rmdir()
