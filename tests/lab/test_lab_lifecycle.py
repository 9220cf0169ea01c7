"""Lab lifecycle: up, status, down leaves nothing behind; a second lab gets its own ports, kept."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
import requests
from labhelp import host, login

from lab.api import Lab
from lab.settings import PORT_CLAIMS_DIR

pytestmark = pytest.mark.lab


def all_ports(st: dict[str, Any]) -> set[int]:
    return set(st["ports"].values()) | {h["port"] for h in st["hosts"]}


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def processes_under(*dirs: str) -> list[int]:
    """Live processes whose working dir or command line lies in one of dirs (workers included)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or not alive(int(entry.name)):
            continue
        try:
            cwd = str((entry / "cwd").readlink())
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(cwd.startswith(d) or d in cmd for d in dirs):
            found.append(int(entry.name))
    return found


def test_second_lab_gets_other_ports_and_down_leaves_nothing(lab: Lab, tmp_path: Path) -> None:
    first = lab.status()
    second = Lab(tmp_path / "second-lab")
    try:
        st = second.up(hosts=1, region_two_hosts=0)
        assert st["running"]
        assert [h["name"] for h in st["hosts"]] == ["lab-host-1"]
        assert all_ports(st).isdisjoint(all_ports(first))
        assert all(listening(p) for p in st["ports"].values())
        # Keystone, resmgr and a role host of the second lab really work.
        token = login(st).get_token()
        r = requests.get(f"{st['resmgr_url']}/v1/hosts", headers={"X-Auth-Token": token}, timeout=10)
        assert r.status_code == 200 and len(r.json()) == 1
        second.grant_role("lab-host-1")
        h = host(second.status(), "lab-host-1")
        assert h["running"] and requests.get(f"{h['url']}/healthcheck", timeout=5).status_code == 200
        pids = [p for p in second.status()["pids"].values() if p] + [h["pid"]]
        assert len(pids) == 5
        dirs = (str(second.state_dir), second.config.pg_dir)
        assert len(processes_under(*dirs)) > 5  # workers and postgres backends too

        second.down()
        assert not any(alive(p) for p in pids)
        assert processes_under(*dirs) == []
        assert not any(listening(p) for p in all_ports(st))
        assert not second.status()["running"]

        # Restarting the same state dir keeps its addresses (the catalog and clients rely on them).
        again = second.up()
        assert again["running"] and all_ports(again) == all_ports(st)
        assert again["hosts"][0]["roles"] == []  # roles do not survive a restart
        second.down()
        assert not any(listening(p) for p in all_ports(st))
    finally:
        second.purge()
    assert not second.state_dir.exists()
    assert not any((PORT_CLAIMS_DIR / str(p)).exists() for p in all_ports(st))
    # The session lab was not disturbed.
    assert lab.status()["running"]


def test_without_namespaces_the_lab_says_so_and_uses_distinct_paths(
    lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PCD_LAB_NO_NAMESPACES", "1")
    fallback = Lab(tmp_path / "no-ns-lab")
    try:
        st = fallback.up(hosts=1, region_two_hosts=0)
        assert st["namespaces"] is False
        assert st["store_path"] == st["shared_dir"]
        assert "mount namespaces are not permitted" in (fallback.state_dir / "logs" / "agent.log").read_text()
        fallback.grant_role("lab-host-1")
        h = host(fallback.status(), "lab-host-1")
        assert f"filesystem_store_datadir = {st['shared_dir']}\n" in Path(h["glance_conf"]).read_text()
        fallback.set_storage("local")
        h = host(fallback.status(), "lab-host-1")
        assert f"filesystem_store_datadir = {h['local_dir']}\n" in Path(h["glance_conf"]).read_text()
        assert requests.get(f"{h['url']}/healthcheck", timeout=5).status_code == 200
    finally:
        fallback.purge()
