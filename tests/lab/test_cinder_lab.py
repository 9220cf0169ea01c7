"""The lab's real Cinder, and hosts that render their Glance store from the region blueprint.

One Cinder lab for the module (its own state dir: the last test takes it down and checks nothing of it
is left). Images are small: every Cinder operation costs about a second here. The lab is driven the
way the program drives PCD (resmgr blueprint and roles over HTTP, Glance and Cinder APIs); the lab's
own hooks are used only where PCD has no API (reconverge, freeze, status).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openstack
import pytest
import requests
from labhelp import host, token_of, wait_until

from lab.api import Lab

pytestmark = pytest.mark.lab

HOSTS = ("lab-host-1", "lab-host-2", "lab-host-3")
MULTI_TYPE = "image_library"
SINGLE_TYPE = "image_library_single"


@pytest.fixture(scope="module")
def cinder_lab() -> Iterator[Lab]:
    lab = Lab(Path(tempfile.mkdtemp(prefix="pcd-lab-cinder-test-")))
    try:
        lab.up(hosts=3, region_two_hosts=0, cinder=True, converge_seconds=1)
        conn = _sdk(lab.status())
        conn.block_storage.create_type(name=MULTI_TYPE, extra_specs={"multiattach": "<is> True"})
        conn.block_storage.create_type(name=SINGLE_TYPE, extra_specs={})
        yield lab
    finally:
        lab.purge()


def _sdk(st: dict[str, Any]) -> openstack.connection.Connection:
    a = st["admin"]
    return openstack.connect(auth_url=st["auth_url"], username=a["username"], password=a["password"],
                             project_name=a["project_name"], user_domain_name=a["user_domain_name"],
                             project_domain_name=a["project_domain_name"], region_name="RegionOne")


class Region:
    """The RegionOne blueprint and roles through resmgr, and the hosts' Glance APIs."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.st = lab.status()
        self.token = token_of(self.st)
        self.headers = {"X-Auth-Token": self.token}

    def set_storage(self, value: str) -> None:
        url = f"{self.st['resmgr_url']}/v2/blueprint/RegionOne"
        bp = requests.get(url, headers=self.headers, timeout=10).json()
        r = requests.put(url, json={**bp, "imageLibraryStorage": value}, headers=self.headers, timeout=10)
        assert r.status_code == 200, r.text

    def converge(self, names: tuple[str, ...]) -> None:
        """PUT the role on each host (as the program does) and wait until every one is applied."""
        for name in names:
            role = f"{self.st['resmgr_url']}/v2/hosts/{host(self.st, name)['id']}/roles/image-library"
            r = requests.put(role, json={}, headers=self.headers, timeout=10)
            assert r.status_code == 200, r.text
        wait_until(lambda: all(host(self.lab.status(), n)["role_state"] == "applied" for n in names),
                   timeout=180, interval=0.5, what=f"the role to apply on {names}")
        for n in names:
            assert host(self.lab.status(), n)["running"], host(self.lab.status(), n)

    def url(self, name: str) -> str:
        return str(host(self.st, name)["url"])

    def stores(self, name: str) -> list[dict[str, Any]]:
        r = requests.get(f"{self.url(name)}/v2/info/stores/detail", headers=self.headers, timeout=30)
        assert r.status_code == 200, r.text
        return list(r.json()["stores"])

    def upload(self, name: str, data: bytes) -> str:
        image_id = str(uuid.uuid4())
        r = requests.post(f"{self.url(name)}/v2/images", headers=self.headers, timeout=30, json={
            "id": image_id, "name": f"cinder-lab-{image_id[:8]}", "disk_format": "raw",
            "container_format": "bare"})
        assert r.status_code == 201, r.text
        r = requests.put(f"{self.url(name)}/v2/images/{image_id}/file", data=data, timeout=300,
                         headers={**self.headers, "Content-Type": "application/octet-stream"})
        assert r.status_code == 204, r.text
        return image_id

    def download(self, name: str, image_id: str) -> requests.Response:
        return requests.get(f"{self.url(name)}/v2/images/{image_id}/file", headers=self.headers, timeout=300)

    def delete(self, image_id: str) -> None:
        requests.delete(f"{self.url(HOSTS[0])}/v2/images/{image_id}", headers=self.headers, timeout=60)


def _cinder_store(stores: list[dict[str, Any]]) -> tuple[str, str | None]:
    default = next(s for s in stores if s.get("default") in (True, "true"))
    return default["type"], default.get("properties", {}).get("volume_type")


@pytest.fixture(scope="module")
def region(cinder_lab: Lab) -> Region:
    """RegionOne's blueprint names the multiattach type and the three hosts converged on it."""
    r = Region(cinder_lab)
    r.set_storage(MULTI_TYPE)
    r.converge(HOSTS)
    return r


def test_images_go_through_cinder_and_read_identical_on_every_host(cinder_lab: Lab, region: Region) -> None:
    for name in HOSTS:
        assert _cinder_store(region.stores(name)) == ("cinder", MULTI_TYPE), name
        conf = Path(host(cinder_lab.status(), name)["glance_conf"]).read_text()
        assert "enabled_backends = cinder:cinder" in conf and f"cinder_volume_type = {MULTI_TYPE}" in conf
    data = os.urandom(3 * 1024 * 1024)
    image_id = region.upload("lab-host-1", data)
    try:
        for name in ("lab-host-2", "lab-host-3"):
            r = region.download(name, image_id)
            assert r.status_code == 200
            assert hashlib.sha512(r.content).digest() == hashlib.sha512(data).digest()
        inv = cinder_lab.status()["cinder"]
        vols = [v for v in inv["volumes"] if v["image_id"] == image_id]
        assert len(vols) == 1 and vols[0]["volume_type"] == MULTI_TYPE and vols[0]["multiattach"] is True
        assert vols[0]["status"] == "available" and vols[0]["attached_hosts"] == []  # reads detach
        assert inv["attachments"] == []
    finally:
        region.delete(image_id)
    wait_until(lambda: not [v for v in cinder_lab.cinder_inventory()["volumes"] if v["image_id"] == image_id],
               timeout=60, what="the image's volume to go with the image")


def test_a_blueprint_change_takes_effect_at_the_next_convergence(cinder_lab: Lab, region: Region) -> None:
    path = str(Path(cinder_lab.status()["state_dir"]) / "mnt" / "blueprint-path")
    try:
        region.set_storage(path)
        # Writing the blueprint alone re-renders nothing: hosts follow it when the role converges.
        assert _cinder_store(region.stores("lab-host-3")) == ("cinder", MULTI_TYPE)
        region.converge(("lab-host-3",))  # a PUT on an applied role whose store changed re-converges
        stores = region.stores("lab-host-3")
        assert _cinder_store(stores) == ("file", None)
        assert next(s for s in stores if s["type"] == "file")["properties"]["data_dir"].rstrip("/") == path
        assert host(cinder_lab.status(), "lab-host-3")["store"] == {"kind": "file", "path": path}
        assert _cinder_store(region.stores("lab-host-2")) == ("cinder", MULTI_TYPE)  # not re-converged
    finally:
        region.set_storage(MULTI_TYPE)
        region.converge(("lab-host-3",))
    assert _cinder_store(region.stores("lab-host-3")) == ("cinder", MULTI_TYPE)


def test_a_hand_edit_of_glance_api_conf_is_overwritten_by_the_next_convergence(
    cinder_lab: Lab, region: Region
) -> None:
    conf = Path(host(cinder_lab.status(), "lab-host-2")["glance_conf"])
    rendered = conf.read_text()
    conf.write_text(rendered.replace(f"cinder_volume_type = {MULTI_TYPE}", "cinder_volume_type = by-hand"))
    cinder_lab.reconverge("lab-host-2")
    assert conf.read_text() == rendered
    assert _cinder_store(region.stores("lab-host-2")) == ("cinder", MULTI_TYPE)


def _read_while_held(region: Region, holder: str, reader: str, image_id: str) -> tuple[int, float]:
    """Hold the image's volume attached on `holder` (a download stopped after its first bytes, the
    host then frozen so it cannot finish), read through `reader`; return its status and duration."""
    held = requests.get(f"{region.url(holder)}/v2/images/{image_id}/file", headers=region.headers,
                        stream=True, timeout=300)
    assert held.status_code == 200
    next(held.iter_content(64 * 1024))  # the volume is attached on the holder now
    region.lab.freeze(holder)
    try:
        t0 = time.monotonic()
        r = region.download(reader, image_id)
        return r.status_code, time.monotonic() - t0
    finally:
        region.lab.thaw(holder)
        held.close()


def test_without_multiattach_a_second_host_cannot_read_while_one_holds_the_volume(
    cinder_lab: Lab, region: Region
) -> None:
    """The failure the multiattach rule rests on, next to the same read with a multiattach type."""
    data = os.urandom(16 * 1024 * 1024)
    multi = region.upload("lab-host-1", data)
    status, took = _read_while_held(region, "lab-host-1", "lab-host-2", multi)
    print(f"multiattach: second host read while the first held the volume: HTTP {status} in {took:.1f}s")
    assert status == 200
    region.delete(multi)

    pair = ("lab-host-1", "lab-host-2")
    try:
        region.set_storage(SINGLE_TYPE)
        region.converge(pair)
        single = region.upload("lab-host-1", data)
        vol = next(v for v in cinder_lab.cinder_inventory()["volumes"] if v["image_id"] == single)
        assert vol["volume_type"] == SINGLE_TYPE and vol["multiattach"] is False
        status, took = _read_while_held(region, "lab-host-1", "lab-host-2", single)
        print(f"no multiattach: second host read while the first held it: HTTP {status} in {took:.1f}s")
        assert status == 500 and took > 5  # glance_store retried the reservation, then gave up
        wait_until(lambda: cinder_lab.cinder_inventory()["attachments"] == [], timeout=60,
                   what="the holder's attachment to go once its download ends")
        r = region.download("lab-host-2", single)  # the same read succeeds once nobody holds it
        assert r.status_code == 200 and r.content == data
        region.delete(single)
    finally:
        region.set_storage(MULTI_TYPE)
        region.converge(pair)


def test_cinder_freeze_stops_answers_and_thaw_brings_them_back(cinder_lab: Lab) -> None:
    cinder_lab.cinder_freeze()
    try:
        inv = cinder_lab.cinder_inventory()
        assert "Timeout" in inv["error"] or "timed out" in inv["error"], inv
    finally:
        cinder_lab.cinder_thaw()
    assert cinder_lab.cinder_inventory()["error"] == ""


def _lab_processes(state_dir: str) -> list[str]:
    """Processes that name or work in the lab's state dir, or see one of its mounts."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(entry / "cwd")
            mounts = (entry / "mountinfo").read_text()
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            continue
        if state_dir in cmd or cwd.startswith(state_dir) or state_dir in mounts:
            found.append(f"{entry.name}: {cmd[:160]} (cwd {cwd})")
    return found


def test_down_leaves_nothing_running(cinder_lab: Lab) -> None:
    st = cinder_lab.status()
    state_dir = st["state_dir"]
    threads = [threading.Thread(target=cinder_lab.grant_role, args=(n,)) for n in HOSTS]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert _lab_processes(state_dir), "the check must see the running lab"
    cinder_lab.down()
    left = _lab_processes(state_dir)
    assert left == [], left
    image = str(Path(state_dir) / "cinder" / "export.ext4")
    assert image not in Path("/proc/self/mountinfo").read_text()
    loops = "".join(p.read_text() for p in Path("/sys/block").glob("loop*/loop/backing_file"))
    assert image not in loops
