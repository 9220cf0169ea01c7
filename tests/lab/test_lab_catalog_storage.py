"""Catalog entries follow the role; shared vs local storage behaves as on real hosts (through real Glance)."""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
from labhelp import host, login, token_of, wait_until

from lab.api import Lab

pytestmark = pytest.mark.lab


def cluster_urls(st: dict[str, Any], region: str) -> set[str]:
    """The image-cluster endpoints a fresh login sees (the catalog is cached with the token)."""
    sess = login(st)
    access = sess.auth.get_access(sess)  # type: ignore[union-attr]
    return set(access.service_catalog.get_urls(service_type="image-cluster", interface="public",
                                               region_name=region) or ())


def test_catalog_lists_exactly_the_role_hosts_in_their_region(clean_lab: Lab) -> None:
    clean_lab.set_resmgr_options(converge_seconds=1, removal_404_seconds=0)
    st = clean_lab.status()
    token = token_of(st)
    assert cluster_urls(st, "RegionOne") == set() and cluster_urls(st, "RegionTwo") == set()
    chosen = ["lab-host-1", "lab-host-3", "lab-host-r2-1"]
    for name in chosen:
        r = requests.put(f"{st['resmgr_url']}/v2/hosts/{host(st, name)['id']}/roles/image-library", json={},
                         headers={"X-Auth-Token": token}, timeout=10)
        assert r.status_code == 200
    wait_until(lambda: all(host(clean_lab.status(), n)["role_state"] == "applied" for n in chosen),
               timeout=90, what="the roles to apply")
    assert cluster_urls(st, "RegionOne") == {host(st, "lab-host-1")["url"], host(st, "lab-host-3")["url"]}
    assert cluster_urls(st, "RegionTwo") == {host(st, "lab-host-r2-1")["url"]}
    # The public image endpoint stays the control-plane Glance, never a host.
    sess = login(st)
    image_urls = sess.auth.get_access(sess).service_catalog.get_urls(  # type: ignore[union-attr]
        service_type="image", interface="public", region_name="RegionOne")
    assert list(image_urls) == [st["public_glance_url"]]

    r = requests.delete(f"{st['resmgr_url']}/v2/hosts/{host(st, 'lab-host-1')['id']}/roles/image-library",
                        headers={"X-Auth-Token": token}, timeout=10)
    assert r.status_code == 200
    wait_until(lambda: host(clean_lab.status(), "lab-host-1")["roles"] == [], timeout=60,
               what="the role to go")
    assert cluster_urls(st, "RegionOne") == {host(st, "lab-host-3")["url"]}
    assert cluster_urls(st, "RegionTwo") == {host(st, "lab-host-r2-1")["url"]}


def create_image(url: str, token: str, name: str) -> str:
    image_id = str(uuid.uuid4())
    r = requests.post(f"{url}/v2/images", headers={"X-Auth-Token": token}, timeout=30, json={
        "id": image_id, "name": name, "disk_format": "raw", "container_format": "bare"})
    assert r.status_code == 201, r.text
    return image_id


def upload(url: str, token: str, image_id: str, path: Path) -> None:
    with open(path, "rb") as f:
        r = requests.put(f"{url}/v2/images/{image_id}/file", data=f, timeout=300, headers={
            "X-Auth-Token": token, "Content-Type": "application/octet-stream"})
    assert r.status_code == 204, r.text


def download_sha512(url: str, token: str, image_id: str) -> tuple[int, str, int]:
    digest = hashlib.sha512()
    size = 0
    with requests.get(f"{url}/v2/images/{image_id}/file", headers={"X-Auth-Token": token},
                      stream=True, timeout=300) as r:
        for chunk in r.iter_content(1 << 20):
            digest.update(chunk)
            size += len(chunk)
        return r.status_code, digest.hexdigest(), size


def random_file(path: Path, mib: int) -> str:
    digest = hashlib.sha512()
    with open(path, "wb") as f:
        for _ in range(mib):
            block = os.urandom(1 << 20)
            digest.update(block)
            f.write(block)
    return digest.hexdigest()


def delete_image(url: str, token: str, image_id: str) -> None:
    requests.delete(f"{url}/v2/images/{image_id}", headers={"X-Auth-Token": token}, timeout=30)


def test_shared_storage_100mb_reads_back_identical_through_every_host(
    serving_lab: Lab, tmp_path: Path
) -> None:
    st = serving_lab.status()
    token = token_of(st)
    a, b, c = (host(st, n)["url"] for n in ("lab-host-1", "lab-host-2", "lab-host-3"))
    src = tmp_path / "image.raw"
    want = random_file(src, 100)
    image_id = create_image(a, token, "lab-shared-100mb")
    try:
        upload(a, token, image_id, src)
        meta = requests.get(f"{b}/v2/images/{image_id}", headers={"X-Auth-Token": token}, timeout=30).json()
        assert meta["status"] == "active" and meta["os_hash_algo"] == "sha512"
        assert meta["os_hash_value"] == want
        for other in (b, c):
            status, got, size = download_sha512(other, token, image_id)
            assert (status, size) == (200, 100 << 20)
            assert got == want
    finally:
        delete_image(a, token, image_id)


def test_local_storage_hides_data_from_other_hosts(serving_lab: Lab, tmp_path: Path) -> None:
    st = serving_lab.status()
    if not st["namespaces"]:
        pytest.skip("mount namespaces are not permitted on this machine: every host would see every "
                    "host's store path, so local storage cannot be simulated")
    serving_lab.set_storage("local")
    st = serving_lab.status()
    assert st["storage"] == "local"
    token = token_of(st)
    a, b = host(st, "lab-host-1")["url"], host(st, "lab-host-2")["url"]
    src = tmp_path / "small.raw"
    want = random_file(src, 2)
    image_id = create_image(a, token, "lab-local")
    try:
        upload(a, token, image_id, src)
        assert download_sha512(a, token, image_id)[1] == want
        # Another host finds no data at the recorded path: Glance answers 204 with an empty body,
        # and the image still reads as active.
        status, _, size = download_sha512(b, token, image_id)
        assert (status, size) == (204, 0)
        meta = requests.get(f"{b}/v2/images/{image_id}", headers={"X-Auth-Token": token}, timeout=30).json()
        assert meta["status"] == "active"
        assert not (Path(st["shared_dir"]) / image_id).exists()
        assert (Path(host(st, "lab-host-1")["local_dir"]) / image_id).exists()
    finally:
        delete_image(a, token, image_id)


def test_public_endpoint_upload_is_not_on_the_hosts(serving_lab: Lab, tmp_path: Path) -> None:
    st = serving_lab.status()
    if not st["namespaces"]:
        pytest.skip("mount namespaces are not permitted: the public Glance's local store is visible to hosts")
    token = token_of(st)
    src = tmp_path / "trap.raw"
    want = random_file(src, 1)
    image_id = create_image(st["public_glance_url"], token, "lab-public-trap")
    try:
        upload(st["public_glance_url"], token, image_id, src)
        assert download_sha512(st["public_glance_url"], token, image_id)[1] == want
        # Listed everywhere (one database) but its bytes are on the control plane only.
        status, _, size = download_sha512(host(st, "lab-host-1")["url"], token, image_id)
        assert (status, size) == (204, 0)
    finally:
        delete_image(st["public_glance_url"], token, image_id)
